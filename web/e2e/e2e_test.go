// Package e2e_test drives the web client in a real headless Chromium against
// a real `aurora serve` process: two users register, chat, see each other's
// presence and typing, survive a server restart, and an HTML payload stays
// text.
//
// The server uses its embedded stores; under .ci/with-redis
// (AURORA_TEST_REDIS_URL set, as in CI's second run) it uses that real
// Redis instead, flushed first.
//
// It needs the Debian packages chromium and chromium-driver. Without a
// browser the test skips, except under CI=true or AURORA_E2E=1, where a
// missing browser is a failure. Screenshots go to test-output/e2e/ at the
// repository root; with -update-screenshots the desktop conversation is
// also copied to docs/screenshots/conversation.png for the README.
package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"

	"github.com/auroradev/aurora/app/apptest"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "also write docs/screenshots/conversation.png")

// Bounds of the scenario: every wait has one, and the whole test stays
// within testTimeout.
const (
	testTimeout    = 3 * time.Minute
	stepTimeout    = 20 * time.Second
	restartTimeout = 45 * time.Second // backoff (at most 10 s) + a server start
	serverStart    = 60 * time.Second
	serverStop     = 40 * time.Second
)

// The server runs at the product's default limits: 3 messages per second per
// user in a room, 10 per second per user, in fixed 1 s windows. The
// browser users send no faster than a person, the scripted ones wait out
// every rate_limited answer, and the one deliberate burst checks what the
// page shows for it.
var serverEnv = []string{"AURORA_LOG_LEVEL=debug"}

func TestBrowserChat(t *testing.T) {
	chromium := findChromium(t)
	root := repoRoot(t)
	outDir := filepath.Join(root, "test-output", "e2e")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatalf("create %s: %v", outDir, err)
	}
	stale, _ := filepath.Glob(filepath.Join(outDir, "failure-*.png"))
	for _, f := range stale {
		_ = os.Remove(f)
	}

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)

	bin := apptest.Binary(t)
	srv := newServer(t, bin, outDir)
	srv.start(ctx)
	base := "http://" + srv.addr

	// One browser, two isolated browser contexts: separate localStorage, so
	// two separate sessions.
	browser := startBrowser(ctx, t, chromium)
	alice := openUser(t, browser, "alice", outDir)
	bob := openUser(t, browser, "bob", outDir)

	// --- Log in and register -------------------------------------------------
	alice.do(chromedp.Navigate(base))
	alice.waitFor("the login screen", `!document.getElementById('auth-view').hidden`)
	alice.screenshot("login")

	// Unknown user: the server's 401 in words.
	alice.do(
		chromedp.SendKeys(chromedp.ID("auth-username"), "alice"),
		chromedp.SendKeys(chromedp.ID("auth-password"), "correct horse\n"),
	)
	alice.waitFor("the invalid-credentials message", textIs("auth-error", "Wrong username or password."))
	alice.register("alice", "correct horse")

	bob.do(chromedp.Navigate(base))
	bob.waitFor("the login screen", `!document.getElementById('auth-view').hidden`)
	// A taken username: the server's 409 in words.
	bob.do(
		chromedp.Click(chromedp.ID("auth-switch")),
		chromedp.SendKeys(chromedp.ID("auth-username"), "alice"),
		chromedp.SendKeys(chromedp.ID("auth-password"), "battery staple\n"),
	)
	bob.waitFor("the username-taken message", textIs("auth-error", "That username is taken. Pick another one."))
	bob.clear("auth-username", "auth-password")
	// A weak password is refused before any request.
	bob.do(
		chromedp.SendKeys(chromedp.ID("auth-username"), "bob"),
		chromedp.SendKeys(chromedp.ID("auth-password"), "short\n"),
	)
	bob.waitFor("the weak-password message", textIs("auth-error", "The password needs at least 8 characters."))
	bob.clear("auth-username", "auth-password")
	bob.register("bob", "battery staple")

	alice.waitOnline()
	bob.waitOnline()

	// --- general: both ways, presence -------------------------------------------
	alice.send("hello from alice")
	bob.waitFor("alice's message", countIs("hello from alice", 1))
	bob.send("hi alice, bob here")
	alice.waitFor("bob's message", countIs("hi alice, bob here", 1))
	alice.waitFor("alice's own message marked", `[...document.querySelectorAll('#messages li.own[data-id] .msg-body')].some(b => b.textContent === "hello from alice")`)
	alice.waitFor("bob in alice's member list", membersAre("alice", "bob"))
	bob.waitFor("alice in bob's member list", membersAre("alice", "bob"))

	// --- typing indicator ------------------------------------------------------------
	bob.do(chromedp.SendKeys(chromedp.ID("composer-input"), "I am typing"))
	alice.waitFor("bob's typing indicator", `document.getElementById('typing').textContent === "bob is typing…"`)
	bob.do(chromedp.Focus(chromedp.ID("composer-input")), enter)
	alice.waitFor("bob's typed message", countIs("I am typing", 1))
	alice.waitFor("the typing indicator to clear", `document.getElementById('typing').textContent === ""`)

	// --- a second room ------------------------------------------------------------------
	alice.do(chromedp.SendKeys(chromedp.ID("join-room"), "Project-X\n")) // lower-cased by the page
	alice.waitFor("project-x to open", `document.getElementById('room-title').textContent === "project-x"`)
	alice.waitFor("alice alone in project-x", membersAre("alice"))
	bob.do(chromedp.SendKeys(chromedp.ID("join-room"), "project-x\n"))
	bob.waitFor("project-x to open", `document.getElementById('room-title').textContent === "project-x"`)
	alice.waitFor("bob's arrival in project-x", membersAre("alice", "bob"))
	bob.waitFor("both in project-x", membersAre("alice", "bob"))
	alice.send("welcome to project x")
	bob.waitFor("the project-x message", countIs("welcome to project x", 1))
	bob.send("thanks!")
	alice.waitFor("bob's project-x reply", countIs("thanks!", 1))

	// A message in general while bob looks at project-x counts as unread.
	alice.switchRoom("general")
	alice.send("back in general, see https://example.com/docs.")
	bob.waitFor("an unread count on general", `document.querySelector('#room-list li[data-room="general"] .room-unread').textContent === "1"`)
	bob.switchRoom("general")
	bob.waitFor("general read", `document.querySelector('#room-list li[data-room="general"] .room-unread').hidden`)
	bob.waitFor("a safe link", `(() => { const a = [...document.querySelectorAll('#messages .msg-body a')].find(a => a.textContent === "https://example.com/docs"); return a && a.href === "https://example.com/docs" && a.rel === "noopener noreferrer" && a.target === "_blank"; })()`)

	// --- HTML stays text ---------------------------------------------------------------
	const payload = `<img src=x onerror=alert(1)>`
	alice.send(payload)
	for _, u := range []*user{alice, bob} {
		u.waitFor("the HTML payload as text", countIs(payload, 1))
		u.check("no element was created from the payload",
			`(() => { const b = [...document.querySelectorAll('#messages li[data-id] .msg-body')].find(b => b.textContent === `+jsString(payload)+`); return b.childElementCount === 0 && b.childNodes.length === 1 && b.firstChild.nodeType === Node.TEXT_NODE && document.querySelectorAll('#messages img').length === 0; })()`)
	}

	// --- history paging, the new-messages pill, presence going offline ---------------
	// carol, dave and erin are programs: they take turns filling a room as
	// fast as the default limit lets each of them (3 messages a second), so
	// some of their messages are refused and sent again after retryAfterMs.
	// dave and erin leave before bob comes.
	carol := dialChat(t, base, "carol", "carol's password")
	posters := []*chatClient{carol, dialChat(t, base, "dave", "dave's password"), dialChat(t, base, "erin", "erin's password")}
	for _, p := range posters {
		p.join("history")
	}
	const pages = 60 // more than one page of 50
	filling := time.Now()
	for i := 1; i <= pages; i++ {
		posters[(i-1)%len(posters)].send("history", historyText(i))
	}
	limited := 0
	for _, p := range posters {
		limited += p.limited
	}
	t.Logf("%d messages in #history from %d users in %s, %d of them refused first and sent again after retryAfterMs", pages, len(posters), time.Since(filling).Round(time.Millisecond), limited)
	if limited == 0 {
		t.Fatalf("no rate_limited answer in %d messages from %d users as fast as the server lets them: not the default limit of 3 per second", pages, len(posters))
	}
	for _, p := range posters[1:] {
		p.close()
	}
	bob.do(chromedp.SendKeys(chromedp.ID("join-room"), "history\n"))
	// A page is 50 entries of the room's stream: its messages and its room
	// events (the room's creation, the joins), shown as system lines.
	bob.waitFor("the newest page of history", `document.querySelectorAll('#messages li[data-id]').length === 50 && document.querySelector('#history-status button') !== null`)
	historyAll := make([]string, pages)
	for i := range historyAll {
		historyAll[i] = historyText(i + 1)
	}
	bob.check("the newest page is the newest 50, its messages the last ones in order", `(() => { const shown = [...document.querySelectorAll('#messages li[data-id]:not(.system) .msg-body')].map(b => b.textContent);
		return shown.length >= 45 && JSON.stringify(shown) === JSON.stringify(`+jsArray(historyAll)+`.slice(-shown.length)); })()`)
	bob.waitFor("carol in the member list", membersAre("bob", "carol"))
	evaluate[chromedp.Void](bob, `document.getElementById('scroller').scrollTop = 0`)
	bob.waitFor("the older page", `document.querySelectorAll('#messages li[data-id]:not(.system)').length === `+fmt.Sprint(pages)+` && document.getElementById('history-status').textContent === "This is the beginning of #history."`)
	bob.messageIDs() // in order, each once
	if n := evaluate[float64](bob, `document.querySelectorAll('#messages li[data-id]:not(.system)').length`); n != pages {
		t.Fatalf("history shows %v messages, want %d", n, pages)
	}
	bob.check("the reading position kept", `document.getElementById('scroller').scrollTop > 0`)
	evaluate[chromedp.Void](bob, `document.getElementById('scroller').scrollTop = 0`)
	carol.send("history", "anyone reading?")
	bob.waitFor("carol's new message", countIs("anyone reading?", 1))
	bob.waitFor("the new-messages pill", `!document.getElementById('new-pill').hidden`)
	bob.check("no jump to the bottom", `(() => { const s = document.getElementById('scroller'); return s.scrollHeight - s.scrollTop - s.clientHeight > 100; })()`)
	bob.do(chromedp.Click(chromedp.ID("new-pill")))
	bob.waitFor("the bottom", `(() => { const s = document.getElementById('scroller'); return document.getElementById('new-pill').hidden && s.scrollHeight - s.scrollTop - s.clientHeight < 50; })()`)
	carol.close()
	bob.waitFor("carol going offline", membersAre("bob"))

	// --- resizing: at the bottom stays at the bottom, reading stays put ---------------
	// The history's lines wrap at 360 px, so narrowing the window makes the
	// list much taller while the scroll position, left alone, would stay put.
	bob.scrollToBottom()
	bob.settle()
	bob.check("a list longer than the view, at its bottom", `document.getElementById('scroller').scrollHeight > 2 * document.getElementById('scroller').clientHeight && `+atListBottom)
	wide := evaluate[float64](bob, scrollHeight)
	bob.do(chromedp.EmulateViewport(360, 740))
	bob.waitFor("the history rewrapped at 360 px", fmt.Sprintf(`%s > %f`, scrollHeight, wide+1000))
	bob.settle()
	bob.check("still at the bottom at 360 px, the newest message in view", atListBottom+` && document.querySelector('#messages li:last-child .msg-body').textContent === "anyone reading?"`)
	narrow := evaluate[float64](bob, scrollHeight)
	bob.do(chromedp.EmulateViewport(1280, 800))
	bob.waitFor("the history unwrapped at 1280 px", fmt.Sprintf(`%s < %f`, scrollHeight, narrow-1000))
	bob.settle()
	bob.check("still at the bottom at 1280 px", atListBottom)
	// Scrolled up to read: no pull to the bottom, the message read stays put.
	reading := `[...document.querySelectorAll('#messages li[data-id]:not(.system)')].find(li => li.querySelector('.msg-body').textContent === ` + jsString(historyText(20)) + `)`
	readingTop := `(` + reading + `.getBoundingClientRect().top - document.getElementById('scroller').getBoundingClientRect().top)`
	evaluate[chromedp.Void](bob, reading+`.scrollIntoView({ block: "start" })`)
	bob.settle()
	before := evaluate[float64](bob, readingTop)
	bob.do(chromedp.EmulateViewport(360, 740))
	bob.waitFor("the history rewrapped at 360 px", fmt.Sprintf(`%s > %f`, scrollHeight, wide+1000))
	bob.settle()
	bob.check("not pulled to the bottom", `(() => { const s = document.getElementById('scroller'); return s.scrollHeight - s.scrollTop - s.clientHeight > 1000; })()`)
	bob.check("the message read where it was", fmt.Sprintf(`Math.abs(%s - %f) <= 2`, readingTop, before))
	bob.do(chromedp.EmulateViewport(1280, 800))
	bob.switchRoom("general")

	// The character counter near the 4000 limit.
	evaluate[chromedp.Void](alice, `(() => { const i = document.getElementById('composer-input'); i.value = "x".repeat(3990); i.dispatchEvent(new Event('input')); })()`)
	alice.waitFor("the counter", textIs("counter", "10 left")+` && !document.getElementById('send').disabled`)
	evaluate[chromedp.Void](alice, `(() => { const i = document.getElementById('composer-input'); i.value = "x".repeat(4001); i.dispatchEvent(new Event('input')); })()`)
	alice.waitFor("the counter over the limit", textIs("counter", "1 over the limit")+` && document.getElementById('send').disabled`)
	evaluate[chromedp.Void](alice, `(() => { const i = document.getElementById('composer-input'); i.value = ""; i.dispatchEvent(new Event('input')); })()`)
	alice.waitFor("the counter to go", textIs("counter", "")+` && !document.getElementById('send').disabled`)

	// --- the rate limit, as the page shows it --------------------------------------------
	// Four messages in one go (submitted by one script, faster than anyone
	// types): three pass, the fourth is refused with rate_limited. The page marks it
	// failed, says how long to wait, and offers Retry; after that wait,
	// Retry sends it (same clientId) and it is accepted. Nobody sees any of
	// the four twice.
	alice.switchRoom("project-x")
	bob.switchRoom("project-x")
	burst := []string{"burst 1", "burst 2", "burst 3", "burst 4"}
	evaluate[chromedp.Void](alice, `(() => { const i = document.getElementById('composer-input');
		for (const t of `+jsArray(burst)+`) { i.value = t; i.dispatchEvent(new Event('input')); document.getElementById('composer').requestSubmit(); } })()`)
	alice.waitFor("three of the burst accepted", everyOnceExpr(burst[:3]))
	const refused = "Not sent: you are sending too fast. Wait 1 s and retry."
	alice.waitFor("the fourth refused, with Retry", `(() => { const f = [...document.querySelectorAll('#messages li.failed')];
		return f.length === 1 && !f[0].dataset.id && f[0].querySelector('.msg-body').textContent === "burst 4" && f[0].querySelector('.msg-status').textContent.startsWith(`+jsString(refused)+`) && f[0].querySelector('.msg-status .retry') !== null; })()`)
	bob.waitFor("the three accepted", everyOnceExpr(burst[:3]))
	for _, u := range []*user{alice, bob} {
		u.check("the refused message not shown as sent", countIs("burst 4", 0))
	}
	// As the page says: wait 1 s (the window's rest, retryAfterMs), then Retry.
	time.Sleep(time.Second)
	alice.do(chromedp.Click(chromedp.CSS(`#messages li.failed .msg-status .retry`)))
	for _, u := range []*user{alice, bob} {
		u.waitFor("the retried message accepted, each of the burst once", everyOnceExpr(burst)+` && document.querySelectorAll('#messages li.pending, #messages li.failed').length === 0`)
		u.check("the burst in order", `JSON.stringify([...document.querySelectorAll('#messages li[data-id] .msg-body')].slice(-4).map(b => b.textContent)) === `+jsString(jsArray(burst)))
		u.messageIDs()
	}
	alice.switchRoom("general")
	bob.switchRoom("general")

	// --- restart: nothing lost, nothing twice -----------------------------------------
	// bob writes the last messages before it, so that alice's three after it
	// (two typed while the server is down, one after) are within her limit
	// of 3 a second in general, however fast the restart.
	bob.send("before restart 1")
	bob.send("before restart 2")
	alice.waitFor("the messages before the restart", countIs("before restart 2", 1))

	srv.stop()
	for _, u := range []*user{alice, bob} {
		u.waitFor("the reconnecting banner", `!document.getElementById('banner').hidden`)
	}
	// Typed while the server is down: pending, then sent after the reconnect.
	for _, text := range []string{"during restart 1", "during restart 2"} {
		alice.do(chromedp.SendKeys(chromedp.ID("composer-input"), text), enter)
		alice.waitFor("a pending message", `[...document.querySelectorAll('#messages li.pending:not([data-id]) .msg-body')].some(b => b.textContent === `+jsString(text)+`)`)
	}
	srv.start(ctx)
	alice.send("after restart")

	all := []string{
		"hello from alice", "hi alice, bob here", "I am typing", "back in general, see https://example.com/docs.", payload,
		"before restart 1", "before restart 2", "during restart 1", "during restart 2", "after restart",
	}
	everyOnce := everyOnceExpr(all)
	var lists [2][]string
	for i, u := range []*user{alice, bob} {
		u.waitForWithin(restartTimeout, "every message exactly once after the restart", everyOnce)
		u.waitFor("no pending message", `document.querySelectorAll('#messages li.pending, #messages li.failed').length === 0`)
		u.waitFor("the banner to go", `document.getElementById('banner').hidden`)
		lists[i] = u.messageIDs()
	}
	if !slices.Equal(lists[0], lists[1]) {
		t.Fatalf("alice and bob see different messages in general:\nalice %v\nbob   %v", lists[0], lists[1])
	}
	if len(lists[0]) != len(all) {
		t.Fatalf("general shows %d messages, want %d: %v", len(lists[0]), len(all), lists[0])
	}

	// A fresh load reads the same from the server: persisted once each.
	bob.do(chromedp.Reload())
	bob.waitOnline()
	bob.waitFor("the history after a reload", everyOnce)
	if got := bob.messageIDs(); !slices.Equal(got, lists[0]) {
		t.Fatalf("after a reload bob sees %v, want %v", got, lists[0])
	}
	// project-x came back too, from localStorage, with its messages once.
	bob.switchRoom("project-x")
	bob.waitFor("project-x after the restart", everyOnceExpr(append([]string{"welcome to project x", "thanks!"}, burst...)))

	// --- screenshots -----------------------------------------------------------------
	alice.do(chromedp.SendKeys(chromedp.ID("composer-input"), "typing a reply"))
	// Alice is typing: bob's screen shows the indicator in the screenshot.
	bob.switchRoom("general")
	bob.waitFor("alice typing", `document.getElementById('typing').textContent === "alice is typing…"`)
	bob.scrollToBottom()
	desktop := bob.screenshot("conversation-desktop")
	if *updateScreenshots {
		dst := filepath.Join(root, "docs", "screenshots", "conversation.png")
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatalf("create %s: %v", filepath.Dir(dst), err)
		}
		if err := os.WriteFile(dst, desktop, 0o644); err != nil {
			t.Fatalf("write %s: %v", dst, err)
		}
	}
	bob.do(chromedp.EmulateViewport(360, 740))
	bob.waitFor("the room list to collapse", `getComputedStyle(document.getElementById('sidebar-toggle')).display !== "none" && getComputedStyle(document.getElementById('sidebar')).visibility === "hidden"`)
	bob.check("no horizontal overflow at 360 px", `document.documentElement.scrollWidth <= 360`)
	bob.scrollToBottom()
	bob.screenshot("conversation-360")
	bob.do(chromedp.Click(chromedp.ID("sidebar-toggle")))
	bob.waitFor("the room drawer", `getComputedStyle(document.getElementById('sidebar')).visibility === "visible" && document.getElementById('sidebar').getBoundingClientRect().left === 0 && document.getElementById('sidebar-toggle').getAttribute('aria-expanded') === "true"`)
	bob.screenshot("rooms-360")

	for _, u := range []*user{alice, bob} {
		u.assertClean()
	}
}

// ---- The user's tab ----------------------------------------------------------------

type user struct {
	t      *testing.T
	name   string
	ctx    context.Context
	outDir string

	dialogs  atomic.Int32
	mu       sync.Mutex
	problems []string // uncaught exceptions and CSP violations
}

func openUser(t *testing.T, browser context.Context, name, outDir string) *user {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel() // ends the event loops below
		wg.Wait()
	})
	u := &user{t: t, name: name, ctx: ctx, outDir: outDir}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("%s: open a tab: %v", name, err)
	}
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	console := chromedp.Console(ctx)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			u.dialogs.Add(1)
			u.note(fmt.Sprintf("a %s dialog opened: %q", ev.Type, ev.Message))
			// Dismiss it, or the page stays blocked.
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	go func() {
		defer wg.Done()
		for m, err := range console {
			if err != nil {
				return
			}
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				u.note(m.String())
			}
		}
	}()
	return u
}

func (u *user) note(s string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.problems = append(u.problems, s)
}

func (u *user) assertClean() {
	u.t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if n := u.dialogs.Load(); n != 0 {
		u.t.Errorf("%s: %d JavaScript dialogs opened", u.name, n)
	}
	for _, p := range u.problems {
		u.t.Errorf("%s: page problem: %s", u.name, p)
	}
}

func (u *user) do(steps ...chromedp.Action[chromedp.Void]) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		u.fail("browser action failed: %v", err)
	}
}

// waitFor waits until the JavaScript expression is true, checked in the
// page on every DOM change and every 100 ms. (chromedp.Poll compiles its
// predicate with new Function, which the page's CSP forbids.)
func (u *user) waitFor(what, expr string) {
	u.t.Helper()
	u.waitForWithin(stepTimeout, what, expr)
}

func (u *user) waitForWithin(d time.Duration, what, expr string) {
	u.t.Helper()
	js := fmt.Sprintf(`new Promise((resolve) => {
		const check = () => { try { return !!(%s); } catch (e) { return false; } };
		if (check()) { resolve(true); return; }
		const done = (v) => { obs.disconnect(); clearInterval(tick); clearTimeout(timer); resolve(v); };
		const obs = new MutationObserver(() => { if (check()) done(true); });
		obs.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
		// Layout and transitions change without a mutation: look again now and then.
		const tick = setInterval(() => { if (check()) done(true); }, 100);
		const timer = setTimeout(() => done(check()), %d);
	})`, expr, d.Milliseconds())
	ctx, cancel := context.WithTimeout(u.ctx, d+5*time.Second)
	defer cancel()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js, chromedp.EvalAwaitPromise))
	if err != nil {
		u.fail("waiting for %s: %v", what, err)
	}
	if !ok {
		u.fail("timed out after %s waiting for %s (%s)", d, what, expr)
	}
}

// check asserts that the expression is true now.
func (u *user) check(what, expr string) {
	u.t.Helper()
	ok := evaluate[bool](u, expr)
	if !ok {
		u.fail("%s: false: %s", what, expr)
	}
}

func evaluate[T any](u *user, expr string) T {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		u.fail("evaluate %s: %v", expr, err)
	}
	return v
}

// fail saves what the page looked like, then fails the test.
func (u *user) fail(format string, args ...any) {
	u.t.Helper()
	msg := fmt.Sprintf(format, args...)
	ctx, cancel := context.WithTimeout(u.ctx, 5*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
		name := filepath.Join(u.outDir, "failure-"+u.name+".png")
		if os.WriteFile(name, png, 0o644) == nil {
			msg += "\nscreenshot: " + name
		}
	}
	if text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`)); err == nil {
		msg += "\npage text:\n" + text
	}
	// Exceptions and CSP violations so far often say why.
	u.mu.Lock()
	for _, p := range u.problems {
		msg += "\npage problem: " + p
	}
	u.mu.Unlock()
	u.t.Fatalf("%s: %s", u.name, msg)
}

// clear empties input fields. (chromedp.Clear resets the value attribute,
// not what was typed.)
func (u *user) clear(ids ...string) {
	u.t.Helper()
	for _, id := range ids {
		evaluate[chromedp.Void](u, `document.getElementById(`+jsString(id)+`).value = ""`)
	}
}

func (u *user) register(name, password string) {
	u.t.Helper()
	u.clear("auth-username", "auth-password")
	if !evaluate[bool](u, `document.getElementById('auth-submit').textContent === "Create account"`) {
		u.do(chromedp.Click(chromedp.ID("auth-switch")))
	}
	u.waitFor("the register form", `document.getElementById('auth-submit').textContent === "Create account"`)
	u.do(
		chromedp.SendKeys(chromedp.ID("auth-username"), name),
		chromedp.SendKeys(chromedp.ID("auth-password"), password+"\n"),
	)
	u.waitFor("the chat after registering", `!document.getElementById('chat-view').hidden && document.getElementById('me-name').textContent === `+jsString(name))
}

func (u *user) waitOnline() {
	u.t.Helper()
	u.waitFor("the connection", `document.getElementById('conn-status').dataset.state === "online" && document.getElementById('banner').hidden`)
}

// send types text and Enter, then waits for the server's ack: the message
// shown once, with its id, no longer pending.
func (u *user) send(text string) {
	u.t.Helper()
	u.do(chromedp.SendKeys(chromedp.ID("composer-input"), text), enter)
	u.waitFor("the ack of "+text, countIs(text, 1)+` && document.querySelectorAll('#messages li.pending').length === 0`)
}

func (u *user) switchRoom(room string) {
	u.t.Helper()
	u.do(chromedp.Click(chromedp.CSS(`#room-list li[data-room="` + room + `"] .room-btn`)))
	u.waitFor("room "+room, `document.getElementById('room-title').textContent === `+jsString(room))
}

// settle waits two animation frames: by then the page has handled the
// layout of the last change (resize observers run after layout in a frame,
// scroll events at the start of the next).
func (u *user) settle() {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, stepTimeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve(true))))`, chromedp.EvalAwaitPromise))
	if err != nil {
		u.fail("waiting two animation frames: %v", err)
	}
}

func (u *user) scrollToBottom() {
	u.t.Helper()
	evaluate[chromedp.Void](u, `(() => { const s = document.getElementById('scroller'); s.scrollTop = s.scrollHeight; })()`)
}

// messageIDs returns the ids of the messages of the current room, in page
// order, checking they ascend strictly (sorted, no duplicate).
func (u *user) messageIDs() []string {
	u.t.Helper()
	ids := evaluate[[]string](u, `[...document.querySelectorAll('#messages li[data-id]')].map(li => li.dataset.id)`)
	for i := 1; i < len(ids); i++ {
		if !idLess(ids[i-1], ids[i]) {
			u.fail("message ids out of order or repeated at %d: %v", i, ids)
		}
	}
	return ids
}

func (u *user) screenshot(name string) []byte {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		u.fail("screenshot %s: %v", name, err)
	}
	path := filepath.Join(u.outDir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		u.t.Fatalf("write %s: %v", path, err)
	}
	return png
}

// enter presses Enter as a keyboard does when the page handles keydown:
// SendKeys("\n") also sends a char event, which would type a newline into
// the emptied composer after the page sent the message (chromedp docs/API.md,
// example 20).
var enter = chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
	for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeKeyUp} {
		_, err := cdp.Call(ctx, t, input.DispatchKeyEvent, input.DispatchKeyEventParams{
			Type: typ, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13,
		})
		if err != nil {
			return fmt.Errorf("press Enter: %w", err)
		}
	}
	return nil
})

// ---- JavaScript expressions ---------------------------------------------------------

func jsArray(s []string) string {
	b, _ := json.Marshal(s) // strings always encode
	return string(b)
}

func jsString(s string) string {
	b, _ := json.Marshal(s) // a string always encodes
	return string(b)
}

// historyText is the i-th message of the history room: long enough to wrap
// at 360 px, not at 1280 px.
func historyText(i int) string {
	return fmt.Sprintf("old message %02d, long enough to take a few lines on a phone's narrow screen", i)
}

const scrollHeight = `document.getElementById('scroller').scrollHeight`

// atListBottom: the message list is scrolled to its end (within 2 px) and
// its newest message is wholly in view.
const atListBottom = `(() => { const s = document.getElementById('scroller'); const v = s.getBoundingClientRect(); const r = document.querySelector('#messages li:last-child').getBoundingClientRect();
	return Math.abs(s.scrollHeight - s.scrollTop - s.clientHeight) <= 2 && r.top >= v.top && r.bottom <= v.bottom + 1; })()`

func textIs(id, text string) string {
	return `document.getElementById(` + jsString(id) + `).textContent === ` + jsString(text)
}

// countIs: text is shown exactly n times as a message with a server id.
func countIs(text string, n int) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#messages li[data-id] .msg-body')].filter(b => b.textContent === %s).length === %d`, jsString(text), n)
}

func everyOnceExpr(texts []string) string {
	b, _ := json.Marshal(texts)
	return `(() => { const shown = [...document.querySelectorAll('#messages li[data-id] .msg-body')].map(b => b.textContent);
		return ` + string(b) + `.every(t => shown.filter(s => s === t).length === 1); })()`
}

func membersAre(names ...string) string {
	b, _ := json.Marshal(names)
	return `JSON.stringify([...document.querySelectorAll('#member-list .member-name')].map(e => e.textContent).sort()) === ` + jsString(string(b))
}

func idLess(a, b string) bool {
	var am, as, bm, bs int64
	if _, err := fmt.Sscanf(a, "%d-%d", &am, &as); err != nil {
		return false
	}
	if _, err := fmt.Sscanf(b, "%d-%d", &bm, &bs); err != nil {
		return false
	}
	return am < bm || am == bm && as < bs
}

// ---- A user without a browser -------------------------------------------------------

// chatClient is a user speaking the WebSocket protocol directly. Its
// connection is read on a goroutine of its own, so it answers the server's
// pings while the test drives the browsers.
type chatClient struct {
	*apptest.WS
	t       *testing.T
	name    string
	n       int
	limited int // rate_limited answers waited out
}

func dialChat(t *testing.T, base, name, password string) *chatClient {
	t.Helper()
	creds, _ := json.Marshal(map[string]string{"username": name, "password": password})
	for _, path := range []string{"/api/auth/register", "/api/auth/login"} {
		resp, err := http.Post(base+path, "application/json", bytes.NewReader(creds))
		if err != nil {
			t.Fatalf("%s %s: %v", name, path, err)
		}
		var body struct {
			Token string `json:"token"`
			Error string `json:"error"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %s %v %s", name, path, resp.Status, err, body.Error)
		}
		if body.Token == "" {
			continue
		}
		wsURL := "ws" + strings.TrimPrefix(base, "http") + "/ws" // the token goes in the subprotocols
		c := &chatClient{WS: apptest.DialWS(t, stepTimeout, wsURL, apptest.BearerProtocols(body.Token)), t: t, name: name}
		c.ReadInBackground(nil)
		c.expect("welcome", nil)
		return c
	}
	t.Fatalf("%s: no token from the login", name)
	return nil
}

// expect reads frames until one of type typ for which match (if any) holds;
// an error or rate_limited frame fails the test.
func (c *chatClient) expect(typ string, match func(map[string]any) bool) map[string]any {
	c.t.Helper()
	return c.await(typ, func(f map[string]any) bool { return f["type"] == typ && (match == nil || match(f)) })
}

// await reads frames until one for which match holds, within stepTimeout;
// any other error or rate_limited frame fails the test.
func (c *chatClient) await(what string, match func(map[string]any) bool) map[string]any {
	c.t.Helper()
	return c.Expect(c.name+": "+what, match)
}

func (c *chatClient) write(frame map[string]any) {
	c.t.Helper()
	if err := c.WriteFrame(context.Background(), frame); err != nil {
		c.t.Fatalf("%s: write %v: %v", c.name, frame, err)
	}
}

func (c *chatClient) join(room string) {
	c.t.Helper()
	c.write(map[string]any{"type": "join", "room": room})
	c.expect("joined", func(f map[string]any) bool { return f["room"] == room })
}

// send sends a message and waits for its ack. A rate_limited answer is
// waited out as the protocol asks: after retryAfterMs (1 to 1000) the same
// frame, same clientId, goes again, and docs/protocol.md promises it is
// accepted then; a second refusal fails the test.
func (c *chatClient) send(room, text string) {
	c.t.Helper()
	c.n++
	id := fmt.Sprintf("%s-%d", c.name, c.n)
	frame := map[string]any{"type": "message", "room": room, "text": text, "clientId": id}
	const maxWaits = 1
	for waits := 0; ; waits++ {
		c.write(frame)
		f := c.await("the ack of "+id, func(f map[string]any) bool {
			return (f["type"] == "ack" || f["type"] == "rate_limited") && f["clientId"] == id
		})
		if f["type"] == "ack" {
			return
		}
		wait, _ := f["retryAfterMs"].(float64)
		if wait <= 0 || wait > 1000 {
			c.t.Fatalf("%s: rate_limited with retryAfterMs %v, want 1..1000 (1 s windows): %v", c.name, f["retryAfterMs"], f)
		}
		if waits == maxWaits {
			c.t.Fatalf("%s: %q refused again after waiting out retryAfterMs: the rate window did not reopen in time (%v)", c.name, text, f)
		}
		c.limited++
		time.Sleep(time.Duration(wait) * time.Millisecond)
	}
}

func (c *chatClient) close() {
	c.t.Helper()
	if err := c.Conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		c.t.Fatalf("%s: close: %v", c.name, err)
	}
}

// ---- Browser ----------------------------------------------------------------------

func findChromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "chromium not installed: apt-get install chromium chromium-driver"
	if os.Getenv("CI") == "true" || os.Getenv("AURORA_E2E") == "1" {
		t.Fatal(msg + " (CI=true or AURORA_E2E=1 makes the browser test mandatory)")
	}
	t.Skip(msg)
	return ""
}

func startBrowser(ctx context.Context, t *testing.T, path string) context.Context {
	t.Helper()
	userData := t.TempDir()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(userData),
	)
	// Registered after TempDir: runs before its removal, and waits for the
	// browser to exit.
	t.Cleanup(cancelAlloc)
	browser, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return browser
}

// ---- The aurora process -------------------------------------------------------------

func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		t.Fatal("go env GOMOD: not inside the module")
	}
	return filepath.Dir(mod)
}

type server struct {
	t       *testing.T
	bin     string
	dataDir string
	addr    string
	logPath string
	env     []string

	log apptest.Buffer // both runs' output

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error // of Wait, once done is closed
}

func newServer(t *testing.T, bin, outDir string) *server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pick a free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("free port %s: %v", addr, err)
	}
	env := append(apptest.CleanEnv(), serverEnv...)
	if apptest.RealRedis() {
		env = append(env, "AURORA_REDIS_URL="+apptest.RedisURL(t))
	}
	s := &server{t: t, bin: bin, dataDir: t.TempDir(), addr: addr, logPath: filepath.Join(outDir, "server.log"), env: env}
	t.Cleanup(func() {
		s.kill()
		_ = os.WriteFile(s.logPath, []byte(s.log.String()), 0o644)
		if t.Failed() {
			t.Logf("server output (also in %s):\n%s", s.logPath, tail(s.log.String(), 60))
		}
	})
	return s
}

// start runs `aurora serve` on the server's port and data dir, and waits
// until /readyz answers 200.
func (s *server) start(ctx context.Context) {
	s.t.Helper()
	cmd := exec.Command(s.bin, "serve", "--http-addr", s.addr, "--data-dir", s.dataDir)
	cmd.Env = s.env
	cmd.Stdout = &s.log
	cmd.Stderr = &s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", s.bin, err)
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(done)
	}()

	// No readiness signal crosses the process boundary but /readyz.
	client := &http.Client{Timeout: 2 * time.Second}
	last := "no answer"
	ready := apptest.Poll(serverStart, func() bool {
		select {
		case <-done:
			s.t.Fatalf("aurora serve exited during start: %v\n%s", s.waitErr(), tail(s.output(), 40))
		case <-ctx.Done():
			s.t.Fatalf("aurora serve start: %v", ctx.Err())
		default:
		}
		resp, err := client.Get("http://" + s.addr + "/readyz")
		if err != nil {
			last = err.Error()
			return false
		}
		resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == http.StatusOK
	})
	if !ready {
		s.t.Fatalf("aurora serve not ready after %s (last: %v)\n%s", serverStart, last, tail(s.output(), 40))
	}
}

// stop ends the server gracefully (SIGTERM: the ingest role drains the
// embedded Redis into the store) and waits for it to exit cleanly.
func (s *server) stop() {
	s.t.Helper()
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("SIGTERM aurora: %v", err)
	}
	select {
	case <-done:
	case <-time.After(serverStop):
		s.kill()
		s.t.Fatalf("aurora did not stop within %s of SIGTERM\n%s", serverStop, tail(s.output(), 40))
	}
	if err := s.waitErr(); err != nil {
		s.t.Fatalf("aurora exited with %v after SIGTERM\n%s", err, tail(s.output(), 40))
	}
}

func (s *server) kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Kill()
	<-done
}

func (s *server) waitErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *server) output() string { return s.log.String() }

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

func TestMain(m *testing.M) {
	code := m.Run()
	apptest.RemoveBinary()
	os.Exit(code)
}
