package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/store"
)

// This file is the contract of the rooms, members, bans and invites, and
// of the user queries the membership and revocation checks use.

// withDeadline is the context of a test: with a deadline, as the roles'
// requests have one, because the driver then sends maxTimeMS, which
// FerretDB refuses on some commands (distinct).
func withDeadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// ms is t as every store keeps it: UTC milliseconds.
func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func sameRoom(t *testing.T, what string, got, want store.Room) {
	t.Helper()
	if got.Name != want.Name || got.Type != want.Type || got.Title != want.Title || got.Topic != want.Topic ||
		got.CreatedBy != want.CreatedBy || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func sameMember(t *testing.T, what string, got, want store.Member) {
	t.Helper()
	if got.Room != want.Room || got.UserID != want.UserID || got.Username != want.Username || got.Role != want.Role ||
		!got.JoinedAt.Equal(want.JoinedAt) || !got.MutedUntil.Equal(want.MutedUntil) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func roomNames(rooms []store.Room) string {
	names := make([]string, len(rooms))
	for i, r := range rooms {
		names[i] = r.Name
	}
	return "[" + strings.Join(names, " ") + "]"
}

func testRoomFields(t *testing.T, s Store) {
	ctx := withDeadline(t)
	at := ms(time.Now().Add(-time.Hour))
	want := store.Room{Name: "secret", Type: store.RoomPrivate, Title: "Sécret plans", Topic: "don't tell", CreatedBy: "u1", CreatedAt: at}
	got, err := s.CreateRoom(ctx, want, nil)
	if err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}
	sameRoom(t, "CreateRoom", got, want)
	r, err := s.Room(ctx, "secret")
	if err != nil {
		t.Fatalf("Room: %v", err)
	}
	sameRoom(t, "Room", r, want)
	_, err = s.Room(ctx, "nowhere")
	wantErr(t, "Room unknown", err, store.ErrNotFound)

	// An empty type is stored as public.
	plain, err := s.CreateRoom(ctx, store.Room{Name: "plain"}, nil)
	if err != nil || plain.Type != store.RoomPublic {
		t.Fatalf("CreateRoom without type = %+v, %v; want type public", plain, err)
	}
	if r, err := s.Room(ctx, "plain"); err != nil || r.Type != store.RoomPublic || r.Title != "" || r.Topic != "" {
		t.Errorf("Room(plain) = %+v, %v", r, err)
	}

	// UpdateRoom sets title and topic only.
	if err := s.UpdateRoom(ctx, store.Room{Name: "secret", Type: store.RoomPublic, Title: "Open plans", Topic: "", CreatedBy: "x"}); err != nil {
		t.Fatalf("UpdateRoom: %v", err)
	}
	want.Title, want.Topic = "Open plans", ""
	if r, err := s.Room(ctx, "secret"); err != nil {
		t.Fatalf("Room: %v", err)
	} else {
		sameRoom(t, "Room after UpdateRoom", r, want)
	}
	wantErr(t, "UpdateRoom unknown", s.UpdateRoom(ctx, store.Room{Name: "nowhere", Title: "x"}), store.ErrNotFound)
	rooms, err := s.ListRooms(ctx)
	if err != nil || roomNames(rooms) != "[general plain secret]" {
		t.Fatalf("ListRooms = %v, %v", roomNames(rooms), err)
	}
	sameRoom(t, "ListRooms secret", rooms[2], want)
}

func testCreateRoomOwner(t *testing.T, s Store) {
	ctx := withDeadline(t)
	joined := ms(time.Now().Add(-time.Minute))
	owner := store.Member{UserID: "u-alice", Username: "alice", Role: store.RoleOwner, JoinedAt: joined}
	if _, err := s.CreateRoom(ctx, store.Room{Name: "team", Type: store.RoomPrivate, CreatedBy: "u-alice"}, &owner); err != nil {
		t.Fatalf("CreateRoom with owner: %v", err)
	}
	m, err := s.Member(ctx, "team", "u-alice")
	if err != nil {
		t.Fatalf("Member of the owner: %v", err)
	}
	owner.Room = "team" // set by CreateRoom
	sameMember(t, "owner", m, owner)

	// A taken name stores no member row for the loser.
	other := store.Member{UserID: "u-bob", Username: "bob", Role: store.RoleOwner}
	_, err = s.CreateRoom(ctx, store.Room{Name: "team", CreatedBy: "u-bob"}, &other)
	wantErr(t, "CreateRoom of a taken name", err, store.ErrRoomExists)
	_, err = s.Member(ctx, "team", "u-bob")
	wantErr(t, "Member of the losing owner", err, store.ErrNotFound)
	if ms, err := s.Members(ctx, "team"); err != nil || len(ms) != 1 {
		t.Errorf("Members(team) = %+v, %v; want the owner only", ms, err)
	}

	// An owner without JoinedAt joined now.
	before := time.Now().Add(-time.Second)
	if _, err := s.CreateRoom(ctx, store.Room{Name: "now"}, &store.Member{UserID: "u-c", Role: store.RoleOwner}); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Member(ctx, "now", "u-c"); err != nil || m.JoinedAt.Before(before) || m.JoinedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("owner without JoinedAt: %+v, %v; want joined now", m, err)
	}

	// Concurrent creations of one name, as users joining an unknown room
	// at once: one room, one owner, and every loser, joining the room it
	// lost, stays a member.
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			user := fmt.Sprintf("u-%d", i)
			_, errs[i] = s.CreateRoom(ctx, store.Room{Name: "race"}, &store.Member{UserID: user, Role: store.RoleOwner})
			if errors.Is(errs[i], store.ErrRoomExists) {
				if err := s.PutMember(ctx, store.Member{Room: "race", UserID: user, Role: store.RoleMember}); err != nil {
					t.Errorf("PutMember of loser %s: %v", user, err)
				}
			}
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrRoomExists):
			t.Errorf("CreateRoom #%d: %v", i, err)
		}
	}
	members, err := s.Members(ctx, "race")
	owners := 0
	for _, m := range members {
		if m.Role == store.RoleOwner {
			owners++
		}
	}
	if won != 1 || err != nil || len(members) != n || owners != 1 {
		t.Errorf("%d concurrent CreateRoom won; members %+v (%v); want 1 winner, %d members, 1 owner", won, members, err, n)
	}
}

func testMembers(t *testing.T, s Store) {
	ctx := withDeadline(t)
	if _, err := s.CreateRoom(ctx, store.Room{Name: "club"}, nil); err != nil {
		t.Fatal(err)
	}
	if ms, err := s.Members(ctx, "club"); err != nil || len(ms) != 0 {
		t.Fatalf("Members of a new room = %+v, %v", ms, err)
	}
	base := ms(time.Now().Add(-time.Hour))
	bob := store.Member{Room: "club", UserID: "u-bob", Username: "bob", Role: store.RoleMember, JoinedAt: base.Add(2 * time.Second)}
	amy := store.Member{Room: "club", UserID: "u-amy", Username: "amy", Role: store.RoleAdmin, JoinedAt: base.Add(time.Second)}
	// Same JoinedAt as bob: ordered by user id after him ("u-bob" < "u-cat").
	cat := store.Member{Room: "club", UserID: "u-cat", Username: "cat", Role: store.RoleReadonly, JoinedAt: bob.JoinedAt}
	for _, m := range []store.Member{cat, bob, amy} {
		if err := s.PutMember(ctx, m); err != nil {
			t.Fatalf("PutMember %s: %v", m.UserID, err)
		}
	}
	got, err := s.Members(ctx, "club")
	if err != nil || len(got) != 3 {
		t.Fatalf("Members = %+v, %v", got, err)
	}
	for i, want := range []store.Member{amy, bob, cat} {
		sameMember(t, fmt.Sprintf("Members[%d] (by joinedAt, userId)", i), got[i], want)
	}
	m, err := s.Member(ctx, "club", "u-bob")
	if err != nil {
		t.Fatalf("Member: %v", err)
	}
	sameMember(t, "Member", m, bob)
	_, err = s.Member(ctx, "club", "u-nobody")
	wantErr(t, "Member unknown user", err, store.ErrNotFound)
	_, err = s.Member(ctx, "elsewhere", "u-bob")
	wantErr(t, "Member of another room", err, store.ErrNotFound)

	// PutMember replaces: role and mute change, one row stays.
	bob.Role, bob.MutedUntil = store.RoleReadonly, ms(time.Now().Add(10*time.Minute))
	if err := s.PutMember(ctx, bob); err != nil {
		t.Fatalf("PutMember replace: %v", err)
	}
	if m, err := s.Member(ctx, "club", "u-bob"); err != nil {
		t.Fatal(err)
	} else {
		sameMember(t, "Member after replace", m, bob)
	}
	// Unmuting writes the zero time back.
	bob.MutedUntil = time.Time{}
	if err := s.PutMember(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Member(ctx, "club", "u-bob"); err != nil || !m.MutedUntil.IsZero() {
		t.Errorf("Member after unmute = %+v, %v; want MutedUntil zero", m, err)
	}
	if got, err := s.Members(ctx, "club"); err != nil || len(got) != 3 {
		t.Errorf("Members after replace = %+v, %v; want 3", got, err)
	}
	// JoinedAt zero: now.
	before := time.Now().Add(-time.Second)
	if err := s.PutMember(ctx, store.Member{Room: "club", UserID: "u-dan", Role: store.RoleMember}); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Member(ctx, "club", "u-dan"); err != nil || m.JoinedAt.Before(before) || m.JoinedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("PutMember without JoinedAt: %+v, %v; want joined now", m, err)
	}

	if err := s.RemoveMember(ctx, "club", "u-bob"); err != nil {
		t.Fatalf("RemoveMember: %v", err)
	}
	wantErr(t, "RemoveMember again", s.RemoveMember(ctx, "club", "u-bob"), store.ErrNotFound)
	_, err = s.Member(ctx, "club", "u-bob")
	wantErr(t, "Member after RemoveMember", err, store.ErrNotFound)
	if got, err := s.Members(ctx, "club"); err != nil || len(got) != 3 || got[0].UserID != "u-amy" || got[1].UserID != "u-cat" {
		t.Errorf("Members after RemoveMember = %+v, %v", got, err)
	}
}

func testMemberRooms(t *testing.T, s Store) {
	ctx := withDeadline(t)
	if got, err := s.MemberRooms(ctx, "u-alice"); err != nil || len(got) != 0 {
		t.Fatalf("MemberRooms of nobody = %+v, %v", got, err)
	}
	for _, r := range []store.Room{
		{Name: "zeta", Type: store.RoomPrivate, Topic: "z"},
		{Name: "alpha", Type: store.RoomPublic, Title: "Alpha"},
		{Name: "dm-a-b", Type: store.RoomDirect},
		{Name: "other"},
	} {
		if _, err := s.CreateRoom(ctx, r, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []store.Member{
		{Room: "zeta", UserID: "u-alice", Role: store.RoleOwner},
		{Room: "alpha", UserID: "u-alice", Role: store.RoleReadonly, MutedUntil: ms(time.Now().Add(time.Hour))},
		{Room: "dm-a-b", UserID: "u-alice", Role: store.RoleMember},
		{Room: "dm-a-b", UserID: "u-bob", Role: store.RoleMember},
		{Room: "other", UserID: "u-bob", Role: store.RoleMember},
		{Room: "general", UserID: "u-alice", Role: store.RoleMember},
	} {
		if err := s.PutMember(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.MemberRooms(ctx, "u-alice")
	if err != nil {
		t.Fatalf("MemberRooms: %v", err)
	}
	var lines []string
	for _, mr := range got {
		if mr.Member.Room != mr.Room.Name || mr.Member.UserID != "u-alice" {
			t.Errorf("MemberRooms entry %+v: member of another room or user", mr)
		}
		lines = append(lines, mr.Room.Name+":"+mr.Room.Type+":"+mr.Member.Role)
	}
	if want := "alpha:public:readonly dm-a-b:direct:member general:public:member zeta:private:owner"; strings.Join(lines, " ") != want {
		t.Errorf("MemberRooms(u-alice) = %s, want %s (by name)", strings.Join(lines, " "), want)
	}
	if len(got) == 4 && (got[0].Room.Title != "Alpha" || got[0].Member.MutedUntil.IsZero() || got[3].Room.Topic != "z") {
		t.Errorf("MemberRooms lost fields: %+v", got)
	}
	if err := s.DeleteRoom(ctx, "zeta"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveMember(ctx, "alpha", "u-alice"); err != nil {
		t.Fatal(err)
	}
	got, err = s.MemberRooms(ctx, "u-alice")
	if err != nil || len(got) != 2 || got[0].Room.Name != "dm-a-b" || got[1].Room.Name != "general" {
		t.Errorf("MemberRooms after delete and leave = %+v, %v; want dm-a-b, general", got, err)
	}
	if got, err := s.MemberRooms(ctx, "u-bob"); err != nil || len(got) != 2 || got[0].Room.Name != "dm-a-b" || got[1].Room.Name != "other" {
		t.Errorf("MemberRooms(u-bob) = %+v, %v", got, err)
	}
}

func testDeleteRoomCascade(t *testing.T, s Store) {
	ctx := withDeadline(t)
	for _, name := range []string{"doomed", "kept"} {
		if _, err := s.CreateRoom(ctx, store.Room{Name: name}, &store.Member{UserID: "u-own", Role: store.RoleOwner}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutMember(ctx, store.Member{Room: name, UserID: "u-m", Role: store.RoleMember}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutBan(ctx, store.Ban{Room: name, UserID: "u-bad", Reason: "spam"}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateInvite(ctx, store.Invite{Token: "tok-" + name, Room: name, By: "u-own"}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateInvite(ctx, store.Invite{Token: "dir-" + name, Room: name, UserID: "u-guest", By: "u-own", MaxUses: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteRoom(ctx, "doomed"); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	if ms, err := s.Members(ctx, "doomed"); err != nil || len(ms) != 0 {
		t.Errorf("Members of a deleted room = %+v, %v", ms, err)
	}
	if bans, err := s.Bans(ctx, "doomed"); err != nil || len(bans) != 0 {
		t.Errorf("Bans of a deleted room = %+v, %v", bans, err)
	}
	if invs, err := s.Invites(ctx, "doomed"); err != nil || len(invs) != 0 {
		t.Errorf("Invites of a deleted room = %+v, %v", invs, err)
	}
	_, err := s.Invite(ctx, "tok-doomed")
	wantErr(t, "Invite of a deleted room", err, store.ErrNotFound)
	_, err = s.UseInvite(ctx, "tok-doomed", time.Now())
	wantErr(t, "UseInvite of a deleted room", err, store.ErrNotFound)
	_, err = s.Ban(ctx, "doomed", "u-bad")
	wantErr(t, "Ban of a deleted room", err, store.ErrNotFound)
	if invs, err := s.UserInvites(ctx, "u-guest", time.Now()); err != nil || len(invs) != 1 || invs[0].Room != "kept" {
		t.Errorf("UserInvites after delete = %+v, %v; want kept's only", invs, err)
	}
	// The other room is untouched.
	if ms, err := s.Members(ctx, "kept"); err != nil || len(ms) != 2 {
		t.Errorf("Members of the other room = %+v, %v", ms, err)
	}
	if bans, err := s.Bans(ctx, "kept"); err != nil || len(bans) != 1 {
		t.Errorf("Bans of the other room = %+v, %v", bans, err)
	}
	if invs, err := s.Invites(ctx, "kept"); err != nil || len(invs) != 2 {
		t.Errorf("Invites of the other room = %+v, %v", invs, err)
	}
	// A room created again under the name starts with its new owner only.
	if _, err := s.CreateRoom(ctx, store.Room{Name: "doomed"}, &store.Member{UserID: "u-new", Role: store.RoleOwner}); err != nil {
		t.Fatal(err)
	}
	if ms, err := s.Members(ctx, "doomed"); err != nil || len(ms) != 1 || ms[0].UserID != "u-new" {
		t.Errorf("Members of the re-created room = %+v, %v; want the new owner only", ms, err)
	}
	if _, err := s.Ban(ctx, "doomed", "u-bad"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the old ban holds in the re-created room: %v", err)
	}
}

func testBans(t *testing.T, s Store) {
	ctx := withDeadline(t)
	_, err := s.Ban(ctx, "r", "u-x")
	wantErr(t, "Ban unknown", err, store.ErrNotFound)
	now := ms(time.Now())
	forever := store.Ban{Room: "r", UserID: "u-x", Reason: "spam", By: "u-mod", At: now.Add(-2 * time.Minute)}
	brief := store.Ban{Room: "r", UserID: "u-y", Reason: "", By: "", At: now.Add(-3 * time.Minute), ExpiresAt: now.Add(time.Minute)}
	other := store.Ban{Room: "s", UserID: "u-x", Reason: "elsewhere", At: now.Add(-time.Minute)}
	for _, b := range []store.Ban{forever, brief, other} {
		if err := s.PutBan(ctx, b); err != nil {
			t.Fatalf("PutBan: %v", err)
		}
	}
	same := func(what string, got, want store.Ban) {
		t.Helper()
		if got.Room != want.Room || got.UserID != want.UserID || got.Reason != want.Reason || got.By != want.By ||
			!got.At.Equal(want.At) || !got.ExpiresAt.Equal(want.ExpiresAt) {
			t.Errorf("%s = %+v, want %+v", what, got, want)
		}
	}
	b, err := s.Ban(ctx, "r", "u-x")
	if err != nil {
		t.Fatalf("Ban: %v", err)
	}
	same("Ban", b, forever)
	if !b.Active(now.Add(100 * 365 * 24 * time.Hour)) {
		t.Error("a ban without expiry is not active forever")
	}
	b, err = s.Ban(ctx, "r", "u-y")
	if err != nil {
		t.Fatal(err)
	}
	same("Ban with expiry", b, brief)
	if !b.Active(now) || b.Active(now.Add(2*time.Minute)) {
		t.Errorf("ban until %v: active now %v, in 2 min %v", b.ExpiresAt, b.Active(now), b.Active(now.Add(2*time.Minute)))
	}
	bans, err := s.Bans(ctx, "r")
	if err != nil || len(bans) != 2 {
		t.Fatalf("Bans = %+v, %v", bans, err)
	}
	same("Bans[0] (by at)", bans[0], brief)
	same("Bans[1]", bans[1], forever)

	// PutBan replaces (a re-ban with another reason and an expiry).
	forever.Reason, forever.ExpiresAt, forever.At = "again", now.Add(time.Hour), now
	if err := s.PutBan(ctx, forever); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Ban(ctx, "r", "u-x"); err != nil {
		t.Fatal(err)
	} else {
		same("Ban after replace", b, forever)
	}
	// At zero: now.
	before := time.Now().Add(-time.Second)
	if err := s.PutBan(ctx, store.Ban{Room: "r", UserID: "u-z"}); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Ban(ctx, "r", "u-z"); err != nil || b.At.Before(before) || b.At.After(time.Now().Add(time.Second)) || !b.ExpiresAt.IsZero() {
		t.Errorf("PutBan without At = %+v, %v; want at now, no expiry", b, err)
	}

	if err := s.RemoveBan(ctx, "r", "u-x"); err != nil {
		t.Fatalf("RemoveBan: %v", err)
	}
	wantErr(t, "RemoveBan again", s.RemoveBan(ctx, "r", "u-x"), store.ErrNotFound)
	_, err = s.Ban(ctx, "r", "u-x")
	wantErr(t, "Ban after RemoveBan", err, store.ErrNotFound)
	if b, err := s.Ban(ctx, "s", "u-x"); err != nil || b.Reason != "elsewhere" {
		t.Errorf("the ban from another room = %+v, %v", b, err)
	}
}

func sameInvite(t *testing.T, what string, got, want store.Invite) {
	t.Helper()
	if got.Token != want.Token || got.Room != want.Room || got.UserID != want.UserID || got.By != want.By ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) ||
		got.MaxUses != want.MaxUses || got.Uses != want.Uses || got.Revoked != want.Revoked {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func tokens(invs []store.Invite) string {
	out := make([]string, len(invs))
	for i, inv := range invs {
		out[i] = inv.Token
	}
	return "[" + strings.Join(out, " ") + "]"
}

func testInvites(t *testing.T, s Store) {
	ctx := withDeadline(t)
	now := ms(time.Now())
	link := store.Invite{Token: "link", Room: "r", By: "u-own", CreatedAt: now.Add(-3 * time.Minute), ExpiresAt: now.Add(time.Hour), MaxUses: 5}
	direct := store.Invite{Token: "direct", Room: "r", UserID: "u-bob", By: "u-own", CreatedAt: now.Add(-2 * time.Minute), MaxUses: 1}
	expired := store.Invite{Token: "expired", Room: "s", UserID: "u-bob", CreatedAt: now.Add(-4 * time.Minute), ExpiresAt: now.Add(-time.Minute), MaxUses: 1}
	used := store.Invite{Token: "used", Room: "s", UserID: "u-bob", CreatedAt: now.Add(-time.Minute), MaxUses: 1, Uses: 1}
	revoked := store.Invite{Token: "revoked", Room: "t", UserID: "u-bob", CreatedAt: now.Add(-time.Minute)}
	later := store.Invite{Token: "later", Room: "t", UserID: "u-bob", CreatedAt: now, MaxUses: 1}
	forCat := store.Invite{Token: "for-cat", Room: "r", UserID: "u-cat", CreatedAt: now, MaxUses: 1}
	for _, inv := range []store.Invite{link, direct, expired, used, revoked, later, forCat} {
		if err := s.CreateInvite(ctx, inv); err != nil {
			t.Fatalf("CreateInvite %s: %v", inv.Token, err)
		}
	}
	if err := s.CreateInvite(ctx, store.Invite{Token: "link", Room: "other"}); err == nil {
		t.Error("CreateInvite of a token in use succeeded")
	}
	got, err := s.Invite(ctx, "link")
	if err != nil {
		t.Fatalf("Invite: %v", err)
	}
	sameInvite(t, "Invite(link)", got, link)
	if !got.Usable(now) || got.Usable(now.Add(2*time.Hour)) {
		t.Errorf("link until %v: usable now %v, in 2 h %v", got.ExpiresAt, got.Usable(now), got.Usable(now.Add(2*time.Hour)))
	}
	_, err = s.Invite(ctx, "nope")
	wantErr(t, "Invite unknown", err, store.ErrNotFound)
	_, err = s.Invite(ctx, "")
	wantErr(t, "Invite empty token", err, store.ErrNotFound)

	if err := s.RevokeInvite(ctx, "revoked"); err != nil {
		t.Fatalf("RevokeInvite: %v", err)
	}
	wantErr(t, "RevokeInvite unknown", s.RevokeInvite(ctx, "nope"), store.ErrNotFound)
	revoked.Revoked = true
	if got, err := s.Invite(ctx, "revoked"); err != nil {
		t.Fatal(err)
	} else {
		sameInvite(t, "Invite after RevokeInvite", got, revoked)
	}

	invs, err := s.Invites(ctx, "r")
	if err != nil || tokens(invs) != "[link direct for-cat]" {
		t.Fatalf("Invites(r) = %s, %v; want by createdAt", tokens(invs), err)
	}
	sameInvite(t, "Invites(r)[1]", invs[1], direct)
	if invs, err := s.Invites(ctx, "t"); err != nil || tokens(invs) != "[revoked later]" {
		t.Errorf("Invites(t) = %s, %v (revoked ones are listed)", tokens(invs), err)
	}

	// A user's pending invitations: direct, usable, theirs.
	mine, err := s.UserInvites(ctx, "u-bob", now)
	if err != nil || tokens(mine) != "[direct later]" {
		t.Errorf("UserInvites(u-bob) = %s, %v; want [direct later]", tokens(mine), err)
	}
	if invs, err := s.UserInvites(ctx, "", now); err != nil || len(invs) != 0 {
		t.Errorf("UserInvites(\"\") = %s, %v; links are nobody's", tokens(invs), err)
	}
	if invs, err := s.UserInvites(ctx, "u-nobody", now); err != nil || len(invs) != 0 {
		t.Errorf("UserInvites(u-nobody) = %s, %v", tokens(invs), err)
	}
	// Accepting one removes it from the pending list.
	if _, err := s.UseInvite(ctx, "direct", now); err != nil {
		t.Fatalf("UseInvite(direct): %v", err)
	}
	if mine, err := s.UserInvites(ctx, "u-bob", now); err != nil || tokens(mine) != "[later]" {
		t.Errorf("UserInvites after accepting = %s, %v; want [later]", tokens(mine), err)
	}
}

func testUseInvite(t *testing.T, s Store) {
	ctx := withDeadline(t)
	now := ms(time.Now())
	for _, inv := range []store.Invite{
		{Token: "two", Room: "r", MaxUses: 2},
		{Token: "open", Room: "r"},
		{Token: "old", Room: "r", ExpiresAt: now.Add(-time.Millisecond)},
		{Token: "soon", Room: "r", ExpiresAt: now.Add(time.Minute)},
		{Token: "off", Room: "r"},
	} {
		if err := s.CreateInvite(ctx, inv); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 2; i++ {
		inv, err := s.UseInvite(ctx, "two", now)
		if err != nil || inv.Uses != i || inv.Token != "two" || inv.Room != "r" || inv.MaxUses != 2 {
			t.Fatalf("UseInvite(two) #%d = %+v, %v; want uses %d", i, inv, err, i)
		}
	}
	_, err := s.UseInvite(ctx, "two", now)
	wantErr(t, "UseInvite of a used-up link", err, store.ErrInviteSpent)
	if inv, err := s.Invite(ctx, "two"); err != nil || inv.Uses != 2 {
		t.Errorf("a refused use counted: %+v, %v", inv, err)
	}
	for i := 1; i <= 5; i++ {
		if inv, err := s.UseInvite(ctx, "open", now); err != nil || inv.Uses != i {
			t.Fatalf("UseInvite(open) #%d = %+v, %v; unlimited", i, inv, err)
		}
	}
	_, err = s.UseInvite(ctx, "old", now)
	wantErr(t, "UseInvite of an expired link", err, store.ErrInviteSpent)
	if inv, err := s.UseInvite(ctx, "soon", now); err != nil || inv.Uses != 1 {
		t.Errorf("UseInvite before expiry = %+v, %v", inv, err)
	}
	// The time is the caller's: the same link after its expiry is spent.
	_, err = s.UseInvite(ctx, "soon", now.Add(time.Minute))
	wantErr(t, "UseInvite at the expiry", err, store.ErrInviteSpent)
	if err := s.RevokeInvite(ctx, "off"); err != nil {
		t.Fatal(err)
	}
	_, err = s.UseInvite(ctx, "off", now)
	wantErr(t, "UseInvite of a revoked link", err, store.ErrInviteSpent)
	_, err = s.UseInvite(ctx, "never-made", now)
	wantErr(t, "UseInvite unknown", err, store.ErrNotFound)
	if errors.Is(err, store.ErrInviteSpent) {
		t.Error("an unknown token is also ErrInviteSpent")
	}
}

// testUseInviteConcurrent: many users accept one link at once; exactly as
// many win as it has uses, the others get ErrInviteSpent, and the count
// is exact.
func testUseInviteConcurrent(t *testing.T, s Store) {
	ctx := withDeadline(t)
	const n = 16
	for _, c := range []struct {
		token string
		uses  int
	}{{"one", 1}, {"three", 3}} {
		if err := s.CreateInvite(ctx, store.Invite{Token: c.token, Room: "r", MaxUses: c.uses}); err != nil {
			t.Fatal(err)
		}
		errs := make([]error, n)
		got := make([]store.Invite, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				got[i], errs[i] = s.UseInvite(ctx, c.token, time.Now())
			})
		}
		close(start)
		wg.Wait()
		won := map[int]bool{}
		for i, err := range errs {
			switch {
			case err == nil:
				if won[got[i].Uses] {
					t.Errorf("%s: two uses returned uses=%d", c.token, got[i].Uses)
				}
				won[got[i].Uses] = true
			case !errors.Is(err, store.ErrInviteSpent):
				t.Errorf("%s: UseInvite #%d: %v, want nil or ErrInviteSpent", c.token, i, err)
			}
		}
		if len(won) != c.uses {
			t.Errorf("%s: %d of %d concurrent uses won, want exactly %d", c.token, len(won), n, c.uses)
		}
		if inv, err := s.Invite(ctx, c.token); err != nil || inv.Uses != c.uses {
			t.Errorf("%s after the race: %+v, %v; want uses %d", c.token, inv, err, c.uses)
		}
	}
}

func testDirectory(t *testing.T, s Store) {
	ctx := withDeadline(t)
	for _, r := range []store.Room{
		{Name: "alpha", Title: "Alpha Team", Topic: "releases"},
		{Name: "beta", Topic: "100% QA"},
		{Name: "delta", Title: "a_b and more"},
		{Name: "epsilon", Title: "axb"},
		{Name: "gamma", Topic: "Regex (.*) fans [x]+ \\d"},
		{Name: "hidden", Type: store.RoomPrivate, Title: "Alpha secret"},
		{Name: "dm-x-y", Type: store.RoomDirect},
		{Name: "omega", Topic: "100 percent"},
	} {
		if _, err := s.CreateRoom(ctx, r, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		q, after string
		limit    int
		want     string
	}{
		{"", "", 100, "[alpha beta delta epsilon gamma general omega]"},
		{"", "", 3, "[alpha beta delta]"},
		{"", "delta", 3, "[epsilon gamma general]"},
		{"", "general", 3, "[omega]"},
		{"", "omega", 3, "[]"},
		{"", "", 0, "[]"},
		{"ALPHA", "", 10, "[alpha]"},         // title, any case; not the private room
		{"team", "", 10, "[alpha]"},          // in the title
		{"RELEASE", "", 10, "[alpha]"},       // in the topic
		{"ta", "", 10, "[beta delta]"},       // in the name
		{"100%", "", 10, "[beta]"},           // % is literal
		{"%", "", 10, "[beta]"},              //
		{"a_b", "", 10, "[delta]"},           // _ is literal, not any letter (axb)
		{"_", "", 10, "[delta]"},             //
		{"(.*)", "", 10, "[gamma]"},          // regex metacharacters are literal
		{".", "", 10, "[gamma]"},             //
		{"[x]+", "", 10, "[gamma]"},          //
		{"\\d", "", 10, "[gamma]"},           // backslash (LIKE's escape) is literal
		{"\\", "", 10, "[gamma]"},            //
		{"*", "", 10, "[gamma]"},             //
		{"a", "delta", 2, "[epsilon gamma]"}, // paging with q (epsilon by its title)
		{"a", "gamma", 2, "[general omega]"},
		{"secret", "", 10, "[]"},          // private titles are not searched
		{"dm-", "", 10, "[]"},             // nor direct rooms
		{"nothing like it", "", 10, "[]"}, //
		{"a", "", 100, "[alpha beta delta epsilon gamma general omega]"},
	} {
		got, err := s.Directory(ctx, c.q, c.after, c.limit)
		if err != nil {
			t.Errorf("Directory(%q, %q, %d): %v", c.q, c.after, c.limit, err)
			continue
		}
		if roomNames(got) != c.want {
			t.Errorf("Directory(%q, %q, %d) = %s, want %s", c.q, c.after, c.limit, roomNames(got), c.want)
		}
		for _, r := range got {
			if r.Type != store.RoomPublic {
				t.Errorf("Directory listed %+v", r)
			}
		}
	}
	got, err := s.Directory(ctx, "alpha", "", 1)
	if err != nil || len(got) != 1 {
		t.Fatalf("Directory(alpha) = %+v, %v", got, err)
	}
	if got[0].Title != "Alpha Team" || got[0].Topic != "releases" || got[0].CreatedAt.IsZero() {
		t.Errorf("Directory lost fields: %+v", got[0])
	}
}

func usernames(users []store.User) string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = u.Username
	}
	return "[" + strings.Join(out, " ") + "]"
}

func testSearchUsers(t *testing.T, s Store) {
	ctx := withDeadline(t)
	for _, name := range []string{"alice", "Alfred", "bob", "a_b", "axb", "a%c", "a.b", "al(x)", "Ärger"} {
		if _, err := s.CreateUser(ctx, store.User{Username: name, PasswordHash: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		q     string
		limit int
		want  string
	}{
		{"al", 10, "[al(x) Alfred alice]"}, // by usernameKey: "(" sorts before letters
		{"AL", 10, "[al(x) Alfred alice]"},
		{"ali", 10, "[alice]"},
		{"al", 2, "[al(x) Alfred]"},
		{"a_", 10, "[a_b]"},    // _ is literal
		{"a%", 10, "[a%c]"},    // % is literal
		{"a.", 10, "[a.b]"},    // . is literal
		{"al(", 10, "[al(x)]"}, // ( is literal
		{"lice", 10, "[]"},     // a prefix, not a substring
		{"äR", 10, "[Ärger]"},
		{"", 3, "[a%c a.b a_b]"},
		{"al", 0, "[]"},
		{"zed", 10, "[]"},
	} {
		got, err := s.SearchUsers(ctx, c.q, c.limit)
		if err != nil {
			t.Errorf("SearchUsers(%q, %d): %v", c.q, c.limit, err)
			continue
		}
		if usernames(got) != c.want {
			t.Errorf("SearchUsers(%q, %d) = %s, want %s", c.q, c.limit, usernames(got), c.want)
		}
	}
	got, err := s.SearchUsers(ctx, "bob", 1)
	if err != nil || len(got) != 1 || !objectIDHex.MatchString(got[0].ID) || got[0].PasswordHash != "h" {
		t.Errorf("SearchUsers(bob) = %+v, %v", got, err)
	}
}

func testUsersChangedSince(t *testing.T, s Store) {
	ctx := withDeadline(t)
	a, err := s.CreateUser(ctx, store.User{Username: "a", PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateUser(ctx, store.User{Username: "b", PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.UsersChangedSince(ctx, time.Time{}); err != nil || usernames(got) != "[a b]" {
		t.Fatalf("UsersChangedSince(zero) = %s, %v; want every user", usernames(got), err)
	}
	if got, err := s.UsersChangedSince(ctx, b.UpdatedAt); err != nil || !strings.Contains(usernames(got), "b") {
		t.Errorf("UsersChangedSince(b's updatedAt) = %s, %v; want b (at or after)", usernames(got), err)
	}
	// Let the clock pass both creations, then change a.
	since := b.UpdatedAt.Add(time.Millisecond)
	for !time.Now().After(since.Add(time.Millisecond)) {
		time.Sleep(time.Millisecond)
	}
	if got, err := s.UsersChangedSince(ctx, since); err != nil || len(got) != 0 {
		t.Fatalf("UsersChangedSince before any change = %s, %v; want none", usernames(got), err)
	}
	a.Admin = true
	if err := s.UpdateUser(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := s.UsersChangedSince(ctx, since)
	if err != nil || len(got) != 1 || got[0].ID != a.ID || !got[0].Admin {
		t.Fatalf("UsersChangedSince after UpdateUser(a) = %+v, %v; want a, admin", got, err)
	}
	if !got[0].UpdatedAt.After(a.UpdatedAt) || got[0].UpdatedAt.Before(since) {
		t.Errorf("UpdateUser set updatedAt %v; want now (after %v)", got[0].UpdatedAt, since)
	}
	if !got[0].CreatedAt.Equal(a.CreatedAt) {
		t.Errorf("UpdateUser changed createdAt: %v, was %v", got[0].CreatedAt, a.CreatedAt)
	}
	// UpdateUser sets updatedAt to now whatever the caller passes.
	a.UpdatedAt = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.UpdateUser(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, err := s.UsersChangedSince(ctx, since); err != nil || len(got) != 1 || got[0].ID != a.ID {
		t.Errorf("UsersChangedSince after an UpdateUser passing an old updatedAt = %s, %v", usernames(got), err)
	}
}

func testFlaggedUsers(t *testing.T, s Store) {
	ctx := withDeadline(t)
	if got, err := s.FlaggedUsers(ctx); err != nil || len(got) != 0 {
		t.Fatalf("FlaggedUsers on a new store = %+v, %v", got, err)
	}
	valid := ms(time.Now().Add(-time.Minute))
	plain, err := s.CreateUser(ctx, store.User{Username: "plain", PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	boss, err := s.CreateUser(ctx, store.User{Username: "boss", PasswordHash: "h", Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	if !boss.Admin {
		t.Errorf("CreateUser dropped Admin: %+v", boss)
	}
	gone, err := s.CreateUser(ctx, store.User{Username: "gone", PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	gone.Disabled, gone.ValidAfter = true, valid
	if err := s.UpdateUser(ctx, gone); err != nil {
		t.Fatal(err)
	}
	rotated, err := s.CreateUser(ctx, store.User{Username: "rotated", PasswordHash: "h", ValidAfter: valid})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.FlaggedUsers(ctx)
	if err != nil || usernames(got) != "[boss gone rotated]" {
		t.Fatalf("FlaggedUsers = %s, %v; want [boss gone rotated] in creation order", usernames(got), err)
	}
	if !got[0].Admin || got[0].Disabled || !got[0].ValidAfter.IsZero() {
		t.Errorf("boss = %+v", got[0])
	}
	if got[1].Admin || !got[1].Disabled || !got[1].ValidAfter.Equal(valid) {
		t.Errorf("gone = %+v, want disabled, valid after %v", got[1], valid)
	}
	if !got[2].ValidAfter.Equal(valid) || got[2].ID != rotated.ID {
		t.Errorf("rotated = %+v, want valid after %v", got[2], valid)
	}
	for _, u := range []store.User{plain, boss} {
		if byID, err := s.UserByID(ctx, u.ID); err != nil || byID.Admin != u.Admin || !byID.ValidAfter.IsZero() {
			t.Errorf("UserByID(%s) = %+v, %v", u.Username, byID, err)
		}
	}
	if byName, err := s.UserByName(ctx, "GONE"); err != nil || !byName.ValidAfter.Equal(valid) || !byName.Disabled {
		t.Errorf("UserByName(GONE) = %+v, %v", byName, err)
	}
	// Clearing every flag takes a user off the list (zero ValidAfter is written).
	gone.Disabled, gone.ValidAfter = false, time.Time{}
	boss.Admin = false
	for _, u := range []store.User{gone, boss} {
		if err := s.UpdateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.FlaggedUsers(ctx); err != nil || usernames(got) != "[rotated]" {
		t.Errorf("FlaggedUsers after clearing = %s, %v; want [rotated]", usernames(got), err)
	}
	if u, err := s.UserByID(ctx, gone.ID); err != nil || !u.ValidAfter.IsZero() || u.Disabled {
		t.Errorf("after clearing: %+v, %v", u, err)
	}
}

func testMessageTypeEvent(t *testing.T, s Store) {
	ctx := withDeadline(t)
	chat := msg("r", 100, 0)
	event := msg("r", 101, 0)
	event.Type = "event"
	event.Event = `{"event":"member_kicked","target":"0123456789abcdef01234567","targetName":"bob","reason":"spam \"quoted\" ✓"}`
	event.Text = "alice kicked bob"
	res, err := s.InsertMessages(ctx, []store.Message{chat, event})
	wantResult(t, "InsertMessages", res, err, 2, 0)
	got := all(t, s, "r")
	if len(got) != 2 {
		t.Fatalf("room holds %v", ids(got))
	}
	if got[0].Type != "" || got[0].Event != "" {
		t.Errorf("chat message read back with type %q event %q", got[0].Type, got[0].Event)
	}
	if got[1].Type != event.Type || got[1].Event != event.Event || got[1].Text != event.Text {
		t.Errorf("event read back as %+v, want type %q event %s", got[1], event.Type, event.Event)
	}
	if m, err := s.LatestMessage(ctx, "r"); err != nil || m.Type != event.Type || m.Event != event.Event {
		t.Errorf("LatestMessage = %+v, %v", m, err)
	}
	// A redelivered event is a duplicate like a message.
	res, err = s.InsertMessages(ctx, []store.Message{event})
	wantResult(t, "redelivered event", res, err, 0, 1)
}
