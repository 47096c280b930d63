package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/membership"
	"github.com/auroradev/aurora/app/store"
)

// The message-life frames over real WebSockets and real Redis: edit,
// delete, react and read, and a message's replyTo, mentions and
// attachments. Only the chat role runs, so nothing is ingested: targets
// are found in the stream tail (history.Lookup's first step) unless a
// test says otherwise.

// lifeReq sends frame and returns the frame answering it (its clientId's
// ack or error frame), holding the other frames for later reads. A
// rate_limited answer is waited out and the frame resent with the same
// clientId, as the protocol tells clients to: the tests run at the
// default limits.
func lifeReq(c *client, frame map[string]any) map[string]any {
	c.t.Helper()
	cid, _ := frame["clientId"].(string)
	if cid == "" {
		c.t.Fatalf("lifeReq needs a clientId: %v", frame)
	}
	for {
		c.send(frame)
		var held []map[string]any
		var f map[string]any
		for f == nil {
			g := c.read()
			switch {
			case g["clientId"] == cid && (g["type"] == "ack" || g["type"] == "error" || g["type"] == "rate_limited"):
				f = g
			default:
				held = append(held, g)
			}
		}
		c.Unread(held...)
		if f["type"] != "rate_limited" {
			return f
		}
		ms, _ := f["retryAfterMs"].(float64)
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
}

// answerCode is "" for an ack, else the error frame's code.
func answerCode(t testing.TB, f map[string]any) string {
	t.Helper()
	if f["type"] == "ack" {
		return ""
	}
	if msg, _ := f["message"].(string); msg == "" {
		t.Errorf("error frame %v has no message", f)
	}
	code, _ := f["code"].(string)
	return code
}

// mustAck fails the test unless f is an ack, and returns its id.
func mustAck(t testing.TB, f map[string]any) string {
	t.Helper()
	if f["type"] != "ack" {
		t.Fatalf("want an ack, got %v", f)
	}
	id, _ := f["id"].(string)
	if _, err := bus.ParseID(id); err != nil {
		t.Fatalf("ack %v: id %q", f, id)
	}
	return id
}

// liveOf reads c's frames until the live frame of type typ with id.
func liveOf(c *client, typ, id string) map[string]any {
	c.t.Helper()
	return frameOf(c, func(f map[string]any) bool { return f["type"] == typ && f["id"] == id })
}

// inject appends a message by p to room's stream directly (as the send
// script would), whatever p's role: the author of a message a test acts
// on.
func inject(t testing.TB, s *server, room string, p person, text string) string {
	t.Helper()
	e := bus.Entry{RoomID: room, UserID: p.id, Username: p.name, Text: text, TS: time.Now().UnixMilli()}
	id, err := do(t, s.redis, append([]string{"XADD", bus.Stream, "*"}, e.Fields()...)...).ToString()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// entriesOf are the stream's entries of type typ whose clientId is cid.
func entriesOf(t testing.TB, s *server, typ, cid string) []bus.Entry {
	t.Helper()
	xs, err := do(t, s.redis, "XRANGE", bus.Stream, "-", "+").AsXRange()
	if err != nil {
		t.Fatal(err)
	}
	var out []bus.Entry
	for _, x := range xs {
		if x.FieldValues[bus.FieldType] != typ || x.FieldValues[bus.FieldClientID] != cid {
			continue
		}
		e, err := bus.DecodeEntry(x.ID, x.FieldValues)
		if err != nil {
			t.Fatalf("entry %s does not decode: %v", x.ID, err)
		}
		out = append(out, e)
	}
	return out
}

// onceStored checks the stream holds exactly one entry of typ with cid, of
// id, and returns it.
func onceStored(t testing.TB, s *server, typ, cid, id string) bus.Entry {
	t.Helper()
	es := entriesOf(t, s, typ, cid)
	if len(es) != 1 || es[0].ID.String() != id {
		t.Fatalf("%s entries with clientId %s: %+v, want one, %s", typ, cid, es, id)
	}
	return es[0]
}

// lifeEnv is a public room of alice (owner) and bob (member), both
// connected and joined.
type lifeEnv struct {
	*roomsEnv
	room             string
	alice, bob       person
	aliceWS, bobWS   *client
	carol            person // exists, in no room
	msgA, msgB, evID string // a message of alice's, of bob's, a room event
}

func startLife(t *testing.T) *lifeEnv {
	t.Helper()
	return startLifeOn(t, backends[0])
}

// startLifeOn is startLife on the store backend b.
func startLifeOn(t *testing.T, b backend) *lifeEnv {
	t.Helper()
	e := &lifeEnv{roomsEnv: startRoomsEnv(t, b, nil)}
	e.alice, e.bob, e.carol = e.user(t, "alice"), e.user(t, "bob"), e.user(t, "carol")
	e.room = e.roomsEnv.room(t, store.RoomPublic, e.alice)
	e.member(t, e.room, e.bob, store.RoleMember, time.Time{})
	e.aliceWS, e.bobWS = e.dialAs(t, e.alice), e.dialAs(t, e.bob)
	e.aliceWS.join(e.room)
	e.bobWS.join(e.room)
	e.msgA = e.aliceWS.msg(e.room, "hello from alice", "a-0")["id"].(string)
	e.msgB = e.bobWS.msg(e.room, "hello from bob", "b-0")["id"].(string)
	ev, err := bus.NewEvent(e.room, e.alice.id, e.alice.name, bus.RoomEvent{Event: bus.EventRoomUpdated})
	if err != nil {
		t.Fatal(err)
	}
	id, err := bus.AppendEvent(context.Background(), e.redis, 1, ev)
	if err != nil {
		t.Fatal(err)
	}
	e.evID = id.String()
	return e
}

// TestLifeEventsAckedDeliveredStoredOnce: edit, react and delete are each
// acked with their own stream id, delivered live to the other member as
// their frame (carrying that id and the target's), and a resend with the
// same clientId is acked with the same id and stored once. A clientId
// names one frame per type: a message, an edit and a reaction with the
// same clientId are three entries.
func TestLifeEventsAckedDeliveredStoredOnce(t *testing.T) {
	e := startLife(t)
	a, b := e.aliceWS, e.bobWS

	edit := map[string]any{"type": "edit", "room": e.room, "id": e.msgA, "text": "hello, edited", "clientId": "a-0"}
	editID := mustAck(t, lifeReq(a, edit))
	f := liveOf(b, "edited", editID)
	if f["messageId"] != e.msgA || f["text"] != "hello, edited" || f["userId"] != e.alice.id || f["room"] != e.room || f["clientId"] != "a-0" {
		t.Errorf("bob got the edit as %v", f)
	}
	liveOf(a, "edited", editID) // the editor's own copy
	if again := mustAck(t, lifeReq(a, edit)); again != editID {
		t.Errorf("resent edit acked %s, first %s", again, editID)
	}
	if got := onceStored(t, e.server, bus.TypeEdit, "a-0", editID); got.Text != "hello, edited" || got.MessageID.String() != e.msgA {
		t.Errorf("edit entry %+v", got)
	}

	react := map[string]any{"type": "react", "room": e.room, "id": e.msgA, "emoji": "👍", "on": true, "clientId": "a-0"}
	reactID := mustAck(t, lifeReq(b, react))
	f = liveOf(a, "reaction", reactID)
	if f["messageId"] != e.msgA || f["emoji"] != "👍" || f["on"] != true || f["userId"] != e.bob.id {
		t.Errorf("alice got the reaction as %v", f)
	}
	if again := mustAck(t, lifeReq(b, react)); again != reactID {
		t.Errorf("resent reaction acked %s, first %s", again, reactID)
	}
	onceStored(t, e.server, bus.TypeReact, "a-0", reactID)
	// The reaction taken back; ❤ without its variation selector is ❤️.
	off := mustAck(t, lifeReq(b, map[string]any{"type": "react", "room": e.room, "id": e.msgA, "emoji": "❤", "on": false, "clientId": "b-off"}))
	if f := liveOf(a, "reaction", off); f["on"] != false || f["emoji"] != "❤️" {
		t.Errorf("alice got the reaction off as %v", f)
	}

	del := map[string]any{"type": "delete", "room": e.room, "id": e.msgA, "clientId": "a-del"}
	delID := mustAck(t, lifeReq(a, del))
	if f := liveOf(b, "deleted", delID); f["messageId"] != e.msgA || f["userId"] != e.alice.id || f["text"] != nil {
		t.Errorf("bob got the delete as %v", f)
	}
	if again := mustAck(t, lifeReq(a, del)); again != delID {
		t.Errorf("resent delete acked %s, first %s", again, delID)
	}
	onceStored(t, e.server, bus.TypeDelete, "a-del", delID)

	// A message's clientId a-0 and the edit's a-0 were two entries.
	if ms := entriesOf(t, e.server, "", "a-0"); len(ms) != 1 || ms[0].ID.String() != e.msgA {
		t.Errorf("messages with clientId a-0: %+v", ms)
	}

	// The deleted message is not edited, reacted to, replied to or
	// deleted again; the resent edit is still acked with its id.
	for _, tc := range []struct {
		c     *client
		frame map[string]any
	}{
		{a, map[string]any{"type": "edit", "room": e.room, "id": e.msgA, "text": "again", "clientId": "a-2"}},
		{b, map[string]any{"type": "react", "room": e.room, "id": e.msgA, "emoji": "🎉", "on": true, "clientId": "b-2"}},
		{b, map[string]any{"type": "message", "room": e.room, "text": "re", "replyTo": e.msgA, "clientId": "b-3"}},
		{a, map[string]any{"type": "delete", "room": e.room, "id": e.msgA, "clientId": "a-3"}},
	} {
		if code := answerCode(t, lifeReq(tc.c, tc.frame)); code != codeMessageDeleted {
			t.Errorf("%v on a deleted message: %q, want %s", tc.frame, code, codeMessageDeleted)
		}
	}
	if again := mustAck(t, lifeReq(a, edit)); again != editID {
		t.Errorf("edit resent after the delete acked %s, first %s", again, editID)
	}
	for _, typ := range []string{bus.TypeEdit, bus.TypeReact, ""} {
		for _, cid := range []string{"a-2", "b-2", "b-3", "a-3"} {
			if es := entriesOf(t, e.server, typ, cid); len(es) != 0 {
				t.Errorf("a refused frame was stored: %+v", es)
			}
		}
	}
}

// TestLifeTargets: the target of an edit, delete, react or reply must be
// a message of the room: a room event, a life event, a message of another
// room and an id nobody has are unknown_message; an edit of another's
// message is forbidden.
func TestLifeTargets(t *testing.T) {
	e := startLife(t)
	a, b := e.aliceWS, e.bobWS
	editID := mustAck(t, lifeReq(a, map[string]any{"type": "edit", "room": e.room, "id": e.msgA, "text": "v2", "clientId": "e1"}))
	other := e.roomsEnv.room(t, store.RoomPublic, e.alice)
	if code, msg := wsJoin(a, other, "jo"); code != "" {
		t.Fatalf("join %s: %s %s", other, code, msg)
	}
	elsewhere := a.msg(other, "in another room", "o1")["id"].(string)

	targets := map[string]string{"room event": e.evID, "edit event": editID, "message of another room": elsewhere}
	frames := func(id string, n int) []map[string]any {
		cid := func(k string) string { return fmt.Sprintf("%s-%d", k, n) }
		return []map[string]any{
			{"type": "edit", "room": e.room, "id": id, "text": "x", "clientId": cid("e")},
			{"type": "delete", "room": e.room, "id": id, "clientId": cid("d")},
			{"type": "react", "room": e.room, "id": id, "emoji": "👍", "on": true, "clientId": cid("r")},
			{"type": "message", "room": e.room, "text": "re", "replyTo": id, "clientId": cid("m")},
		}
	}
	n := 0
	for what, id := range targets {
		for _, f := range frames(id, n) {
			if code := answerCode(t, lifeReq(a, f)); code != codeUnknownMessage {
				t.Errorf("%s on a %s: %q, want %s", f["type"], what, code, codeUnknownMessage)
			}
		}
		n++
	}
	if code := answerCode(t, lifeReq(b, map[string]any{"type": "edit", "room": e.room, "id": e.msgA, "text": "mine now", "clientId": "b-e"})); code != codeForbidden {
		t.Errorf("bob edits alice's message: %q, want forbidden", code)
	}
	if code := answerCode(t, lifeReq(b, map[string]any{"type": "delete", "room": e.room, "id": e.msgA, "clientId": "b-d"})); code != codeForbidden {
		t.Errorf("bob (a member) deletes alice's message: %q, want forbidden", code)
	}

	// A reply to a message of the room carries replyTo, live.
	ack := lifeReq(b, map[string]any{"type": "message", "room": e.room, "text": "answer", "replyTo": e.msgA, "clientId": "b-re"})
	if f := liveOf(a, "message", mustAck(t, ack)); f["replyTo"] != e.msgA {
		t.Errorf("the reply reached alice as %v", f)
	}
}

// TestLifeUnknownTarget: an id in no stream and no store is
// unknown_message for every event (history.Lookup falls through to the
// store).
func TestLifeUnknownTarget(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testLifeUnknownTarget(t, startLifeOn(t, b)) })
	}
}

func testLifeUnknownTarget(t *testing.T, e *lifeEnv) {
	a := e.aliceWS
	unknown := "1000-0"
	for i, f := range []map[string]any{
		{"type": "edit", "room": e.room, "id": unknown, "text": "x"},
		{"type": "delete", "room": e.room, "id": unknown},
		{"type": "react", "room": e.room, "id": unknown, "emoji": "👍", "on": true},
		{"type": "read", "room": e.room, "id": unknown},
		{"type": "message", "room": e.room, "text": "re", "replyTo": unknown},
	} {
		f["clientId"] = fmt.Sprint("u", i)
		if code := answerCode(t, lifeReq(a, f)); code != codeUnknownMessage {
			t.Errorf("%s of an unknown id: %q, want %s", f["type"], code, codeUnknownMessage)
		}
	}
}

// TestLifePermissions: who may edit, delete, react and read, for every
// role in a public, a private and a direct room, on both stores: a
// stranger, a banned user, and members kicked or muted after they joined;
// own and others' messages, and a deleted one. Each actor acts on
// messages appended for the occasion whatever their role now (a readonly
// or muted member wrote theirs before); the deleted one is the target
// member's, deleted by them.
func TestLifePermissions(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testLifePermissions(t, b) })
	}
}

func testLifePermissions(t *testing.T, b backend) {
	e := startRoomsEnv(t, b, nil)
	owner, admin, member, readonly, muted, target, stranger, banned, kicked, mutedLate :=
		e.user(t, "owner"), e.user(t, "admin"), e.user(t, "member"), e.user(t, "readonly"), e.user(t, "muted"),
		e.user(t, "target"), e.user(t, "stranger"), e.user(t, "banned"), e.user(t, "kicked"), e.user(t, "mutedlate")
	sadmin := e.serverAdmin(t)
	public := e.room(t, store.RoomPublic, owner)
	private := e.room(t, store.RoomPrivate, owner)
	for _, room := range []string{public, private} {
		e.member(t, room, admin, store.RoleAdmin, time.Time{})
		e.member(t, room, member, store.RoleMember, time.Time{})
		e.member(t, room, readonly, store.RoleReadonly, time.Time{})
		e.member(t, room, muted, store.RoleMember, time.Now().Add(time.Hour))
		e.member(t, room, target, store.RoleMember, time.Time{})
		e.member(t, room, kicked, store.RoleMember, time.Time{})
		e.member(t, room, mutedLate, store.RoleMember, time.Time{})
	}
	e.ban(t, public, banned, owner)
	direct := e.direct(t, member, target)
	// The target's deleted message of each room.
	deleted := map[string]string{}
	tc := e.dialAs(t, target)
	for _, room := range []string{public, private, direct} {
		if code, msg := wsJoin(tc, room, "j-"+room); code != "" {
			t.Fatalf("target joins %s: %s %s", room, code, msg)
		}
		deleted[room] = inject(t, e.server, room, target, "deleted before")
		mustAck(t, lifeReq(tc, map[string]any{"type": "delete", "room": room, "id": deleted[room], "clientId": "del-" + room}))
	}
	kick := func(t *testing.T, room string, c *client) {
		t.Helper()
		if code, body := e.call(t, http.MethodPost, "/api/rooms/"+room+"/kick", owner.token, map[string]any{"userId": kicked.id}); code != http.StatusOK {
			t.Fatalf("kick: %d %v", code, body)
		}
		for f := c.read(); f["type"] != "removed"; f = c.read() {
		}
	}
	mute := func(t *testing.T, room string, _ *client) {
		t.Helper()
		until := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		if code, body := e.call(t, http.MethodPost, "/api/rooms/"+room+"/mutes", owner.token, map[string]any{"userId": mutedLate.id, "until": until}); code != http.StatusOK {
			t.Fatalf("mute: %d %v", code, body)
		}
	}

	// want, one letter per frame: edit own, edit other's, delete own,
	// delete other's, react, read, react own, delete the deleted, react
	// to the deleted, read the deleted. "." allowed, else the error code's
	// letter (F forbidden, M muted, J not_member, D message_deleted).
	cases := []struct {
		room  string
		actor person
		join  bool
		then  func(t *testing.T, room string, c *client) // after the join
		want  string
	}{
		{public, owner, true, nil, ".F.....DD."},
		{public, admin, true, nil, ".F.....DD."},
		{public, member, true, nil, ".F.F...FD."},
		{public, readonly, true, nil, "FF.FF.FFF."},
		{public, muted, true, nil, "MM.FM.MFM."},
		{public, stranger, false, nil, "JJJJJJJJJJ"},
		{public, banned, false, nil, "JJJJJJJJJJ"},
		{public, kicked, true, kick, "JJJJJJJJJJ"},
		{public, mutedLate, true, mute, "MM.FM.MFM."},
		{public, sadmin, true, nil, ".F.....DD."}, // not a member: a server admin reads and moderates
		{private, owner, true, nil, ".F.....DD."},
		{private, admin, true, nil, ".F.....DD."},
		{private, member, true, nil, ".F.F...FD."},
		{private, readonly, true, nil, "FF.FF.FFF."},
		{private, stranger, false, nil, "JJJJJJJJJJ"},
		{private, kicked, true, kick, "JJJJJJJJJJ"},
		{private, sadmin, true, nil, ".F.....DD."},
		{direct, member, true, nil, ".F.F...FD."},
		{direct, stranger, false, nil, "JJJJJJJJJJ"},
	}
	letter := map[string]byte{"": '.', codeForbidden: 'F', codeMuted: 'M', codeNotMember: 'J', codeNotFound: 'N', codeMessageDeleted: 'D'}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%s/%s", tc.room, tc.actor.name), func(t *testing.T) {
			c := e.dialAs(t, tc.actor)
			if tc.join {
				if code, msg := wsJoin(c, tc.room, "j"); code != "" {
					t.Fatalf("join: %s %s", code, msg)
				}
			}
			if tc.then != nil {
				tc.then(t, tc.room, c)
			}
			fresh := func(p person) string { return inject(t, e.server, tc.room, p, "written earlier") }
			cid := func(k string) string { return fmt.Sprintf("%s-%d", k, i) }
			gone := deleted[tc.room]
			frames := []map[string]any{
				{"type": "edit", "room": tc.room, "id": fresh(tc.actor), "text": "edited", "clientId": cid("eo")},
				{"type": "edit", "room": tc.room, "id": fresh(target), "text": "edited", "clientId": cid("et")},
				{"type": "delete", "room": tc.room, "id": fresh(tc.actor), "clientId": cid("do")},
				{"type": "delete", "room": tc.room, "id": fresh(target), "clientId": cid("dt")},
				{"type": "react", "room": tc.room, "id": fresh(target), "emoji": "👀", "on": true, "clientId": cid("r")},
				{"type": "read", "room": tc.room, "id": fresh(target), "clientId": cid("rd")},
				{"type": "react", "room": tc.room, "id": fresh(tc.actor), "emoji": "👀", "on": true, "clientId": cid("ro")},
				{"type": "delete", "room": tc.room, "id": gone, "clientId": cid("dd")},
				{"type": "react", "room": tc.room, "id": gone, "emoji": "👀", "on": true, "clientId": cid("rdd")},
				{"type": "read", "room": tc.room, "id": gone, "clientId": cid("rdg")},
			}
			got := make([]byte, len(frames))
			for j, f := range frames {
				code := answerCode(t, lifeReq(c, f))
				l, ok := letter[code]
				if !ok {
					t.Errorf("%s: unexpected code %q", f["type"], code)
					l = '?'
				}
				got[j] = l
				typ := map[string]string{"edit": bus.TypeEdit, "delete": bus.TypeDelete, "react": bus.TypeReact, "read": bus.TypeRead}[f["type"].(string)]
				stored := len(entriesOf(t, e.server, typ, f["clientId"].(string)))
				// A read behind the marker is acked and stores nothing:
				// the deleted message is older than the read before it.
				if want := 0; code == "" && f["clientId"] != cid("rdg") {
					want = 1
					if stored != want {
						t.Errorf("%s acked, %d entries stored", f["type"], stored)
					}
				} else if stored != want {
					t.Errorf("%s answered %q, %d entries stored", f["type"], code, stored)
				}
			}
			if string(got) != tc.want {
				t.Errorf("got %s, want %s (edit own, edit other's, delete own, delete other's, react, read, react own, delete the deleted, react to the deleted, read the deleted)", got, tc.want)
			}
		})
	}
}

// TestReadMarkers: a read is acked with its event's id when the marker
// moves (a resend: the same ack), and with the marker (moved false,
// nothing stored) when the id is not newer; the read frame reaches the reader's other
// connection and, in a public room, nobody else; in a direct room the
// other member too.
func TestReadMarkers(t *testing.T) {
	e := startLife(t)
	a1, b := e.aliceWS, e.bobWS
	a2 := e.dialAs(t, e.alice)
	a2.join(e.room)
	m2 := a1.msg(e.room, "second", "a-1")["id"].(string)

	read := map[string]any{"type": "read", "room": e.room, "id": m2, "clientId": "r1"}
	ack := lifeReq(a1, read)
	readID := mustAck(t, ack)
	if ack["moved"] != true || ack["room"] != e.room {
		t.Errorf("read ack %v", ack)
	}
	f := liveOf(a2, "read", readID)
	if f["messageId"] != m2 || f["userId"] != e.alice.id {
		t.Errorf("alice's other connection got %v", f)
	}
	// bob reads on: the next message reaches him with no read frame
	// before it (one channel: Pub/Sub keeps the order).
	m3 := a1.msg(e.room, "third", "a-2")["id"].(string)
	for {
		f := b.read()
		if f["type"] == "read" {
			t.Fatalf("bob got alice's read frame %v", f)
		}
		if f["type"] == "message" && f["id"] == m3 {
			break
		}
	}
	onceStored(t, e.server, bus.TypeRead, "r1", readID)

	// The resend is acked like a message's: the original event's id and
	// ts, moved, nothing stored or delivered again.
	if again := lifeReq(a1, read); again["type"] != "ack" || again["id"] != readID || again["moved"] != true || again["ts"] != ack["ts"] {
		t.Errorf("resent read: %v, want the original ack %v", again, ack)
	}
	onceStored(t, e.server, bus.TypeRead, "r1", readID)
	// Not newer: an older id, and the same id under another clientId.
	for _, f := range []map[string]any{{"type": "read", "room": e.room, "id": e.msgA, "clientId": "r2"}, {"type": "read", "room": e.room, "id": m2, "clientId": "r2b"}} {
		ack := lifeReq(a1, f)
		if ack["type"] != "ack" || ack["moved"] != false || ack["id"] != m2 {
			t.Errorf("read of %s after %s: %v, want ack moved false id %s", f["id"], m2, ack, m2)
		}
	}
	if es := entriesOf(t, e.server, bus.TypeRead, "r2"); len(es) != 0 {
		t.Errorf("a read that moved nothing was stored: %+v", es)
	}
	marker, err := do(t, e.redis, "GET", bus.ReadMarkerKey(0, e.room, e.alice.id)).ToString()
	if err != nil || marker != m2 {
		t.Errorf("marker %q %v, want %s", marker, err, m2)
	}
	// A read of a room event is a position in the room too.
	mustAck(t, lifeReq(b, map[string]any{"type": "read", "room": e.room, "id": e.evID, "clientId": "b-r"}))

	// A direct room: the other member sees it.
	dm := e.direct(t, e.alice, e.bob)
	for _, c := range []*client{a1, b} {
		if code, msg := wsJoin(c, dm, "jd"); code != "" {
			t.Fatalf("join %s: %s %s", dm, code, msg)
		}
	}
	d := a1.msg(dm, "psst", "d-1")["id"].(string)
	dread := mustAck(t, lifeReq(b, map[string]any{"type": "read", "room": dm, "id": d, "clientId": "dr"}))
	if f := liveOf(a1, "read", dread); f["messageId"] != d || f["userId"] != e.bob.id {
		t.Errorf("alice got bob's seen as %v", f)
	}
}

// TestMentions: @names resolve to the ids of members of the room, in
// order, once each; a user of elsewhere, a name nobody has, an address
// and a trailing full stop are handled as text; in general every user is
// a member.
func TestMentions(t *testing.T) {
	e := startLife(t)
	a, b := e.aliceWS, e.bobWS
	text := fmt.Sprintf("hi @%s and @%s, @nobody99 mail x@%s @%s.", e.bob.name, e.carol.name, e.bob.name, e.alice.name)
	id := mustAck(t, lifeReq(a, map[string]any{"type": "message", "room": e.room, "text": text, "clientId": "m1"}))
	f := liveOf(b, "message", id)
	got, _ := f["mentions"].([]any)
	if want := []any{e.bob.id, e.alice.id}; !slices.Equal(got, want) {
		t.Errorf("mentions %v, want %v (bob, alice; carol is not a member)", got, want)
	}
	if m := onceStored(t, e.server, "", "m1", id); !slices.Equal(m.Mentions, []string{e.bob.id, e.alice.id}) {
		t.Errorf("stored mentions %v", m.Mentions)
	}
	id = mustAck(t, lifeReq(a, map[string]any{"type": "message", "room": "general", "text": "@" + e.carol.name + " welcome", "clientId": "m2"}))
	if m := onceStored(t, e.server, "", "m2", id); !slices.Equal(m.Mentions, []string{e.carol.id}) {
		t.Errorf("mentions in general %v, want carol", m.Mentions)
	}
	id = mustAck(t, lifeReq(a, map[string]any{"type": "message", "room": e.room, "text": "no one here", "clientId": "m3"}))
	if f := liveOf(b, "message", id); f["mentions"] != nil {
		t.Errorf("a message without @ mentions %v", f["mentions"])
	}
}

// TestLifeHostile: wrong field types, huge and unlisted emoji, bad ids
// and too many attachments are answered with error frames carrying the
// clientId, and nothing is stored.
func TestLifeHostile(t *testing.T) {
	e := startLife(t)
	// A connection of alice's of its own, in the room, that nothing else
	// is sent to.
	a := e.dialAs(t, e.alice)
	a.join(e.room)
	room, id := e.room, e.msgB
	many := make([]string, 1000)
	for i := range many {
		many[i] = `{"url":"/api/rooms/` + room + `/attachments/x"}`
	}
	before := xlen(t, e.redis, bus.Stream)
	for _, tc := range []struct{ raw, code string }{
		{`{"type":"edit","room":"` + room + `","id":"` + id + `","text":7,"clientId":"h"}`, codeInvalidMessage},
		{`{"type":"edit","room":"` + room + `","id":7,"text":"x","clientId":"h"}`, codeInvalidMessage},
		{`{"type":"edit","room":"` + room + `","text":"x","clientId":"h"}`, codeInvalidMessage},
		{`{"type":"edit","room":"` + room + `","id":"0-0","text":"x","clientId":"h"}`, codeInvalidMessage},
		{`{"type":"edit","room":"` + room + `","id":"` + e.msgA + `","text":"   ","clientId":"h"}`, codeEmptyText},
		{`{"type":"delete","room":"` + room + `","id":null,"clientId":"h"}`, codeInvalidMessage},
		{`{"type":"delete","room":7,"id":"` + id + `","clientId":"h"}`, codeInvalidMessage},
		{`{"type":"react","room":"` + room + `","id":"` + id + `","emoji":"👍","on":"yes","clientId":"h"}`, codeInvalidMessage},
		{`{"type":"react","room":"` + room + `","id":"` + id + `","emoji":"👍","clientId":"h"}`, codeInvalidMessage},
		{`{"type":"react","room":"` + room + `","id":"` + id + `","emoji":["👍"],"on":true,"clientId":"h"}`, codeInvalidMessage},
		{`{"type":"react","room":"` + room + `","id":"` + id + `","emoji":"` + strings.Repeat("👍", 100) + `","on":true,"clientId":"h"}`, codeInvalidEmoji},
		{`{"type":"react","room":"` + room + `","id":"` + id + `","emoji":"👍👍","on":true,"clientId":"h"}`, codeInvalidEmoji},
		{`{"type":"react","room":"` + room + `","id":"` + id + `","emoji":"a","on":true,"clientId":"h"}`, codeInvalidEmoji},
		{`{"type":"react","room":"` + room + `","id":"` + id + `","emoji":"","on":true,"clientId":"h"}`, codeInvalidEmoji},
		{`{"type":"read","room":"` + room + `","id":{"$gt":""},"clientId":"h"}`, codeInvalidMessage},
		{`{"type":"message","room":"` + room + `","text":"x","replyTo":7,"clientId":"h"}`, codeInvalidMessage},
		{`{"type":"message","room":"` + room + `","text":"x","replyTo":"yesterday","clientId":"h"}`, codeInvalidMessage},
		{`{"type":"message","room":"` + room + `","text":"x","attachments":{"url":"/a"},"clientId":"h"}`, codeInvalidMessage},
		{`{"type":"message","room":"` + room + `","text":"x","attachments":[{"url":5}],"clientId":"h"}`, codeInvalidMessage},
		{`{"type":"message","room":"` + room + `","text":"x","attachments":[` + strings.Join(many, ",") + `],"clientId":"h"}`, codeInvalidMessage},
		// A url that names no attachment uploaded to the room.
		{`{"type":"message","room":"` + room + `","text":"x","attachments":[{"url":"/a"}],"clientId":"h"}`, codeInvalidMessage},
	} {
		code, cid := a.errorCode(tc.raw)
		if code != tc.code || cid != "h" {
			t.Errorf("%.80s: %s (clientId %q), want %s", tc.raw, code, cid, tc.code)
		}
	}
	if after := xlen(t, e.redis, bus.Stream); after != before {
		t.Errorf("the stream grew from %d to %d entries", before, after)
	}
}

// TestMentionTokens: what counts as an @name.
func TestMentionTokens(t *testing.T) {
	for text, want := range map[string][]string{
		"@bob hi":                     {"bob"},
		"hi @bob, @al":                {"bob"}, // al is too short for a username
		"mail bob@example.io":         nil,
		"(@ann.b) @x_y-z.":            {"ann.b", "x_y-z."},
		"@" + strings.Repeat("a", 33): nil,
		"@@bob":                       {"bob"},
		"no mention":                  nil,
	} {
		if got := mentionTokens(text); !slices.Equal(got, want) {
			t.Errorf("mentionTokens(%q) = %q, want %q", text, got, want)
		}
	}
}

// TestAllowedEmoji: the allow-list holds one grapheme cluster per entry,
// no duplicates, and ❤ spells ❤️.
func TestAllowedEmoji(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range reactionEmoji {
		if seen[e] || e == "" || len(e) > bus.MaxEmojiBytes {
			t.Errorf("allow-list entry %q", e)
		}
		seen[e] = true
		if got, ok := allowedEmoji(e); !ok || got != e {
			t.Errorf("allowedEmoji(%q) = %q %v", e, got, ok)
		}
	}
	if got, ok := allowedEmoji("❤"); !ok || got != "❤️" {
		t.Errorf("allowedEmoji(❤) = %q %v", got, ok)
	}
	for _, s := range []string{"👍🏽", "👍👍", "x", "", "👍 "} {
		if _, ok := allowedEmoji(s); ok {
			t.Errorf("%q allowed", s)
		}
	}
}

// TestLifeAcrossReplicas: two replicas on one Redis. Alice on replica a
// edits, reacts to, deletes and reads; bob on b gets the edit, reaction
// and delete live, and not the read, which alice's other connection, on
// b, gets.
func TestLifeAcrossReplicas(t *testing.T) {
	cfgA, cfgB := chatConfig(t), chatConfig(t)
	cfgB.Redis.URL = cfgA.Redis.URL
	a, b := startChat(t, cfgA), startChat(t, cfgB)
	alice := a.dial("u1", "alice")
	bob := b.dial("u2", "bob")
	alice2 := b.dial("u1", "alice")
	const room = "general"
	m := alice.msg(room, "across", "x-0")["id"].(string)
	for _, tc := range []struct {
		live  string
		frame map[string]any
	}{
		{"edited", map[string]any{"type": "edit", "room": room, "id": m, "text": "across, edited", "clientId": "x-1"}},
		{"reaction", map[string]any{"type": "react", "room": room, "id": m, "emoji": "🚀", "on": true, "clientId": "x-2"}},
		{"deleted", map[string]any{"type": "delete", "room": room, "id": m, "clientId": "x-3"}},
	} {
		id := mustAck(t, lifeReq(alice, tc.frame))
		if f := liveOf(bob, tc.live, id); f["messageId"] != m {
			t.Errorf("bob on the other replica got %v", f)
		}
		liveOf(alice2, tc.live, id)
	}
	readID := mustAck(t, lifeReq(alice, map[string]any{"type": "read", "room": room, "id": m, "clientId": "x-4"}))
	liveOf(alice2, "read", readID)
	after := alice.msg(room, "after the read", "x-5")["id"].(string)
	for {
		f := bob.read()
		if f["type"] == "read" {
			t.Fatalf("bob got alice's read frame %v", f)
		}
		if f["type"] == "message" && f["id"] == after {
			break
		}
	}
}

// TestLifeStoredTargets: a target no longer in the stream (ingested, the
// stream trimmed) is found in the store, with its state: a stored
// message is edited and reacted to, a stored deleted one refuses both,
// and a resend of an edit acked before the delete is acked again.
func TestLifeStoredTargets(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testLifeStoredTargets(t, startLifeOn(t, b)) })
	}
}

func testLifeStoredTargets(t *testing.T, e *lifeEnv) {
	a := e.aliceWS
	now := time.Now()
	base := uint64(now.Add(-time.Hour).UnixMilli())
	live, gone := bus.ID{Ms: base, Seq: 1}, bus.ID{Ms: base, Seq: 2}
	msgs := []store.Message{
		store.MessageFromEntry(bus.Entry{ID: live, RoomID: e.room, UserID: e.alice.id, Username: e.alice.name, Text: "stored"}, now),
		store.MessageFromEntry(bus.Entry{ID: gone, RoomID: e.room, UserID: e.alice.id, Username: e.alice.name, Text: "stored, then deleted"}, now),
		store.MessageFromEntry(bus.Entry{ID: bus.ID{Ms: base, Seq: 3}, RoomID: e.room, UserID: e.alice.id, Username: e.alice.name,
			Type: bus.TypeDelete, MessageID: gone}, now),
	}
	if _, err := e.store.InsertMessages(ctxT(t), msgs); err != nil {
		t.Fatal(err)
	}
	if m, err := e.store.Message(ctxT(t), e.room, gone); err != nil || !m.Deleted {
		t.Fatalf("the store's deleted message: %+v %v", m, err)
	}
	edit := map[string]any{"type": "edit", "room": e.room, "id": live.String(), "text": "stored, edited", "clientId": "s-1"}
	editID := mustAck(t, lifeReq(a, edit))
	liveOf(e.bobWS, "edited", editID)
	mustAck(t, lifeReq(a, map[string]any{"type": "react", "room": e.room, "id": live.String(), "emoji": "👍", "on": true, "clientId": "s-2"}))
	for _, f := range []map[string]any{
		{"type": "edit", "room": e.room, "id": gone.String(), "text": "x", "clientId": "s-3"},
		{"type": "react", "room": e.room, "id": gone.String(), "emoji": "👍", "on": true, "clientId": "s-4"},
		{"type": "delete", "room": e.room, "id": gone.String(), "clientId": "s-5"},
	} {
		if code := answerCode(t, lifeReq(a, f)); code != codeMessageDeleted {
			t.Errorf("%s of a message the store has deleted: %q, want %s", f["type"], code, codeMessageDeleted)
		}
	}
	reply := map[string]any{"type": "message", "room": e.room, "text": "re", "replyTo": live.String(), "clientId": "s-re"}
	replyID := mustAck(t, lifeReq(a, reply))
	// The edit's and the reply's target deleted in the store meanwhile:
	// their resends are still the same edit and reply; a new reply is
	// refused.
	if _, err := e.store.InsertMessages(ctxT(t), []store.Message{store.MessageFromEntry(bus.Entry{ID: bus.ID{Ms: base, Seq: 4}, RoomID: e.room,
		UserID: e.alice.id, Username: e.alice.name, Type: bus.TypeDelete, MessageID: live}, now)}); err != nil {
		t.Fatal(err)
	}
	if again := mustAck(t, lifeReq(a, edit)); again != editID {
		t.Errorf("resent edit acked %s, first %s", again, editID)
	}
	if again := mustAck(t, lifeReq(a, reply)); again != replyID {
		t.Errorf("resent reply acked %s, first %s", again, replyID)
	}
	reply["clientId"] = "s-re2"
	if code := answerCode(t, lifeReq(a, reply)); code != codeMessageDeleted {
		t.Errorf("a new reply to a deleted message: %q, want %s", code, codeMessageDeleted)
	}
}

// TestReadMarkerStoreFloor: once the marker's Redis key is gone (expired
// a week after its last move) the store's marker is the floor: an older
// id does not move it back.
func TestReadMarkerStoreFloor(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testReadMarkerStoreFloor(t, startLifeOn(t, b)) })
	}
}

func testReadMarkerStoreFloor(t *testing.T, e *lifeEnv) {
	a := e.aliceWS
	msgB, err := bus.ParseID(e.msgB)
	if err != nil {
		t.Fatal(err)
	}
	// What ingest stored of a read of bob's message a while ago.
	readEv := bus.Entry{ID: bus.ID{Ms: msgB.Ms, Seq: msgB.Seq + 1000}, RoomID: e.room, UserID: e.alice.id, Username: e.alice.name,
		Type: bus.TypeRead, MessageID: msgB}
	if _, err := e.store.InsertMessages(ctxT(t), []store.Message{store.MessageFromEntry(readEv, time.Now())}); err != nil {
		t.Fatal(err)
	}
	key := bus.ReadMarkerKey(0, e.room, e.alice.id)
	if n, err := do(t, e.redis, "EXISTS", key).AsInt64(); err != nil || n != 0 {
		t.Fatalf("marker key exists before any read: %d %v", n, err)
	}
	ack := lifeReq(a, map[string]any{"type": "read", "room": e.room, "id": e.msgA, "clientId": "f1"})
	if ack["type"] != "ack" || ack["moved"] != false || ack["id"] != e.msgB {
		t.Fatalf("read of an id before the stored marker: %v, want moved false at %s", ack, e.msgB)
	}
	if got, err := do(t, e.redis, "GET", key).ToString(); err != nil || got != e.msgB {
		t.Errorf("marker key %q %v, want the stored marker %s", got, err, e.msgB)
	}
	m3 := a.msg(e.room, "newer", "f-m")["id"].(string)
	if ack := lifeReq(a, map[string]any{"type": "read", "room": e.room, "id": m3, "clientId": "f2"}); ack["moved"] != true {
		t.Errorf("read of a newer message: %v, want moved", ack)
	}
}

// fakeAttachments vouches for urls under /ok/ with stored fields, refuses
// /bad/ ones as the attachments service does (membership.ErrInvalid) and
// fails on anything else.
type fakeAttachments struct{}

func (fakeAttachments) Check(_ context.Context, room, _ string, in []bus.Attachment) ([]bus.Attachment, error) {
	out := make([]bus.Attachment, len(in))
	for i, a := range in {
		switch {
		case strings.HasPrefix(a.URL, "/ok/"):
			out[i] = bus.Attachment{URL: a.URL, FileType: "image/png", Size: 42, Filename: room + ".png"}
		case strings.HasPrefix(a.URL, "/bad/"):
			return nil, fmt.Errorf("attachment %s: %w", a.URL, membership.ErrInvalid)
		default:
			return nil, errors.New("storage down")
		}
	}
	return out, nil
}

// TestMessageAttachments: a message's attachments are what the checker
// answers (the stored fields, not the client's); its refusal is
// invalid_message with its text, its failure unavailable; none checked
// without a checker.
func TestMessageAttachments(t *testing.T) {
	c := &conn{d: &connDeps{attachments: fakeAttachments{}}}
	c.log = slog.New(slog.DiscardHandler)
	f := clientFrame{typ: typeMessage, room: "dev", text: "", attachments: []bus.Attachment{{URL: "/ok/1", FileType: "text/html", Size: 1}}}
	var m outgoing
	if code, msg := c.messageOptions(context.Background(), f, &m); code != "" {
		t.Fatalf("refused: %s %s", code, msg)
	}
	if want := []bus.Attachment{{URL: "/ok/1", FileType: "image/png", Size: 42, Filename: "dev.png"}}; !slices.Equal(m.Attachments, want) {
		t.Errorf("attachments %+v, want %+v", m.Attachments, want)
	}
	if ferr := checkMessageText(f, 10); ferr != nil {
		t.Errorf("a message of attachments alone: %+v", ferr)
	}
	for url, want := range map[string]string{"/bad/1": codeInvalidMessage, "/x/1": codeUnavailable} {
		f.attachments = []bus.Attachment{{URL: url}}
		if code, msg := c.messageOptions(context.Background(), f, &outgoing{}); code != want || msg == "" {
			t.Errorf("%s: %s %q, want %s", url, code, msg, want)
		}
	}
	c.d.attachments = nil
	if code, _ := c.messageOptions(context.Background(), f, &outgoing{}); code != codeInvalidMessage {
		t.Errorf("without a checker: %s, want %s", code, codeInvalidMessage)
	}
}

// tinyPNG is a 1×1 PNG.
var tinyPNG = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")

// upload posts tinyPNG to room as p and returns the attachment answered.
func (e *lifeEnv) upload(t *testing.T, room string, p person) bus.Attachment {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodPost, e.URL+"/api/rooms/"+room+"/attachments?filename=cat.png", bytes.NewReader(tinyPNG))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("Content-Type", "image/png")
	resp, err := e.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Attachment bus.Attachment }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %v", resp.StatusCode, err)
	}
	return out.Attachment
}

// TestMessageWithAttachment: a message names an attachment uploaded to its
// room by url; the message as delivered and stored carries the stored
// type, size and filename whatever the client claimed; a url of another
// room's attachment is refused.
func TestMessageWithAttachment(t *testing.T) {
	e := startLife(t)
	att := e.upload(t, e.room, e.alice)
	if att.FileType != "image/png" || att.Size != int64(len(tinyPNG)) || att.Filename != "cat.png" {
		t.Fatalf("uploaded %+v", att)
	}
	claimed := map[string]any{"url": att.URL, "fileType": "text/html", "size": 1, "filename": "evil.html"}
	id := mustAck(t, lifeReq(e.aliceWS, map[string]any{"type": "message", "room": e.room, "text": "",
		"attachments": []any{claimed}, "clientId": "att-1"}))
	f := liveOf(e.bobWS, "message", id)
	got, _ := f["attachments"].([]any)
	if len(got) != 1 {
		t.Fatalf("bob got %v", f)
	}
	g, _ := got[0].(map[string]any)
	if g["url"] != att.URL || g["fileType"] != "image/png" || g["filename"] != "cat.png" || g["size"] != float64(len(tinyPNG)) {
		t.Errorf("delivered attachment %v, want %+v", g, att)
	}
	if m := onceStored(t, e.server, "", "att-1", id); !slices.Equal(m.Attachments, []bus.Attachment{att}) {
		t.Errorf("stored attachments %+v, want %+v", m.Attachments, att)
	}

	other := e.roomsEnv.room(t, store.RoomPublic, e.alice)
	elsewhere := e.upload(t, other, e.alice)
	ack := lifeReq(e.aliceWS, map[string]any{"type": "message", "room": e.room, "text": "x",
		"attachments": []any{map[string]any{"url": elsewhere.URL}}, "clientId": "att-2"})
	if code := answerCode(t, ack); code != codeInvalidMessage {
		t.Errorf("another room's attachment: %v, want %s", ack, codeInvalidMessage)
	}
}

// TestUploadLimitDefault: at the default attachments.uploads_per_minute
// (30), a member's 31st upload within the minute is refused 429 with a
// Retry-After of at most a minute; another member's uploads are counted
// apart.
func TestUploadLimitDefault(t *testing.T) {
	e := startLife(t)
	for range 30 {
		e.upload(t, e.room, e.alice)
	}
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodPost, e.URL+"/api/rooms/"+e.room+"/attachments?filename=cat.png", bytes.NewReader(tinyPNG))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.alice.token)
	resp, err := e.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Error string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusTooManyRequests || body.Error == "" || ra < 1 || ra > 60 {
		t.Fatalf("the 31st upload: %d %q, Retry-After %q; want 429, an error, 1..60 s", resp.StatusCode, body.Error, resp.Header.Get("Retry-After"))
	}
	e.upload(t, e.room, e.bob)
}
