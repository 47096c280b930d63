package web_test

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/auroradev/aurora/web"
)

// The files the page is made of; index.html loads app.css and app.js, which
// imports the other modules.
var pageFiles = []string{"index.html", "app.css", "app.js", "api.js", "socket.js", "text.js", "rooms.js", "favicon.svg", "lock.svg"}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(web.Files, name)
	if err != nil {
		t.Fatalf("read embedded %s: %v", name, err)
	}
	return string(b)
}

func TestEmbeddedFiles(t *testing.T) {
	for _, name := range pageFiles {
		if s := readFile(t, name); strings.TrimSpace(s) == "" {
			t.Errorf("embedded %s is empty", name)
		}
	}
}

// sameOrigin reports whether ref is a path on this origin: no scheme, no
// host, nothing protocol-relative.
func sameOrigin(ref string) bool {
	u, err := url.Parse(ref)
	return err == nil && u.Scheme == "" && u.Host == "" && !strings.HasPrefix(ref, "//") && ref != ""
}

// exists reports whether a same-origin reference names an embedded file.
func exists(ref string) bool {
	u, _ := url.Parse(ref)
	name := strings.TrimPrefix(path.Clean("/"+u.Path), "/")
	_, err := fs.Stat(web.Files, name)
	return err == nil
}

// TestIndexObeysCSP checks index.html against what the server's
// Content-Security-Policy allows (app.ContentSecurityPolicy): scripts and
// styles from this origin only, nothing inline.
func TestIndexObeysCSP(t *testing.T) {
	z := html.NewTokenizer(strings.NewReader(readFile(t, "index.html")))
	inScript := false
	scripts, styles := 0, 0
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if err := z.Err(); !errors.Is(err, io.EOF) {
				t.Fatalf("parse index.html: %v", err)
			}
			break
		}
		tok := z.Token()
		switch tt {
		case html.TextToken:
			if inScript && strings.TrimSpace(tok.Data) != "" {
				t.Errorf("inline script content: %q", tok.Data)
			}
		case html.EndTagToken:
			if tok.Data == "script" {
				inScript = false
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			attrs := map[string]string{}
			for _, a := range tok.Attr {
				attrs[a.Key] = a.Val
				if strings.HasPrefix(a.Key, "on") {
					t.Errorf("<%s> has an inline event handler %s=%q", tok.Data, a.Key, a.Val)
				}
				if a.Key == "style" {
					t.Errorf("<%s> has an inline style %q", tok.Data, a.Val)
				}
				if (a.Key == "href" || a.Key == "src" || a.Key == "action") &&
					strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.Val)), "javascript:") {
					t.Errorf("<%s> has a javascript: URL", tok.Data)
				}
			}
			switch tok.Data {
			case "script":
				inScript = tt == html.StartTagToken
				src, ok := attrs["src"]
				switch {
				case !ok:
					t.Errorf("<script> without src: inline scripts are blocked by the CSP")
				case !sameOrigin(src):
					t.Errorf("<script src=%q> is not same-origin", src)
				case !exists(src):
					t.Errorf("<script src=%q> names no embedded file", src)
				}
				scripts++
			case "style":
				t.Errorf("<style> element: inline styles are blocked by the CSP")
			case "link":
				href := attrs["href"]
				if attrs["rel"] == "stylesheet" || attrs["rel"] == "icon" {
					if !sameOrigin(href) || !exists(href) {
						t.Errorf("<link rel=%s href=%q> is not an embedded same-origin file", attrs["rel"], href)
					}
				}
				if attrs["rel"] == "stylesheet" {
					styles++
				}
			}
		}
	}
	if scripts == 0 || styles == 0 {
		t.Errorf("index.html loads %d scripts and %d stylesheets; want the app's", scripts, styles)
	}
}

// forbidden are the ways a script turns a string into markup or code. User
// text must reach the page as text nodes only.
var forbidden = []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "srcdoc"}

func TestScriptsNeverParseHTML(t *testing.T) {
	js, err := fs.Glob(web.Files, "*.js")
	if err != nil || len(js) == 0 {
		t.Fatalf("no embedded scripts (%v)", err)
	}
	importRe := regexp.MustCompile(`(?m)^\s*(?:import|export)\b[^'"]*from\s+['"]([^'"]+)['"]`)
	for _, name := range js {
		src := readFile(t, name)
		for _, f := range forbidden {
			if strings.Contains(src, f) {
				t.Errorf("%s uses %s", name, f)
			}
		}
		for _, m := range importRe.FindAllStringSubmatch(src, -1) {
			if !strings.HasPrefix(m[1], "./") || !exists(m[1]) {
				t.Errorf("%s imports %q: want an embedded ./file", name, m[1])
			}
		}
	}
}

// TestNoExternalResources: the CSP allows nothing but this origin, so the
// page must not depend on fonts or files from elsewhere.
func TestNoExternalResources(t *testing.T) {
	css := readFile(t, "app.css")
	for _, bad := range []string{"@import", "http://", "https://", "url(//"} {
		if strings.Contains(css, bad) {
			t.Errorf("app.css contains %q: load nothing from elsewhere", bad)
		}
	}
}

// TestServedAsModules: module scripts run only with a JavaScript MIME type
// (the server also sends nosniff).
func TestServedAsModules(t *testing.T) {
	srv := httptest.NewServer(http.FileServerFS(web.Files))
	t.Cleanup(srv.Close)
	for path, want := range map[string]string{
		"/":            "text/html",
		"/app.js":      "text/javascript",
		"/socket.js":   "text/javascript",
		"/rooms.js":    "text/javascript",
		"/lock.svg":    "image/svg+xml",
		"/app.css":     "text/css",
		"/favicon.svg": "image/svg+xml",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, want) {
			t.Errorf("GET %s: Content-Type %q, want %s", path, ct, want)
		}
	}
}

// TestScriptIDsExist: every element the page's script looks up by id
// ($('…') or getElementById) is in index.html, and no id is used twice, so
// a renamed element fails here rather than as a null in the browser.
func TestScriptIDsExist(t *testing.T) {
	ids := map[string]int{}
	z := html.NewTokenizer(strings.NewReader(readFile(t, "index.html")))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		for _, a := range z.Token().Attr {
			if a.Key == "id" {
				ids[a.Val]++
			}
		}
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("index.html has %d elements with id %q", n, id)
		}
	}
	lookup := regexp.MustCompile(`(?:\$|getElementById)\('([^']+)'\)`)
	js, _ := fs.Glob(web.Files, "*.js")
	used := 0
	for _, name := range js {
		for _, m := range lookup.FindAllStringSubmatch(readFile(t, name), -1) {
			used++
			if ids[m[1]] == 0 {
				t.Errorf("%s looks up #%s, which index.html does not have", name, m[1])
			}
		}
	}
	if used < 50 {
		t.Errorf("found %d id lookups in the scripts; the pattern no longer matches how they look elements up", used)
	}
}

// TestCSSImagesEmbedded: images the style sheet uses (the private-room
// lock) are embedded files of this origin.
func TestCSSImagesEmbedded(t *testing.T) {
	urls := regexp.MustCompile(`url\(([^)]*)\)`).FindAllStringSubmatch(readFile(t, "app.css"), -1)
	if len(urls) == 0 {
		t.Fatal("app.css uses no url(); the lock icon should be one")
	}
	for _, m := range urls {
		ref := strings.Trim(m[1], `"' `)
		if !sameOrigin(ref) || !exists(ref) {
			t.Errorf("app.css url(%s) is not an embedded same-origin file", ref)
		}
	}
}
