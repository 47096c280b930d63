package attachapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/attachment"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/embeddedredis"
	"github.com/auroradev/aurora/app/membership"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/store/mongostore"
	"github.com/auroradev/aurora/app/store/sqlitestore"
	"github.com/auroradev/aurora/app/store/storetest"
	"github.com/auroradev/aurora/app/throttle"
	"github.com/auroradev/aurora/app/token"
	"github.com/auroradev/aurora/app/tokenauth"
	"github.com/auroradev/aurora/modules/chat/attachapi"
)

// A tiny valid PNG (1x1) and other contents.
var (
	pngFile  = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")
	pdfFile  = []byte("%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n")
	htmlFile = []byte("<!DOCTYPE html><html><body><script>fetch('/api/rooms').then(r=>r.text()).then(alert)</script></body></html>")
	svgFile  = []byte(`<?xml version="1.0" encoding="UTF-8"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>`)
	exeFile  = []byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8\x00\x00\x00\x00\x00\x00\x00@\x00")
)

// env is the API over a real store (membership: SQLite or MongoDB, the
// in-test FerretDB), a real token issuer and one storage, served over
// real HTTP.
type env struct {
	t      *testing.T
	st     store.Store
	url    string
	svc    *attachapi.Service
	tokens map[string]string // username -> bearer token
	ids    map[string]string // username -> user id
	count  func() int        // objects in the storage
	files  func() []string   // local: the directory's file names
}

type storageKind struct {
	name string
	open func(t *testing.T) (attachment.Storage, func() int, func() []string)
}

func storages() []storageKind {
	return []storageKind{
		{"local", func(t *testing.T) (attachment.Storage, func() int, func() []string) {
			dir := filepath.Join(t.TempDir(), "attachments")
			l, err := attachment.NewLocal(dir)
			if err != nil {
				t.Fatal(err)
			}
			files := func() []string {
				entries, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				return names
			}
			// An object is its content file and its .json; a temporary
			// file left behind counts too.
			count := func() int {
				n := 0
				for _, f := range files() {
					if !strings.HasSuffix(f, ".json") {
						n++
					}
				}
				return n
			}
			return l, count, files
		}},
		{"s3", func(t *testing.T) (attachment.Storage, func() int, func() []string) {
			mem := s3mem.New()
			if err := mem.CreateBucket("aurora"); err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(gofakes3.New(mem).Server())
			t.Cleanup(srv.Close)
			u, _ := url.Parse(srv.URL)
			c, err := attachment.ParseS3URL("s3://aurora?endpoint=" + u.Host + "&region=us-east-1&secure=false")
			if err != nil {
				t.Fatal(err)
			}
			c.AccessKey, c.SecretKey = "test", "test-secret"
			s, err := attachment.NewS3(c)
			if err != nil {
				t.Fatal(err)
			}
			return s, func() int {
				list, err := mem.ListBucket("aurora", nil, gofakes3.ListBucketPage{})
				if err != nil {
					t.Fatal(err)
				}
				return len(list.Contents)
			}, nil
		}},
	}
}

// storeKind opens a fresh, migrated membership store of one backend.
type storeKind struct {
	name string
	open func(t *testing.T) store.Store
}

func storeKinds() []storeKind {
	return []storeKind{
		{"sqlite", func(t *testing.T) store.Store {
			st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "aurora.db"))
			if err != nil {
				t.Fatal(err)
			}
			return migrated(t, st)
		}},
		{"mongodb", func(t *testing.T) store.Store {
			uri := storetest.MongoURL(t)
			st, err := mongostore.Open(context.Background(), uri, storetest.DatabaseName(t, uri))
			if err != nil {
				t.Fatal(err)
			}
			return migrated(t, st)
		}},
	}
}

func migrated(t *testing.T, st store.Store) store.Store {
	t.Helper()
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

// Rooms of the env: team and other private (alice owns both, carol is
// readonly in team), lobby public (alice owns it); bob is in none.
func newEnv(t *testing.T, sk storeKind, kind storageKind) *env {
	t.Helper()
	ctx := context.Background()
	st := sk.open(t)
	issuer := token.NewIssuer([]byte(strings.Repeat("k", 32)), time.Hour)
	e := &env{t: t, st: st, tokens: map[string]string{}, ids: map[string]string{}}
	for _, name := range []string{"alice", "bob", "carol"} {
		u, err := st.CreateUser(ctx, store.User{Username: name, PasswordHash: "x"})
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := issuer.Issue(u.ID, name)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[name], e.ids[name] = tok, u.ID
	}
	for _, r := range []store.Room{{Name: "team", Type: store.RoomPrivate}, {Name: "other", Type: store.RoomPrivate}, {Name: "lobby", Type: store.RoomPublic}} {
		if _, err := st.CreateRoom(ctx, r, &store.Member{UserID: e.ids["alice"], Username: "alice", Role: store.RoleOwner}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.PutMember(ctx, store.Member{Room: "team", UserID: e.ids["carol"], Username: "carol", Role: store.RoleReadonly}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	cache := membership.NewCache(st, membership.NewUsers(st, log))
	storage, count, files := kind.open(t)
	e.count, e.files = count, files
	e.svc = &attachapi.Service{
		Storage: storage,
		Policy:  attachment.DefaultPolicy(),
		Access:  cache.Fresh,
		Verify:  func(r *http.Request) (token.Claims, error) { return tokenauth.Verify(r, issuer, tokenauth.Bearer) },
		Log:     log,
	}
	mux := http.NewServeMux()
	attachapi.Register(mux, e.svc)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("status %d, body %q: %v", r.status, r.body, err)
	}
	return m
}

func (r reply) attachment(t *testing.T) bus.Attachment {
	t.Helper()
	if r.status != http.StatusCreated {
		t.Fatalf("upload: status %d, body %s", r.status, r.body)
	}
	var out struct {
		Attachment bus.Attachment `json:"attachment"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	return out.Attachment
}

func (r reply) wantError(t *testing.T, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if msg, _ := r.json(t)["error"].(string); msg == "" {
		t.Fatalf("no error text in %s", r.body)
	}
}

func (e *env) do(user string, req *http.Request) reply {
	e.t.Helper()
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[user])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, body}
}

// uploadRaw posts body as the file; contentType "" sends none.
func (e *env) uploadRaw(user, room, filename, contentType string, body io.Reader) reply {
	e.t.Helper()
	u := e.url + "/api/rooms/" + room + "/attachments"
	if filename != "" {
		u += "?filename=" + url.QueryEscape(filename)
	}
	req, err := http.NewRequest(http.MethodPost, u, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return e.do(user, req)
}

// uploadMultipart posts content as the part "file", after a "caption"
// field.
func (e *env) uploadMultipart(user, room, filename, contentType string, content []byte) reply {
	e.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.WriteField("caption", "look at this"); err != nil {
		e.t.Fatal(err)
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename="%s"`, strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(filename)))
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	pw, err := mw.CreatePart(h)
	if err != nil {
		e.t.Fatal(err)
	}
	_, _ = pw.Write(content)
	_ = mw.Close()
	req, err := http.NewRequest(http.MethodPost, e.url+"/api/rooms/"+room+"/attachments", &buf)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return e.do(user, req)
}

func (e *env) download(user, path string) reply {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do(user, req)
}

// forEachStorage runs f on every storage over every membership store: the
// routes decide on both backends alike.
func forEachStorage(t *testing.T, f func(t *testing.T, e *env)) {
	for _, sk := range storeKinds() {
		for _, k := range storages() {
			t.Run(sk.name+"/"+k.name, func(t *testing.T) { f(t, newEnv(t, sk, k)) })
		}
	}
}

var urlPattern = regexp.MustCompile(`^/api/rooms/team/attachments/[0-9a-f]{32}$`)

func wantInertHeaders(t *testing.T, r reply, fileType, disposition string) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("download: status %d, body %s", r.status, r.body)
	}
	for k, want := range map[string]string{
		"Content-Type":            fileType,
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "default-src 'none'; sandbox",
		"Content-Disposition":     disposition,
		"Cache-Control":           "private, max-age=3600",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
}

func TestUploadDownloadRaw(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *env) {
		a := e.uploadRaw("alice", "team", "cat.png", "image/png", bytes.NewReader(pngFile)).attachment(t)
		if !urlPattern.MatchString(a.URL) || a.FileType != "image/png" || a.Size != int64(len(pngFile)) || a.Filename != "cat.png" {
			t.Fatalf("attachment %+v", a)
		}
		r := e.download("alice", a.URL)
		wantInertHeaders(t, r, "image/png", `inline; filename="cat.png"`)
		if !bytes.Equal(r.body, pngFile) {
			t.Fatalf("downloaded %d bytes, uploaded %d", len(r.body), len(pngFile))
		}
		// A member who may only read downloads too.
		if r := e.download("carol", a.URL); r.status != http.StatusOK || !bytes.Equal(r.body, pngFile) {
			t.Fatalf("readonly member: %d", r.status)
		}
		// Text (no declared type) downloads as a file.
		a = e.uploadRaw("alice", "team", "notes.txt", "", strings.NewReader("plain notes\n")).attachment(t)
		if a.FileType != "text/plain" {
			t.Fatalf("text: %+v", a)
		}
		wantInertHeaders(t, e.download("alice", a.URL), "text/plain", `attachment; filename="notes.txt"`)
	})
}

func TestUploadDownloadMultipart(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *env) {
		a := e.uploadMultipart("alice", "team", "Rapport d'été.pdf", "application/pdf", pdfFile).attachment(t)
		if a.FileType != "application/pdf" || a.Size != int64(len(pdfFile)) || a.Filename != "Rapport dété.pdf" {
			t.Fatalf("attachment %+v", a)
		}
		r := e.download("alice", a.URL)
		wantInertHeaders(t, r, "application/pdf", `attachment; filename="Rapport d_t_.pdf"; filename*=UTF-8''Rapport%20d%C3%A9t%C3%A9.pdf`)
		if !bytes.Equal(r.body, pdfFile) {
			t.Fatalf("downloaded %q", r.body)
		}
		// A 9 MiB image, larger than an S3 part: streamed multipart upload.
		big := append(append([]byte(nil), pngFile...), bytes.Repeat([]byte{0}, 9<<20)...)
		a = e.uploadMultipart("alice", "team", "big.png", "image/png", big).attachment(t)
		if a.Size != int64(len(big)) {
			t.Fatalf("big: %+v", a)
		}
		if r := e.download("alice", a.URL); !bytes.Equal(r.body, big) {
			t.Fatalf("big: downloaded %d bytes of %d", len(r.body), len(big))
		}
		// The same as a raw body with its Content-Length (on S3: a
		// multipart upload of known size).
		a = e.uploadRaw("alice", "team", "big.png", "image/png", bytes.NewReader(big)).attachment(t)
		if r := e.download("alice", a.URL); a.Size != int64(len(big)) || !bytes.Equal(r.body, big) {
			t.Fatalf("big raw: %+v, downloaded %d bytes of %d", a, len(r.body), len(big))
		}
	})
}

func TestRefusedTypes(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *env) {
		for _, c := range []struct {
			name, filename, contentType string
			content                     []byte
		}{
			{"executable", "setup.exe", "application/octet-stream", exeFile},
			{"html", "page.html", "text/html", htmlFile},
			{"html named png", "x.png", "", htmlFile},
			{"html sent as png", "x.png", "image/png", htmlFile},
			{"svg", "logo.svg", "image/svg+xml", svgFile},
			{"svg sent as png", "logo.png", "image/png", svgFile},
			{"png sent as gif", "a.gif", "image/gif", pngFile},
			{"png sent as html", "a.html", "text/html", pngFile},
		} {
			e.uploadRaw("alice", "team", c.filename, c.contentType, bytes.NewReader(c.content)).wantError(t, http.StatusUnsupportedMediaType)
			e.uploadMultipart("alice", "team", c.filename, c.contentType, c.content).wantError(t, http.StatusUnsupportedMediaType)
		}
		if n := e.count(); n != 0 {
			t.Fatalf("%d objects stored by refused uploads", n)
		}
	})
}

// TestHTMLDisguisedAsImage: HTML behind a real PNG signature sniffs as a
// PNG, so it is accepted as one, and is served inert: as image/png, never
// sniffed (nosniff), in a sandbox that runs nothing (CSP), under the
// sanitised name; a browser shows a broken image, never the page. A
// disguise the server cannot see through the sniffer (HTML named or
// declared .png) is refused in TestRefusedTypes.
func TestHTMLDisguisedAsImage(t *testing.T) {
	disguised := append(append([]byte{}, pngFile[:16]...), htmlFile...)
	forEachStorage(t, func(t *testing.T, e *env) {
		for _, name := range []string{"cat.png", "cat.html"} {
			a := e.uploadRaw("alice", "team", name, "", bytes.NewReader(disguised)).attachment(t)
			if a.FileType != "image/png" {
				t.Fatalf("%s: stored as %q, want image/png (the sniffer's answer)", name, a.FileType)
			}
			r := e.download("alice", a.URL)
			wantInertHeaders(t, r, "image/png", "inline; filename=\""+a.Filename+"\"")
			if !bytes.Equal(r.body, disguised) {
				t.Fatalf("%s: served %d bytes, want the upload's %d", name, len(r.body), len(disguised))
			}
			if strings.HasSuffix(a.Filename, ".html") {
				t.Errorf("%s: filename %q ends in .html: a saved copy would open as a page", name, a.Filename)
			}
		}
	})
}

// unsized hides a reader's length, so the client sends it chunked
// (no Content-Length).
type unsized struct{ r io.Reader }

func (u unsized) Read(p []byte) (int, error) { return u.r.Read(p) }

func TestOverSize(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *env) {
		limit := attachment.DefaultMaxBytes // the default: 10 MiB
		over := append(append([]byte(nil), pngFile...), bytes.Repeat([]byte{0}, limit+1-len(pngFile))...)
		// With a Content-Length: refused before the body is read.
		e.uploadRaw("alice", "team", "big.png", "image/png", bytes.NewReader(over)).wantError(t, http.StatusRequestEntityTooLarge)
		// Refused on the Content-Length alone: content that would be
		// refused 415 once read is answered 413.
		overHTML := append(append([]byte(nil), htmlFile...), bytes.Repeat([]byte{' '}, limit+1-len(htmlFile))...)
		e.uploadRaw("alice", "team", "big.png", "image/png", bytes.NewReader(overHTML)).wantError(t, http.StatusRequestEntityTooLarge)
		// Without: refused while streaming.
		e.uploadRaw("alice", "team", "big.png", "image/png", unsized{bytes.NewReader(over)}).wantError(t, http.StatusRequestEntityTooLarge)
		// Multipart: the file part is over the limit though the body is
		// within the slack allowed for the form's overhead.
		e.uploadMultipart("alice", "team", "big.png", "image/png", over).wantError(t, http.StatusRequestEntityTooLarge)
		if n := e.count(); n != 0 {
			t.Fatalf("%d objects left by refused uploads", n)
		}
		// Exactly the limit is accepted.
		exact := over[:limit]
		if a := e.uploadRaw("alice", "team", "max.png", "image/png", unsized{bytes.NewReader(exact)}).attachment(t); a.Size != int64(limit) {
			t.Fatalf("at the limit: %+v", a)
		}
	})
}

func TestPathTricks(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *env) {
		for _, c := range []struct{ name, want string }{
			{"../../etc/passwd", "passwd.txt"},
			{"..\\..\\windows\\win.ini", "win.ini.txt"},
			{"evil\x00.txt", "evil.txt"},
			{"/absolute/path.txt", "path.txt"},
			{"quote\".txt\r\nX-Injected: 1", "quote.txtX-Injected 1.txt"},
		} {
			a := e.uploadRaw("alice", "team", c.name, "text/plain", strings.NewReader("root:x:0:0\n")).attachment(t)
			if a.Filename != c.want || !urlPattern.MatchString(a.URL) {
				t.Errorf("%q: %+v, want filename %q", c.name, a, c.want)
				continue
			}
			r := e.download("alice", a.URL)
			wantInertHeaders(t, r, "text/plain", `attachment; filename="`+c.want+`"`)
			if r.header.Get("X-Injected") != "" {
				t.Errorf("%q injected a header", c.name)
			}
		}
		// Multipart filenames go through the same sanitising.
		a := e.uploadMultipart("alice", "team", `..\..\a"b.png`, "image/png", pngFile).attachment(t)
		if a.Filename != "ab.png" {
			t.Errorf("multipart filename %q", a.Filename)
		}
		if e.files != nil {
			// The directory holds only id-named files: nothing the
			// client named.
			valid := regexp.MustCompile(`^[0-9a-f]{32}(\.json)?$`)
			for _, f := range e.files() {
				if !valid.MatchString(f) {
					t.Errorf("file %q in the attachment directory", f)
				}
			}
		}
	})
}

func TestPermissions(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *env) {
		a := e.uploadRaw("alice", "team", "cat.png", "image/png", bytes.NewReader(pngFile)).attachment(t)
		pub := e.uploadRaw("alice", "lobby", "cat.png", "image/png", bytes.NewReader(pngFile)).attachment(t)

		// No token, a bad token.
		e.download("", a.URL).wantError(t, http.StatusUnauthorized)
		req, _ := http.NewRequest(http.MethodGet, e.url+a.URL, nil)
		req.Header.Set("Authorization", "Bearer forged")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("forged token: %d", resp.StatusCode)
		}
		e.uploadRaw("", "team", "x.png", "image/png", bytes.NewReader(pngFile)).wantError(t, http.StatusUnauthorized)

		// A non-member: a private room does not exist for them; a public
		// one must be joined first.
		e.download("bob", a.URL).wantError(t, http.StatusNotFound)
		e.download("bob", pub.URL).wantError(t, http.StatusForbidden)
		e.uploadRaw("bob", "team", "x.png", "image/png", bytes.NewReader(pngFile)).wantError(t, http.StatusNotFound)
		e.uploadRaw("bob", "lobby", "x.png", "image/png", bytes.NewReader(pngFile)).wantError(t, http.StatusForbidden)
		// A readonly member may not upload.
		e.uploadRaw("carol", "team", "x.png", "image/png", bytes.NewReader(pngFile)).wantError(t, http.StatusForbidden)
		// A muted member may not upload; a member removed a moment ago
		// (the access is read from the store, not a cache) may not
		// download.
		ctx := context.Background()
		if err := e.st.PutMember(ctx, store.Member{Room: "lobby", UserID: e.ids["bob"], Username: "bob", Role: store.RoleMember,
			MutedUntil: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		e.uploadRaw("bob", "lobby", "x.png", "image/png", bytes.NewReader(pngFile)).wantError(t, http.StatusForbidden)
		if r := e.download("bob", pub.URL); r.status != http.StatusOK {
			t.Fatalf("muted member download: %d", r.status)
		}
		if r := e.download("carol", a.URL); r.status != http.StatusOK {
			t.Fatalf("carol before removal: %d", r.status)
		}
		if err := e.st.RemoveMember(ctx, "team", e.ids["carol"]); err != nil {
			t.Fatal(err)
		}
		e.download("carol", a.URL).wantError(t, http.StatusNotFound)
		// An unknown room, a bad room name.
		e.uploadRaw("alice", "nowhere", "x.png", "image/png", bytes.NewReader(pngFile)).wantError(t, http.StatusNotFound)
		e.uploadRaw("alice", "BAD%20ROOM", "x.png", "image/png", bytes.NewReader(pngFile)).wantError(t, http.StatusBadRequest)

		// Another room's id, in a room alice may read: not found.
		id := a.URL[strings.LastIndex(a.URL, "/")+1:]
		e.download("alice", "/api/rooms/other/attachments/"+id).wantError(t, http.StatusNotFound)
		e.download("alice", "/api/rooms/team/attachments/"+strings.Repeat("0", 32)).wantError(t, http.StatusNotFound)
		e.download("alice", "/api/rooms/team/attachments/..%2F..%2Faurora.db").wantError(t, http.StatusNotFound)
		if n := e.count(); n != 2 {
			t.Fatalf("%d objects, want the 2 uploaded", n)
		}
	})
}

func TestBadUploads(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *env) {
		e.uploadRaw("alice", "team", "empty.txt", "text/plain", strings.NewReader("")).wantError(t, http.StatusBadRequest)
		// A form without the part "file".
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("caption", "no file")
		_ = mw.Close()
		req, _ := http.NewRequest(http.MethodPost, e.url+"/api/rooms/team/attachments", &buf)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		e.do("alice", req).wantError(t, http.StatusBadRequest)
		// A multipart type without a boundary.
		e.uploadRaw("alice", "team", "", "multipart/form-data", strings.NewReader("junk")).wantError(t, http.StatusBadRequest)
		if n := e.count(); n != 0 {
			t.Fatalf("%d objects stored", n)
		}
	})
}

func TestCheckAndDelete(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.uploadRaw("alice", "team", "cat.png", "image/png", bytes.NewReader(pngFile)).attachment(t)
		b := e.uploadRaw("alice", "team", "notes.txt", "text/plain", strings.NewReader("notes")).attachment(t)
		o := e.uploadRaw("alice", "other", "cat.png", "image/png", bytes.NewReader(pngFile)).attachment(t)

		// The client's fileType, size and filename are replaced by
		// storage's.
		got, err := e.svc.Check(ctx, "team", e.ids["alice"], []bus.Attachment{
			{URL: a.URL, FileType: "text/html", Size: 1, Filename: "evil.html"},
			{URL: b.URL},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != a || got[1] != b {
			t.Fatalf("check = %+v, want %+v, %+v", got, a, b)
		}
		oid := o.URL[strings.LastIndex(o.URL, "/")+1:]
		for name, in := range map[string][]bus.Attachment{
			"another room's url":         {{URL: o.URL}},
			"another room's id":          {{URL: "/api/rooms/team/attachments/" + oid}},
			"unknown id":                 {{URL: "/api/rooms/team/attachments/" + strings.Repeat("a", 32)}},
			"absolute url":               {{URL: e.url + a.URL}},
			"foreign url":                {{URL: "https://evil.example/cat.png"}},
			"path trick":                 {{URL: "/api/rooms/team/attachments/../../other/attachments/" + oid}},
			"query":                      {{URL: a.URL + "?x=1"}},
			"twice":                      {{URL: a.URL}, {URL: a.URL}},
			"empty":                      {{}},
			"more than MaxAttachments+1": make([]bus.Attachment, bus.MaxAttachments+1),
		} {
			_, err := e.svc.Check(ctx, "team", e.ids["alice"], in)
			if !errors.Is(err, attachapi.ErrInvalid) || !errors.Is(err, membership.ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid and membership.ErrInvalid", name, err)
			}
		}
		// Another member may not send alice's upload: deleting their
		// message would delete the object under alice's message too.
		if _, err := e.svc.Check(ctx, "team", e.ids["carol"], []bus.Attachment{{URL: a.URL}}); !errors.Is(err, attachapi.ErrInvalid) || !strings.Contains(err.Error(), "not uploaded by you") {
			t.Errorf("carol sends alice's upload: %v, want a refusal naming the uploader", err)
		}
		if got, err := e.svc.Check(ctx, "team", e.ids["alice"], nil); err != nil || got != nil {
			t.Fatalf("no attachments: %v, %v", got, err)
		}

		// DeleteAttachment refuses another room's object under this
		// room's URL, and deletes this room's (twice is fine).
		if err := e.svc.DeleteAttachment(ctx, "/api/rooms/team/attachments/"+oid); !errors.Is(err, attachapi.ErrInvalid) {
			t.Fatalf("delete another room's object: %v", err)
		}
		if err := e.svc.DeleteAttachment(ctx, "not a url"); !errors.Is(err, attachapi.ErrInvalid) {
			t.Fatalf("delete a bad url: %v", err)
		}
		// Ingest's deleter (attachment.Deleter) deletes the same way.
		if err := (attachment.Deleter{Storage: e.svc.Storage}).DeleteAttachment(ctx, "/api/rooms/team/attachments/"+oid); !errors.Is(err, attachapi.ErrInvalid) {
			t.Fatalf("deleter: another room's object: %v", err)
		}
		if err := e.svc.DeleteAttachment(ctx, a.URL); err != nil {
			t.Fatal(err)
		}
		if err := (attachment.Deleter{Storage: e.svc.Storage}).DeleteAttachment(ctx, a.URL); err != nil {
			t.Fatalf("deleter: an object already gone: %v", err)
		}
		if err := (attachment.Deleter{Storage: e.svc.Storage}).DeleteAttachment(ctx, b.URL); err != nil {
			t.Fatal(err)
		}
		e.download("alice", b.URL).wantError(t, http.StatusNotFound)
		e.download("alice", a.URL).wantError(t, http.StatusNotFound)
		if r := e.download("alice", o.URL); r.status != http.StatusOK {
			t.Fatalf("the other room's object: %d", r.status)
		}
		if _, err := e.svc.Check(ctx, "team", e.ids["alice"], []bus.Attachment{{URL: a.URL}}); !errors.Is(err, attachapi.ErrInvalid) {
			t.Fatalf("check a deleted attachment: %v", err)
		}
	})
}

func TestDisposition(t *testing.T) {
	for _, c := range []struct {
		inline bool
		name   string
		want   string
	}{
		{true, "cat.png", `inline; filename="cat.png"`},
		{false, "a b.txt", `attachment; filename="a b.txt"`},
		{false, "日本.pdf", `attachment; filename="__.pdf"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.pdf`},
		{false, `q"\.txt`, `attachment; filename="q__.txt"; filename*=UTF-8''q%22%5C.txt`},
	} {
		if got := attachapi.Disposition(c.inline, c.name); got != c.want {
			t.Errorf("Disposition(%v, %q) = %s, want %s", c.inline, c.name, got, c.want)
		}
	}
}

func TestParseURL(t *testing.T) {
	id := strings.Repeat("ab", 16)
	room, got, ok := attachapi.ParseURL(attachapi.URL("team", id))
	if !ok || room != "team" || got != id {
		t.Fatalf("round trip: %q %q %v", room, got, ok)
	}
	for _, bad := range []string{"", "/api/rooms/team/attachments/", "/api/rooms/team/attachments/" + id + "/x", "/api/rooms//attachments/" + id, "api/rooms/team/attachments/" + id} {
		if _, _, ok := attachapi.ParseURL(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestUploadLimit: a member's upload attempts, refused ones too, count
// against Uploads; over it, 429 with Retry-After and nothing read or
// stored; once the window has passed (real time: a 500 ms window here, as
// the minute of attachments.uploads_per_minute would make the test wait a
// minute), uploads are let in again. Requests refused before the count (a
// stranger's) do not count. Redis unreachable: 503.
func TestUploadLimit(t *testing.T) {
	e := newEnv(t, storeKinds()[0], storages()[0])
	c := apptest.RedisClient(t, apptest.RedisURL(t))
	const window = 500 * time.Millisecond
	e.svc.Uploads = throttle.New(c, 2, window)
	e.uploadRaw("bob", "team", "cat.png", "image/png", bytes.NewReader(pngFile)).wantError(t, http.StatusNotFound)
	e.uploadRaw("alice", "team", "cat.png", "image/png", bytes.NewReader(pngFile)).attachment(t)
	e.uploadRaw("alice", "team", "page.html", "text/html", bytes.NewReader(htmlFile)).wantError(t, http.StatusUnsupportedMediaType)
	over := e.uploadRaw("alice", "team", "cat.png", "image/png", bytes.NewReader(pngFile))
	over.wantError(t, http.StatusTooManyRequests)
	if ra := over.header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After %q, want 1 (the window's rest, rounded up)", ra)
	}
	if n := e.count(); n != 1 {
		t.Fatalf("%d objects stored, want the one upload let in", n)
	}
	// Another member is counted apart (lobby is public: carol joins it).
	if err := e.st.PutMember(context.Background(), store.Member{Room: "lobby", UserID: e.ids["carol"], Username: "carol", Role: store.RoleMember}); err != nil {
		t.Fatal(err)
	}
	e.uploadRaw("carol", "lobby", "cat.png", "image/png", bytes.NewReader(pngFile)).attachment(t)
	time.Sleep(window + 100*time.Millisecond)
	e.uploadRaw("alice", "team", "cat.png", "image/png", bytes.NewReader(pngFile)).attachment(t)

	down := apptest.EmbeddedRedis(t, embeddedredis.Options{})
	dc := apptest.RedisClient(t, down.URL())
	e.svc.Uploads = throttle.New(dc, 2, window)
	down.Close()
	e.uploadRaw("alice", "team", "cat.png", "image/png", bytes.NewReader(pngFile)).wantError(t, http.StatusServiceUnavailable)
}
