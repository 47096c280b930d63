package attachment_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/auroradev/aurora/app/attachment"
)

var (
	pngHead  = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	htmlHead = []byte("<!DOCTYPE html><html><script>alert(document.cookie)</script></html>")
	svgHead  = []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`)
)

func TestPolicyCheck(t *testing.T) {
	p := attachment.DefaultPolicy()
	for _, c := range []struct {
		name     string
		head     []byte
		declared string
		want     string // "" : refused
	}{
		{"png undeclared", pngHead, "", "image/png"},
		{"png declared", pngHead, "image/png", "image/png"},
		{"png octet-stream", pngHead, "application/octet-stream", "image/png"},
		{"jpeg alias", []byte("\xff\xd8\xff\xe0\x00\x10JFIF"), "image/jpg", "image/jpeg"},
		{"text with charset", []byte("hello world"), "text/plain; charset=utf-8", "text/plain"},
		{"csv as text", []byte("a,b\n1,2\n"), "text/csv", "text/plain"},
		{"pdf", []byte("%PDF-1.7\n"), "application/pdf", "application/pdf"},
		{"zip", []byte("PK\x03\x04rest"), "application/x-zip-compressed", "application/zip"},
		{"html", htmlHead, "", ""},
		{"html as png", htmlHead, "image/png", ""},
		{"svg", svgHead, "image/svg+xml", ""},
		{"svg undeclared", svgHead, "", ""},
		{"png declared gif", pngHead, "image/gif", ""},
		{"png declared html", pngHead, "text/html", ""},
		{"bad declared", pngHead, "not a type;;", ""},
		{"exe", []byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"), "", ""},
	} {
		got, err := p.Check(c.head, c.declared)
		var te *attachment.TypeError
		switch {
		case c.want == "" && !errors.As(err, &te):
			t.Errorf("%s: got %q, %v; want a TypeError", c.name, got, err)
		case c.want != "" && (err != nil || got != c.want):
			t.Errorf("%s: got %q, %v; want %s", c.name, got, err, c.want)
		}
	}
}

func TestSanitizeFilename(t *testing.T) {
	for _, c := range []struct{ in, typ, want string }{
		{"photo.png", "image/png", "photo.png"},
		{"../../etc/passwd", "text/plain", "passwd.txt"},
		{`..\..\windows\system32\evil.txt`, "text/plain", "evil.txt"},
		{"a\x00b.txt", "text/plain", "ab.txt"},
		{"line\r\nbreak.txt", "text/plain", "linebreak.txt"},
		{`he said "hi".txt`, "text/plain", "he said hi.txt"},
		{"gpj\u202e.exe", "", "gpj.exe"},
		{".htaccess", "", "htaccess"},
		{"...", "", "file"},
		{"", "", "file"},
		{"", "image/png", "file.png"},
		{"page.html", "image/png", "page.html.png"},
		{"IMG.JPEG", "image/jpeg", "IMG.JPEG"},
		{"report.docx", "application/zip", "report.docx"},
		{"tab\tname.pdf", "application/pdf", "tabname.pdf"},
		{"wide\u3000space.pdf", "application/pdf", "wide space.pdf"},
		{"Résumé.pdf", "application/pdf", "Résumé.pdf"},
	} {
		if got := attachment.SanitizeFilename(c.in, c.typ); got != c.want {
			t.Errorf("SanitizeFilename(%q, %q) = %q, want %q", c.in, c.typ, got, c.want)
		}
	}
	long := strings.Repeat("é", 300) + ".png"
	got := attachment.SanitizeFilename(long, "image/png")
	if len(got) > attachment.MaxFilename || !strings.HasSuffix(got, ".png") || !strings.HasPrefix(got, "éé") {
		t.Errorf("long name sanitised to %d bytes %q", len(got), got)
	}
	if !bytes.Equal([]byte(got), []byte(strings.ToValidUTF8(got, "?"))) {
		t.Errorf("long name cut inside a rune: %q", got)
	}
}

func TestParseS3URL(t *testing.T) {
	c, err := attachment.ParseS3URL("s3://files/aurora/att?endpoint=minio:9000&region=eu-west-1&secure=false&path_style=true")
	if err != nil {
		t.Fatal(err)
	}
	want := attachment.S3Config{Endpoint: "minio:9000", Bucket: "files", Prefix: "aurora/att/", Region: "eu-west-1", PathStyle: true}
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	c, err = attachment.ParseS3URL("s3://files")
	if err != nil || c.Endpoint != attachment.DefaultS3Endpoint || !c.Secure || c.Prefix != "" {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	for _, bad := range []string{
		"http://files", "s3://", "s3://key:secret@files", "s3://files?endpoint=http://minio:9000",
		"s3://files?secure=maybe", "s3://files?bucket=x", "s3://files?path_style=yes",
	} {
		if _, err := attachment.ParseS3URL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
