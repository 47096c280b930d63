package attachment

import (
	"fmt"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultMaxBytes is attachments.max_bytes by default: 10 MiB.
const DefaultMaxBytes = 10 << 20

// SniffLen is how much of the content the type is sniffed from (what
// net/http.DetectContentType reads).
const SniffLen = 512

// DefaultTypes is attachments.types by default: images a browser previews,
// PDF, plain text and ZIP archives (office documents are ZIP inside and
// sniff as application/zip). Never text/html or image/svg+xml: a browser
// runs the scripts in both, and an upload must never become a page of the
// server's origin. (The download route's nosniff, CSP sandbox and
// Content-Disposition would keep even those inert; the allow-list is the
// first wall, not the only one.)
var DefaultTypes = []string{
	"image/png", "image/jpeg", "image/gif", "image/webp",
	"application/pdf", "text/plain", "application/zip",
}

// inlineTypes are the types a download shows inline (an image preview);
// everything else downloads as a file.
var inlineTypes = []string{"image/png", "image/jpeg", "image/gif", "image/webp"}

// Inline reports whether a download of fileType is shown inline.
func Inline(fileType string) bool { return slices.Contains(inlineTypes, fileType) }

// aliases are declared types that name a sniffed type by another name
// (what browsers and tools send for the same content).
var aliases = map[string][]string{
	"image/jpeg":      {"image/jpg", "image/pjpeg"},
	"application/zip": {"application/x-zip-compressed", "application/x-zip"},
	"text/plain":      {"text/csv", "text/markdown", "text/x-markdown", "text/tab-separated-values", "text/x-log"},
	"application/pdf": {"application/x-pdf"},
}

// Policy is what an upload must satisfy.
type Policy struct {
	// MaxBytes bounds an upload's content.
	MaxBytes int64
	// Types are the media types allowed (the sniffed type must be one).
	Types []string
}

// DefaultPolicy is the policy of the default configuration.
func DefaultPolicy() Policy {
	return Policy{MaxBytes: DefaultMaxBytes, Types: slices.Clone(DefaultTypes)}
}

// TypeError is an upload whose type is refused (HTTP 415).
type TypeError struct{ Msg string }

func (e *TypeError) Error() string { return e.Msg }

// Sniff returns the media type of content (its first SniffLen bytes
// suffice), without parameters: "text/plain; charset=utf-8" is
// "text/plain".
func Sniff(content []byte) string {
	t, _, err := mime.ParseMediaType(http.DetectContentType(content))
	if err != nil {
		return "application/octet-stream"
	}
	return t
}

// Check returns the type of an upload whose content starts with head (at
// least SniffLen bytes unless the content is shorter) and whose client
// declared the type declared (a Content-Type; "" or
// application/octet-stream: none): the sniffed type, when it is allowed
// and the declared one agrees with it; else a *TypeError.
func (p Policy) Check(head []byte, declared string) (string, error) {
	sniffed := Sniff(head)
	if !slices.Contains(p.Types, sniffed) {
		return "", &TypeError{fmt.Sprintf("files of type %s are not accepted (accepted: %s)", sniffed, strings.Join(p.Types, ", "))}
	}
	if declared == "" {
		return sniffed, nil
	}
	d, _, err := mime.ParseMediaType(declared)
	if err != nil {
		return "", &TypeError{fmt.Sprintf("the declared type %q is not a media type", declared)}
	}
	if d == sniffed || d == "application/octet-stream" || slices.Contains(aliases[sniffed], d) {
		return sniffed, nil
	}
	return "", &TypeError{fmt.Sprintf("the file was declared %s but its content is %s", d, sniffed)}
}

// MaxFilename bounds a sanitised filename, in bytes (UTF-8 is kept whole).
const MaxFilename = 255

// DefaultFilename is the name of a file whose name sanitises to nothing.
const DefaultFilename = "file"

// extensions is the extension a file of an allowed type is given when its
// name has another type's (a PNG named page.html downloads as
// page.html.png, so no tool opens it as a page).
var extensions = map[string][]string{
	"image/png":       {".png"},
	"image/jpeg":      {".jpg", ".jpeg", ".jpe", ".jfif"},
	"image/gif":       {".gif"},
	"image/webp":      {".webp"},
	"application/pdf": {".pdf"},
	"text/plain":      {".txt", ".text", ".log", ".md", ".csv", ".tsv"},
	"application/zip": {".zip", ".docx", ".xlsx", ".pptx", ".odt", ".ods", ".odp", ".jar", ".epub"},
}

// SanitizeFilename returns the display name of a client's filename: its
// base name only (after the last '/' or '\'), without control or format
// characters, quotes, separators or leading dots, at most MaxFilename
// bytes, DefaultFilename when nothing is left. When fileType is known and
// the name's extension is another type's, the type's own extension is
// appended. It never becomes a path: storage names objects by id.
func SanitizeFilename(name, fileType string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r == utf8.RuneError, unicode.IsControl(r), unicode.Is(unicode.Cf, r),
			r == '"', r == '\'', r == '`', r == '/', r == '\\', r == ':', r == '*', r == '?', r == '<', r == '>', r == '|':
			// Cf: bidi overrides and zero-width characters, which make
			// "gpj.exe" read as "exe.jpg".
			continue
		case unicode.IsSpace(r):
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	name = strings.TrimLeft(strings.TrimSpace(b.String()), ".")
	name = strings.TrimSpace(name)
	if exts, ok := extensions[fileType]; ok {
		ext := strings.ToLower(path.Ext(name))
		if !slices.Contains(exts, ext) {
			name = strings.TrimRight(name, ".") + exts[0]
			if name == exts[0] {
				name = DefaultFilename + exts[0]
			}
		}
	}
	if name == "" {
		name = DefaultFilename
	}
	return truncate(name, MaxFilename)
}

// truncate cuts s to at most n bytes at a rune boundary, keeping a short
// extension.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	ext := path.Ext(s)
	if len(ext) > 16 {
		ext = ""
	}
	base := s[:len(s)-len(ext)]
	cut := n - len(ext)
	for cut > 0 && !utf8.RuneStart(base[cut]) {
		cut--
	}
	return base[:cut] + ext
}
