package e2e_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/web"
)

// TestBrowserMessageLife drives a message's life through the page (issue
// 13) against a real `aurora serve` at its default limits: alice (in two
// tabs of one browser) and bob in two browser contexts. alice edits her
// message with ↑ on the empty composer (Enter saves; a second edit is
// cancelled with Esc), bob answers it with Reply (the quote shows it), both
// react and toggle a reaction, bob replies to a message alice then deletes
// after the confirmation (a tombstone for both, and bob's quote says
// "message deleted"); alice completes @bob in the composer and bob's page
// marks the mention; bob mentions alice while both her tabs look at
// another room: both show the unread and mention badges, and opening the
// room in one tab clears them in the other too; alice searches, sees the
// match marked and jumps to it from another room, and to a message older
// than the page loaded of its room (two scripted users filled it); bad
// searches are refused in words; bob reloads and history carries the edit,
// the tombstone, the quotes and the reactions; last, alice's uploads: a
// page and a file over the size limit refused in words, then an image and
// a text file by the file button, the image again by a drop and a paste,
// in one message: both see the previews and the file's link.
func TestBrowserMessageLife(t *testing.T) {
	chromium := findChromium(t)
	root := repoRoot(t)
	outDir := filepath.Join(root, "test-output", "e2e-life")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatalf("create %s: %v", outDir, err)
	}
	stale, _ := filepath.Glob(filepath.Join(outDir, "failure-*.png"))
	for _, f := range stale {
		_ = os.Remove(f)
	}

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)

	srv := newServer(t, apptest.Binary(t), outDir)
	srv.start(ctx)
	base := "http://" + srv.addr

	browser := startBrowser(ctx, t, chromium)
	alice := openUser(t, browser, "alice", outDir)
	bob := openUser(t, browser, "bob", outDir)
	for _, u := range []*user{alice, bob} {
		u.do(chromedp.Navigate(base))
		u.waitFor("the login screen", `!document.getElementById('auth-view').hidden`)
		u.register(u.name, u.name+"'s password")
		u.waitOnline()
	}

	// alice creates a public room by joining it; bob joins it.
	const room = "life"
	for _, u := range []*user{alice, bob} {
		u.do(chromedp.SendKeys(chromedp.ID("join-room"), room+"\n"))
		u.waitFor("the room open", lifeCurrentRoom(room))
	}
	alice.waitFor("bob in the room", membersAre("alice", "bob"))
	bob.waitFor("alice in the room", membersAre("alice", "bob"))

	// Meanwhile two scripted users fill another room with more than a
	// page of messages, the first the one alice will search for.
	const old = "archive"
	dave := dialChat(t, base, "dave", "dave's password")
	erin := dialChat(t, base, "erin", "erin's password")
	dave.join(old)
	erin.join(old)
	dave.send(old, "the vault code is 4242")
	for i := range 55 {
		c := []*chatClient{dave, erin}[i%2]
		c.send(old, fmt.Sprintf("filler %02d", i))
	}

	// --- edit: ↑ on the empty composer, Enter saves, Esc cancels ---------------------
	alice.sendPatiently("the meeting is at 10")
	bob.waitFor("alice's message", countIs("the meeting is at 10", 1))
	alice.do(press("ArrowUp", 38))
	alice.waitFor("the editor on alice's last message", `document.activeElement.classList.contains('msg-editor') && document.activeElement.value === "the meeting is at 10"`)
	evaluate[chromedp.Void](alice, `document.activeElement.value = ""`)
	alice.do(chromedp.SendKeys(chromedp.CSS(`#messages .msg-editor`), "the meeting is at 11"), enter)
	edited := `(() => { const li = ` + lifeMsg("the meeting is at 11") + `; return !!li && li.querySelector('.msg-body').dataset.edited === "yes"; })()`
	alice.waitFor("the edit saved", edited+` && `+countIs("the meeting is at 10", 0)+` && document.querySelector('#messages .msg-editor') === null`)
	bob.waitFor("the edit, live", edited+` && `+countIs("the meeting is at 10", 0))
	alice.check("the composer has the focus back", `document.activeElement.id === "composer-input"`)
	// A second edit, cancelled.
	alice.do(press("ArrowUp", 38))
	alice.waitFor("the editor again", `document.activeElement.classList.contains('msg-editor')`)
	alice.do(chromedp.SendKeys(chromedp.CSS(`#messages .msg-editor`), " or never"), press("Escape", 27))
	alice.waitFor("the edit cancelled", `document.querySelector('#messages .msg-editor') === null && `+countIs("the meeting is at 11", 1))
	bob.check("nothing of the cancelled edit", countIs("the meeting is at 11 or never", 0))

	// --- reply --------------------------------------------------------------------------
	bob.act("the meeting is at 11", "act-reply")
	bob.waitFor("the reply bar", `!document.getElementById('reply-bar').hidden && document.getElementById('reply-text').textContent === "Replying to alice: the meeting is at 11"`)
	bob.sendPatiently("works for me")
	quoted := func(text, author, quote string) string {
		return `(() => { const li = ` + lifeMsg(text) + `; const q = li && li.querySelector('.msg-quote');
			return !!q && !q.hidden && q.querySelector('.quote-author').textContent === ` + jsString(author) + ` && q.querySelector('.quote-text').textContent === ` + jsString(quote) + `; })()`
	}
	bob.waitFor("the quote in bob's reply", quoted("works for me", "alice", "the meeting is at 11")+` && document.getElementById('reply-bar').hidden`)
	alice.waitFor("the quote in bob's reply", quoted("works for me", "alice", "the meeting is at 11"))

	// --- reactions: the picker, counts, toggling mine -----------------------------------------
	bob.act("the meeting is at 11", "act-react")
	bob.waitFor("the reaction picker", `!document.getElementById('react-picker').hidden`)
	bob.do(chromedp.Click(chromedp.CSS(`#react-picker button[data-emoji="👍"]`)))
	bob.waitFor("bob's 👍", reactionIs("the meeting is at 11", "👍", 1, true))
	alice.waitFor("bob's 👍, live", reactionIs("the meeting is at 11", "👍", 1, false))
	alice.do(chromedp.Click(chromedp.CSS(lifeMsgSel(alice, "the meeting is at 11") + ` .reaction[data-emoji="👍"]`)))
	alice.waitFor("alice's 👍 too", reactionIs("the meeting is at 11", "👍", 2, true))
	bob.waitFor("two 👍", reactionIs("the meeting is at 11", "👍", 2, true))
	alice.do(chromedp.Click(chromedp.CSS(lifeMsgSel(alice, "the meeting is at 11") + ` .reaction[data-emoji="👍"]`)))
	alice.waitFor("alice's 👍 taken back", reactionIs("the meeting is at 11", "👍", 1, false))
	bob.waitFor("one 👍 again", reactionIs("the meeting is at 11", "👍", 1, true))
	alice.act("works for me", "act-react")
	alice.do(chromedp.Click(chromedp.CSS(`#react-picker button[data-emoji="🎉"]`)))
	bob.waitFor("alice's 🎉 on bob's reply", reactionIs("works for me", "🎉", 1, false))

	// --- delete, with the confirmation; the reply's quote follows ---------------------------
	alice.sendPatiently("oops, wrong room")
	bob.waitFor("alice's slip", countIs("oops, wrong room", 1))
	bob.act("oops, wrong room", "act-reply")
	bob.sendPatiently("which room?")
	bob.waitFor("the quote of the slip", quoted("which room?", "alice", "oops, wrong room"))
	slip := lifeMsgID(alice, "oops, wrong room")
	alice.act("oops, wrong room", "act-delete")
	alice.waitFor("the confirmation", dialogOpen("delete-dialog")+` && document.getElementById('delete-preview').textContent === "oops, wrong room"`)
	// Cancelling deletes nothing.
	alice.do(chromedp.Click(chromedp.CSS(`#delete-dialog [data-close]`)))
	alice.waitFor("the dialog closed", `!`+dialogOpen("delete-dialog")+` && `+countIs("oops, wrong room", 1))
	alice.act("oops, wrong room", "act-delete")
	alice.waitFor("the confirmation", dialogOpen("delete-dialog")+` && document.activeElement.id === "delete-confirm" && !document.getElementById('delete-confirm').disabled`)
	alice.do(chromedp.Click(chromedp.ID("delete-confirm")))
	tomb := `(() => { const li = document.querySelector('#messages li[data-id="` + slip + `"]'); return !!li && li.classList.contains('deleted') && li.querySelector('.msg-body').textContent === "message deleted" && li.querySelector('.msg-actions').hidden; })()`
	alice.waitFor("the tombstone", `!`+dialogOpen("delete-dialog")+` && `+tomb+` && `+countIs("oops, wrong room", 0))
	bob.waitFor("the tombstone, live", tomb+` && `+countIs("oops, wrong room", 0))
	bob.waitFor("the quote of a deleted message", quoted("which room?", "alice", "message deleted"))

	// --- @-completion ------------------------------------------------------------------------------
	alice.do(chromedp.SendKeys(chromedp.ID("composer-input"), "@bo"))
	alice.waitFor("bob offered", `!document.getElementById('mention-list').hidden && [...document.querySelectorAll('#mention-list li')].map(li => li.dataset.username).join() === "bob"`)
	alice.do(press("Tab", 9))
	alice.waitFor("the completed name", `document.getElementById('composer-input').value === "@bob " && document.getElementById('mention-list').hidden`)
	alice.do(chromedp.SendKeys(chromedp.ID("composer-input"), "thanks"), enter)
	alice.awaitAck("@bob thanks", countIs("@bob thanks", 1))
	mentioned := func(text, name string) string {
		return `(() => { const li = ` + lifeMsg(text) + `; return !!li && li.classList.contains('mentions-me') && li.querySelector('span.mention.mention-me') !== null && li.querySelector('span.mention.mention-me').textContent === ` + jsString("@"+name) + `; })()`
	}
	bob.waitFor("the mention of bob marked", mentioned("@bob thanks", "bob"))
	alice.waitFor("the mention in alice's own message", `(() => { const li = `+lifeMsg("@bob thanks")+`; const m = li && li.querySelector('span.mention'); return !!m && m.textContent === "@bob" && !m.classList.contains('mention-me') && !li.classList.contains('mentions-me'); })()`)

	// --- unread and mention badges, cleared in the other tab ------------------------------------
	// alice's second tab opens now, in her browser (the same session), on
	// general, where her first tab goes too.
	alice.switchTo("general")
	alice2 := openTab(t, alice.ctx, "alice-tab2", outDir)
	alice2.do(chromedp.Navigate(base))
	alice2.waitFor("alice's second tab", `!document.getElementById('chat-view').hidden && document.getElementById('me-name').textContent === "alice"`)
	alice2.waitOnline()
	alice2.waitFor("general open, life listed", lifeCurrentRoom("general")+` && document.querySelector('#room-list li[data-room="`+room+`"]') !== null`)
	for _, u := range []*user{alice, alice2} {
		u.check("no unread badge on life yet", lifeBadges(room, 0, 0))
	}
	bob.sendPatiently("@alice are you there?")
	for _, u := range []*user{alice, alice2} {
		u.waitFor("the unread and mention badges", lifeBadges(room, 1, 1))
	}
	alice.switchTo(room)
	alice.waitFor("the mention marked", mentioned("@alice are you there?", "alice"))
	alice.waitFor("life read in the tab that opened it", lifeBadges(room, 0, 0))
	alice2.waitFor("life read in the other tab too", lifeBadges(room, 0, 0))
	alice2.check("the other tab still on general", lifeCurrentRoom("general"))

	// --- search: the match marked, and a jump to it ----------------------------------------------
	alice.switchTo("general")
	alice.do(chromedp.SendKeys(chromedp.ID("search-q"), "meeting\n"))
	alice.waitFor("the search dialog", dialogOpen("search-dialog"))
	result := `[...document.querySelectorAll('#search-results li')].find(li => li.querySelector('.result-text').textContent === "the meeting is at 11")`
	searchUntil(alice, result)
	alice.check("the match marked, only the match", `(() => { const li = `+result+`; const marks = [...li.querySelectorAll('mark')].map(m => m.textContent); return JSON.stringify(marks) === '["meeting"]' && li.dataset.room === "`+room+`"; })()`)
	alice.check("the old text not found", `![...document.querySelectorAll('#search-results .result-text')].some(e => e.textContent.includes("at 10"))`)
	alice.screenshotTo(root, "search")
	alice.do(chromedp.Click(chromedp.CSS(`#search-results li[data-room="` + room + `"] .result-btn`)))
	alice.waitFor("the jump to the message", `!`+dialogOpen("search-dialog")+` && `+lifeCurrentRoom(room)+` && (() => { const li = `+lifeMsg("the meeting is at 11")+`; const v = document.getElementById('scroller').getBoundingClientRect(); const r = li.getBoundingClientRect();
		return li.classList.contains('flash') && r.top >= v.top && r.bottom <= v.bottom; })()`)
	// A search the server cannot parse is refused in words.
	alice.do(chromedp.SendKeys(chromedp.ID("search-q"), "\n"))
	alice.waitFor("the search dialog", dialogOpen("search-dialog"))
	alice.clear("search-dialog-q")
	alice.do(chromedp.Click(chromedp.ID("search-go")))
	alice.waitFor("an empty search refused", textIs("search-error", "Type what to look for."))
	// One the server refuses (400) says why, in its words.
	alice.do(chromedp.SendKeys(chromedp.ID("search-dialog-q"), "?!\n"))
	alice.waitFor("a search without words refused", `document.getElementById('search-error').textContent.startsWith("The search was not understood: ") && document.getElementById('search-error').textContent.includes("no word") && document.querySelectorAll('#search-results li').length === 0`)
	// A result older than the page of its room the page has: the jump loads
	// older pages until it is there.
	alice.do(chromedp.Click(chromedp.CSS(`#search-dialog [data-close]`)))
	alice.do(chromedp.SendKeys(chromedp.ID("join-room"), old+"\n"))
	alice.waitFor("the archive, its newest page", lifeCurrentRoom(old)+` && `+countIs("filler 54", 1)+` && `+countIs("the vault code is 4242", 0))
	alice.switchTo("general")
	alice.clear("search-q")
	alice.do(chromedp.SendKeys(chromedp.ID("search-q"), "vault\n"))
	alice.waitFor("the search dialog", dialogOpen("search-dialog"))
	searchUntil(alice, `[...document.querySelectorAll('#search-results li')].find(li => li.querySelector('.result-text').textContent === "the vault code is 4242" && li.dataset.room === "`+old+`")`)
	alice.do(chromedp.Click(chromedp.CSS(`#search-results li[data-room="` + old + `"] .result-btn`)))
	alice.waitFor("the jump to a message not loaded before", `!`+dialogOpen("search-dialog")+` && `+lifeCurrentRoom(old)+` && (() => { const li = `+lifeMsg("the vault code is 4242")+`; if (!li) return false; const v = document.getElementById('scroller').getBoundingClientRect(); const r = li.getBoundingClientRect();
		return li.classList.contains('flash') && r.top >= v.top && r.bottom <= v.bottom; })() && `+countIs("filler 00", 1)+` && `+textIs("history-status", "This is the beginning of #"+old+"."))
	dave.close()
	erin.close()
	alice.switchTo(room)

	// --- history carries it all --------------------------------------------------------------------
	bob.do(chromedp.Reload())
	bob.waitOnline()
	bob.waitFor("the room after a reload", lifeCurrentRoom(room)+` && `+edited+` && `+tomb+` && `+countIs("oops, wrong room", 0))
	bob.waitFor("quotes, reactions and mentions from history", quoted("works for me", "alice", "the meeting is at 11")+` && `+quoted("which room?", "alice", "message deleted")+
		` && `+reactionIs("the meeting is at 11", "👍", 1, true)+` && `+reactionIs("works for me", "🎉", 1, false)+` && `+mentioned("@bob thanks", "bob"))
	bob.check("no reaction on the deleted message", `document.querySelector('#messages li[data-id="`+slip+`"] .reaction') === null`)

	alice.screenshotTo(root, "life")

	// --- uploads the server refuses, said in words ------------------------------------------------
	testdata := func(name string) string {
		p, err := filepath.Abs(filepath.Join("testdata", name))
		if err != nil {
			t.Fatalf("testdata path: %v", err)
		}
		return p
	}
	upload := func(u *user, path, name, state string) {
		u.t.Helper()
		u.do(chromedp.SetUploadFiles(chromedp.ID("file-input"), []string{path}))
		u.waitFor(name+" "+state, `[...document.querySelectorAll('#uploads li')].some(li => li.querySelector('.up-name').textContent === `+jsString(name)+` && li.dataset.state === `+jsString(state)+`)`)
	}
	upload(alice, testdata("evil.html"), "evil.html", "failed")
	alice.check("a page refused", `document.querySelector('#uploads li[data-state="failed"] .up-status').textContent === "Files of this type (text/html) are not allowed here."`)
	alice.do(chromedp.Click(chromedp.CSS(`#uploads li[data-state="failed"] .up-remove`)))
	alice.waitFor("the refused file removed", `document.getElementById('uploads').hidden`)
	// One byte over the default limit of 10 MiB.
	big := filepath.Join(t.TempDir(), "huge.png")
	if err := os.WriteFile(big, append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 10<<20-7)...), 0o644); err != nil {
		t.Fatalf("write %s: %v", big, err)
	}
	upload(alice, big, "huge.png", "failed")
	alice.check("a file too large refused", `document.querySelector('#uploads li[data-state="failed"] .up-status').textContent.startsWith("Too large to upload") && document.querySelector('#uploads li[data-state="failed"] .up-retry') !== null`)
	alice.do(chromedp.Click(chromedp.CSS(`#uploads li[data-state="failed"] .up-remove`)))
	alice.waitFor("the refused file removed", `document.getElementById('uploads').hidden`)

	// --- an upload's progress, on a link slowed to 1 MiB/s up -----------------------------------
	slow := filepath.Join(t.TempDir(), "slow.png")
	if err := os.WriteFile(slow, append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 3<<20)...), 0o644); err != nil {
		t.Fatalf("write %s: %v", slow, err)
	}
	throttle(alice, 1<<20)
	alice.do(chromedp.SetUploadFiles(chromedp.ID("file-input"), []string{slow}))
	alice.waitFor("the upload's progress bar part-way", `(() => { const li = [...document.querySelectorAll('#uploads li')].find(li => li.querySelector('.up-name').textContent === "slow.png");
		if (!li || li.dataset.state !== "uploading") return false;
		const bar = li.querySelector('.up-progress'), pct = li.querySelector('.up-status').textContent;
		return !bar.hidden && bar.value > 0 && bar.value < 100 && pct === bar.value + "%" && document.getElementById('send').disabled; })()`)
	throttle(alice, -1)
	alice.waitFor("slow.png uploaded", `[...document.querySelectorAll('#uploads li')].some(li => li.querySelector('.up-name').textContent === "slow.png" && li.dataset.state === "done" && li.querySelector('.up-progress').hidden && li.querySelector('.up-status').textContent === "Ready to send")`)
	alice.do(chromedp.Click(chromedp.CSS(`#uploads li[data-state="done"] .up-remove`)))
	alice.waitFor("the upload removed", `document.getElementById('uploads').hidden`)

	// --- an image (a preview) and a text file (a link), uploaded with the file button ------------
	upload(alice, testdata("sunset.png"), "sunset.png", "done")
	upload(alice, testdata("minutes.txt"), "minutes.txt", "done")
	// A drop on the conversation and a paste into the composer upload too
	// (the events as a browser fires them, with the file in their
	// DataTransfer).
	png, err := os.ReadFile(testdata("sunset.png"))
	if err != nil {
		t.Fatalf("read sunset.png: %v", err)
	}
	file := func(name string) string {
		return `(() => { const b = Uint8Array.from(atob("` + base64.StdEncoding.EncodeToString(png) + `"), c => c.charCodeAt(0));
			const dt = new DataTransfer(); dt.items.add(new File([b], ` + jsString(name) + `, {type: "image/png"})); return dt; })()`
	}
	evaluate[chromedp.Void](alice, `(() => { const main = document.getElementById('main'); const dt = `+file("dropped.png")+`;
		main.dispatchEvent(new DragEvent('dragenter', {dataTransfer: dt, bubbles: true, cancelable: true}));
		main.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true})); })()`)
	alice.waitFor("the drop zone", `!document.getElementById('drop-zone').hidden && document.getElementById('drop-text').textContent === "Drop files to send to #`+room+`"`)
	evaluate[chromedp.Void](alice, `document.getElementById('main').dispatchEvent(new DragEvent('drop', {dataTransfer: `+file("dropped.png")+`, bubbles: true, cancelable: true}))`)
	alice.waitFor("the dropped file uploaded", `document.getElementById('drop-zone').hidden && [...document.querySelectorAll('#uploads li[data-state="done"] .up-name')].some(e => e.textContent === "dropped.png")`)
	evaluate[chromedp.Void](alice, `document.getElementById('composer-input').dispatchEvent(new ClipboardEvent('paste', {clipboardData: `+file("pasted.png")+`, bubbles: true, cancelable: true}))`)
	alice.waitFor("the pasted file uploaded", `[...document.querySelectorAll('#uploads li[data-state="done"] .up-name')].some(e => e.textContent === "pasted.png") && document.querySelectorAll('#uploads li[data-state="done"]').length === 4`)
	alice.do(chromedp.Focus(chromedp.ID("composer-input")), enter)
	alice.awaitAck("the files", `document.getElementById('uploads').hidden && document.querySelector('#messages li[data-id] .att-image') !== null`)
	preview := `["sunset.png", "dropped.png", "pasted.png"].every(name => [...document.querySelectorAll('#messages li[data-id] .att-image img')].some(i => i.alt === name && i.src.startsWith("data:image/png") && i.complete && i.naturalWidth === 240))`
	alice.waitFor("the image's preview", preview+` && document.getElementById('uploads').hidden && document.querySelectorAll('#messages li.pending').length === 0`)
	bob.waitFor("the image's preview, live", preview)
	for _, u := range []*user{alice, bob} {
		u.check("the text file a download link, not a preview", `[...document.querySelectorAll('#messages li[data-id] .msg-atts > a.att-file')].some(a => a.textContent === "minutes.txt (40 B)") && ![...document.querySelectorAll('#messages .att-image img')].some(i => i.alt === "minutes.txt")`)
	}
	alice.waitFor("the conversation at its newest message", atListBottom)
	alice.screenshotTo(root, "attachments")

	for _, u := range []*user{alice, alice2, bob} {
		u.assertClean()
	}
}

// throttle limits u's upload throughput to bytesPerSec (-1: no limit), as
// DevTools' network throttling does.
func throttle(u *user, bytesPerSec float64) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		u.fail("enable the network domain: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		MatchedNetworkConditions: []*network.Conditions{{DownloadThroughput: -1, UploadThroughput: bytesPerSec}},
	}); err != nil {
		u.fail("throttle uploads to %v B/s: %v", bytesPerSec, err)
	}
}

// openTab opens another tab in the browser context of parent (a user's
// tab): the same storage, so the same session, as a second tab of one
// person.
func openTab(t *testing.T, parent context.Context, name, outDir string) *user {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
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

// act clicks one of a message's actions (act-reply, act-react, act-edit,
// act-delete), found by its text.
func (u *user) act(text, action string) {
	u.t.Helper()
	u.do(chromedp.Click(chromedp.CSS(lifeMsgSel(u, text) + " ." + action)))
}

// switchTo opens a room from the sidebar.
func (u *user) switchTo(room string) {
	u.t.Helper()
	u.do(chromedp.Click(chromedp.CSS(`#room-list li[data-room="` + room + `"] .room-btn`)))
	u.waitFor("room "+room, lifeCurrentRoom(room))
}

// press presses a key as a keyboard does (see enter).
func press(key string, code int64) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeKeyUp} {
			_, err := cdp.Call(ctx, t, input.DispatchKeyEvent, input.DispatchKeyEventParams{
				Type: typ, Key: key, Code: key, WindowsVirtualKeyCode: code, NativeVirtualKeyCode: code,
			})
			if err != nil {
				return fmt.Errorf("press %s: %w", key, err)
			}
		}
		return nil
	})
}

// lifeMsg is the list item of the message with text, with a server id.
func lifeMsg(text string) string {
	return `[...document.querySelectorAll('#messages li[data-id]')].find(li => li.querySelector('.msg-body')?.textContent === ` + jsString(text) + `)`
}

// lifeMsgID waits for the message with text and returns its id.
func lifeMsgID(u *user, text string) string {
	u.t.Helper()
	u.waitFor("the message "+text, lifeMsg(text)+` !== undefined`)
	return evaluate[string](u, lifeMsg(text)+`.dataset.id`)
}

func lifeMsgSel(u *user, text string) string {
	u.t.Helper()
	return `#messages li[data-id="` + lifeMsgID(u, text) + `"]`
}

func lifeCurrentRoom(room string) string {
	return `(document.querySelector('.room-list li.current') || {dataset: {}}).dataset.room === ` + jsString(room)
}

// reactionIs: the message with text shows emoji count times, as mine or
// not.
func reactionIs(text, emoji string, count int, mine bool) string {
	return fmt.Sprintf(`(() => { const li = %s; const r = li && li.querySelector('.msg-reacts .reaction[data-emoji=%s]');
		return !!r && r.querySelector('.r-count').textContent === "%d" && r.classList.contains('mine') === %t && r.getAttribute('aria-pressed') === "%t"; })()`,
		lifeMsg(text), jsString(emoji), count, mine, mine)
}

// lifeBadges: the sidebar entry of room shows unread and mention badges
// (0: hidden).
func lifeBadges(room string, unread, mentions int) string {
	badge := func(cls, text string, n int) string {
		if n == 0 {
			return `e.querySelector('` + cls + `').hidden`
		}
		return `!e.querySelector('` + cls + `').hidden && e.querySelector('` + cls + `').textContent === ` + jsString(fmt.Sprintf(text, n))
	}
	return `(() => { const e = document.querySelector('#room-list li[data-room="` + room + `"]'); return !!e && ` +
		badge(".room-unread", "%d", unread) + ` && ` + badge(".room-mention", "@%d", mentions) + `; })()`
}

// TestClientTextRules runs the checks of testdata/text-rules.js against the
// page's text.js in Chromium, served as TestClientRules serves rooms.js:
// search marks at UTF-16 offsets (clamped, merged, never trusted), the
// @name being typed, mention spans (text nodes, never HTML), which
// attachment URLs may get the token, which types are previewed, sizes and
// the reaction picker's emoji.
func TestClientTextRules(t *testing.T) {
	chromium := findChromium(t)
	mux := http.NewServeMux()
	mux.Handle("/test/", http.StripPrefix("/test/", http.FileServerFS(os.DirFS("testdata"))))
	mux.Handle("/", http.FileServerFS(web.Files))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", app.ContentSecurityPolicy)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	browser := startBrowser(ctx, t, chromium)
	u := openUser(t, browser, "text-rules", t.TempDir())
	u.do(chromedp.Navigate(srv.URL + "/test/text-rules.html"))
	u.waitFor("the checks to run", `window.done === true`)
	checks := evaluate[float64](u, `window.checks`)
	for _, f := range evaluate[[]string](u, `window.failures`) {
		t.Errorf("text.js: %s", f)
	}
	if checks < 60 {
		t.Errorf("text-rules.js ran %v checks, want 60 or more: it stopped early", checks)
	}
	u.assertClean()
}

// sendPatiently sends text as send does, waiting out the rate limit as a
// person would (reactions and edits share the message limits, 3 a second
// in a room): a message refused for going too fast is retried with its
// Retry button once the 1 s window has passed.
func (u *user) sendPatiently(text string) {
	u.t.Helper()
	u.do(chromedp.SendKeys(chromedp.ID("composer-input"), text), enter)
	u.awaitAck(text, countIs(text, 1))
}

// awaitAck waits until the message just sent is acked (done holds and
// nothing is pending), retrying it once if it was refused as too fast.
func (u *user) awaitAck(what, done string) {
	u.t.Helper()
	acked := done + ` && document.querySelectorAll('#messages li.pending, #messages li.failed').length === 0`
	limited := `[...document.querySelectorAll('#messages li.failed .msg-status')].some(e => e.textContent.includes("you are sending too fast"))`
	u.waitFor("the ack of "+what, acked+` || `+limited)
	if evaluate[bool](u, acked) {
		return
	}
	time.Sleep(time.Second) // the rate window (1 s) reopens
	u.do(chromedp.Click(chromedp.CSS(`#messages li.failed .retry`)))
	u.waitFor("the ack of "+what+" after a retry", acked)
}

// TestReactionsAllowed: every emoji of the page's reaction picker
// (text.js REACTIONS) is on the chat role's allow-list
// (modules/chat/emoji.go), or the picker would offer reactions the server
// refuses with invalid_emoji.
func TestReactionsAllowed(t *testing.T) {
	root := repoRoot(t)
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatalf("read %s: %v", rel, err)
		}
		return string(b)
	}
	quoted := regexp.MustCompile(`['"]([^'"\s]+)['"]`)
	list := func(src, start, end, what string) []string {
		_, rest, ok := strings.Cut(src, start)
		if !ok {
			t.Fatalf("%s: %q not found", what, start)
		}
		body, _, ok := strings.Cut(rest, end)
		if !ok {
			t.Fatalf("%s: no %q after %q", what, end, start)
		}
		var out []string
		for _, m := range quoted.FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	picker := list(read("web/static/text.js"), "export const REACTIONS = Object.freeze([", "]", "text.js")
	allowed := list(read("modules/chat/emoji.go"), "var reactionEmoji = []string{", "}", "emoji.go")
	if len(picker) < 6 || len(allowed) < len(picker) {
		t.Fatalf("found %d picker emoji and %d allowed: the patterns no longer match the sources", len(picker), len(allowed))
	}
	for _, e := range picker {
		if !slices.Contains(allowed, e) {
			t.Errorf("the picker offers %q (%+q), which modules/chat/emoji.go does not allow", e, e)
		}
	}
}

// searchUntil submits the open search dialog again until result (an
// expression for the result's list item) is among the results. Search
// reads the store, which ingest fills from the stream a moment after the
// ack (and an edit reaches the index the same way).
func searchUntil(u *user, result string) {
	u.t.Helper()
	for i := 0; ; i++ {
		u.waitFor("the search's answer", `(() => { const s = document.getElementById('search-status').textContent; return (s !== "" && s !== "Searching…") || document.getElementById('search-error').textContent !== ""; })()`)
		if evaluate[bool](u, result+` !== undefined`) {
			return
		}
		if i == 40 {
			u.fail("the search never found %s: %s %s", result, evaluate[string](u, `document.getElementById('search-status').textContent`), evaluate[string](u, `document.getElementById('search-error').textContent`))
		}
		time.Sleep(250 * time.Millisecond)
		u.do(chromedp.Click(chromedp.ID("search-go")))
	}
}
