// Command stubshot renders the rooms-and-people screens of the web client
// for docs/screenshots/ against a stub of the server: canned JSON for the
// HTTP APIs and a WebSocket that greets and answers joins. It is a picture
// tool, not a test — the browser test (web/e2e TestBrowserRooms) runs the
// page against a real `aurora serve`, and with -update-screenshots writes
// the same two files from the real thing.
//
//	go run ./web/e2e/stubshot -out docs/screenshots
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/web"
)

const (
	aliceID = "665f1c2a9b1e8a0012345601"
	bobID   = "665f1c2a9b1e8a0012345602"
	carolID = "665f1c2a9b1e8a0012345603"
	daveID  = "665f1c2a9b1e8a0012345604"
	erinID  = "665f1c2a9b1e8a0012345605"
	dmName  = "dm-" + aliceID + "-" + bobID
)

func main() {
	out := flag.String("out", "docs/screenshots", "directory for rooms.png and moderation.png")
	chromium := flag.String("chromium", "/usr/bin/chromium", "the browser")
	flag.Parse()
	if err := run(*out, *chromium); err != nil {
		log.Fatal(err)
	}
}

func run(out, chromium string) error {
	srv := httptest.NewServer(stub())
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
	)
	defer cancelAlloc()
	tab, cancelTab := chromedp.NewContext(alloc)
	defer cancelTab()

	session, _ := json.Marshal(map[string]any{
		"token": "stub", "expiresAt": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		"user": map[string]string{"id": aliceID, "username": "alice"},
	})
	rooms, _ := json.Marshal([]string{"general", "secret-plans", "design", dmName})
	steps := []chromedp.Action[chromedp.Void]{
		chromedp.EmulateViewport(1280, 800),
		chromedp.Navigate(srv.URL),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`localStorage.setItem("aurora.session", %q); localStorage.setItem("aurora.rooms.%s", %q); localStorage.setItem("aurora.current.%s", "secret-plans")`,
			session, aliceID, rooms, aliceID)),
		chromedp.Reload(),
	}
	if err := chromedp.Do(tab, steps...); err != nil {
		return fmt.Errorf("open the page: %w", err)
	}
	ready := `document.querySelectorAll('#messages li.system').length >= 3 && document.querySelector('#offline-list li') !== null && !document.getElementById('invites-section').hidden && document.getElementById('conn-status').dataset.state === "online"`
	if err := waitFor(tab, ready); err != nil {
		return fmt.Errorf("wait for the room view: %w", err)
	}
	if err := shoot(tab, filepath.Join(out, "rooms.png")); err != nil {
		return err
	}
	open := `(() => { const li = [...document.querySelectorAll('#member-list li')].find(l => l.querySelector('.member-name').textContent === "carol"); li.querySelector('.member-btn').click(); return true; })()`
	if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](open)); err != nil {
		return fmt.Errorf("open carol's menu: %w", err)
	}
	if err := waitFor(tab, `document.getElementById('member-dialog').open && !document.getElementById('member-mod').hidden`); err != nil {
		return fmt.Errorf("wait for the moderation menu: %w", err)
	}
	if err := chromedp.Do(tab, chromedp.SendKeys(chromedp.ID("member-reason"), "off topic")); err != nil {
		return fmt.Errorf("type a reason: %w", err)
	}
	return shoot(tab, filepath.Join(out, "moderation.png"))
}

// waitFor polls expr in the page (chromedp.Poll compiles with new
// Function, which the page's CSP forbids).
func waitFor(tab context.Context, expr string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ok, err := chromedp.Run(tab, chromedp.Evaluate[bool](`(() => { try { return !!(`+expr+`); } catch (e) { return false; } })()`))
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("timed out: %s", expr)
}

func shoot(tab context.Context, path string) error {
	// Let the fonts and the last layout settle.
	time.Sleep(300 * time.Millisecond)
	png, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
	if err != nil {
		return fmt.Errorf("screenshot %s: %w", path, err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	log.Printf("wrote %s", path)
	return nil
}

type obj = map[string]any

func stub() http.Handler {
	now := time.Now()
	ms := func(ago time.Duration) int64 { return now.Add(-ago).UnixMilli() }
	id := func(ago time.Duration, seq int) string { return fmt.Sprintf("%d-%d", ms(ago), seq) }
	msg := func(ago time.Duration, seq int, room, user, uid, text string) obj {
		return obj{"type": "message", "id": id(ago, seq), "room": room, "user": user, "userId": uid, "text": text, "ts": ms(ago)}
	}
	event := func(ago time.Duration, seq int, room, user, uid string, fields obj) obj {
		f := obj{"type": "room_event", "id": id(ago, seq), "room": room, "user": user, "userId": uid, "ts": ms(ago)}
		for k, v := range fields {
			f[k] = v
		}
		return f
	}
	room := func(name, typ, title, topic, role string) obj {
		return obj{"name": name, "type": typ, "title": title, "topic": topic, "role": role, "createdBy": aliceID, "createdAt": now.Add(-48 * time.Hour).Format(time.RFC3339)}
	}
	dm := room(dmName, "direct", "", "", "member")
	dm["peer"] = obj{"userId": bobID, "username": "bob"}
	rooms := []obj{
		room("general", "public", "", "", "member"),
		room("secret-plans", "private", "", "Q3 plans, before they are announced", "owner"),
		room("design", "public", "", "Mockups and reviews", "admin"),
		dm,
	}
	history := map[string][]obj{
		"secret-plans": {
			event(40*time.Minute, 0, "secret-plans", "alice", aliceID, obj{"event": "room_created", "roomType": "private"}),
			event(39*time.Minute, 0, "secret-plans", "alice", aliceID, obj{"event": "member_invited", "target": bobID, "targetName": "bob"}),
			event(38*time.Minute, 0, "secret-plans", "bob", bobID, obj{"event": "member_joined"}),
			event(37*time.Minute, 0, "secret-plans", "carol", carolID, obj{"event": "member_joined"}),
			msg(30*time.Minute, 0, "secret-plans", "alice", aliceID, "The plan is ready: launch on the 14th, beta for the design partners first."),
			msg(29*time.Minute, 0, "secret-plans", "bob", bobID, "Great, reading it now."),
			msg(28*time.Minute, 0, "secret-plans", "carol", carolID, "Can I share it with my team?"),
			msg(27*time.Minute, 0, "secret-plans", "alice", aliceID, "Not yet, please: only this room until Friday."),
			event(20*time.Minute, 0, "secret-plans", "alice", aliceID, obj{"event": "role_changed", "target": bobID, "targetName": "bob", "role": "admin"}),
			event(12*time.Minute, 0, "secret-plans", "alice", aliceID, obj{"event": "member_muted", "target": daveID, "targetName": "dave", "until": now.Add(48 * time.Minute).UnixMilli(), "reason": "flooding"}),
			msg(5*time.Minute, 0, "secret-plans", "bob", bobID, "I added the budget to the doc."),
		},
	}
	members := []obj{
		{"userId": aliceID, "username": "alice", "role": "owner"},
		{"userId": bobID, "username": "bob", "role": "admin"},
		{"userId": carolID, "username": "carol", "role": "member"},
		{"userId": daveID, "username": "dave", "role": "member", "mutedUntil": now.Add(48 * time.Minute).UTC().Format(time.RFC3339)},
		{"userId": erinID, "username": "erin", "role": "readonly"},
	}
	online := []obj{{"userId": aliceID, "username": "alice"}, {"userId": bobID, "username": "bob"}, {"userId": carolID, "username": "carol"}}

	mux := http.NewServeMux()
	jsonAt := func(pattern string, body func(*http.Request) any) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			app.WriteJSON(w, http.StatusOK, body(r))
		})
	}
	jsonAt("GET /api/auth/me", func(*http.Request) any { return obj{"id": aliceID, "username": "alice"} })
	jsonAt("GET /api/rooms", func(*http.Request) any { return obj{"rooms": rooms} })
	jsonAt("GET /api/invites", func(*http.Request) any {
		return obj{"invites": []obj{{"token": "t1", "room": "launch-party", "by": erinID, "byName": "erin", "maxUses": 1}}}
	})
	jsonAt("GET /api/rooms/{room}", func(r *http.Request) any {
		for _, rm := range rooms {
			if rm["name"] == r.PathValue("room") {
				return obj{"room": rm, "role": rm["role"], "serverAdmin": false}
			}
		}
		return obj{"room": rooms[0], "role": "member"}
	})
	jsonAt("GET /api/rooms/{room}/members", func(r *http.Request) any {
		if r.PathValue("room") == "secret-plans" {
			return obj{"members": members}
		}
		return obj{"members": members[:3]}
	})
	jsonAt("GET /api/rooms/{room}/presence", func(*http.Request) any { return obj{"members": online, "count": len(online)} })
	jsonAt("GET /api/rooms/{room}/messages", func(r *http.Request) any {
		h := history[r.PathValue("room")]
		if r.URL.Query().Get("before") != "" || r.URL.Query().Get("after") != "" {
			h = nil
		}
		// Newest first, as the server pages them.
		out := make([]obj, len(h))
		for i, m := range h {
			out[len(h)-1-i] = m
		}
		return obj{"messages": out, "hasMore": false}
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"aurora.v1"}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		write := func(v any) {
			b, _ := json.Marshal(v)
			_ = c.Write(ctx, websocket.MessageText, b)
		}
		write(obj{"type": "welcome", "user": obj{"id": aliceID, "username": "alice"}})
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			var f obj
			if json.Unmarshal(data, &f) != nil {
				continue
			}
			switch f["type"] {
			case "join":
				write(obj{"type": "joined", "room": f["room"], "members": online})
			case "ping":
				write(obj{"type": "pong"})
			}
		}
	})
	mux.Handle("/", http.FileServerFS(web.Files))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", app.ContentSecurityPolicy)
		if strings.HasPrefix(r.URL.Path, "/api/") && r.Method != http.MethodGet {
			app.WriteError(w, http.StatusForbidden, "the screenshot stub changes nothing")
			return
		}
		mux.ServeHTTP(w, r)
	})
}
