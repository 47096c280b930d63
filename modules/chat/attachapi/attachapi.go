// Package attachapi is the chat role's HTTP API of attachments
// (docs/protocol.md, "Attachments"): the upload route, which streams a
// file into attachment.Storage after checking the uploader may send in
// the room and the file's sniffed type and size, and the download route,
// which serves a room's files only to those who may read it, inert
// (nosniff, a sandboxing CSP, Content-Disposition: attachment for
// everything but allow-listed images). Service.Check is what the chat role
// asks before a message carries attachments, Service.DeleteAttachment what
// ingest calls when a message carrying one is deleted or expires.
package attachapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/attachment"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/membership"
	"github.com/auroradev/aurora/app/throttle"
	"github.com/auroradev/aurora/app/token"
	"github.com/auroradev/aurora/app/tokenauth"
	"github.com/auroradev/aurora/modules/chat/roomapi"
)

// Verifier reads and checks a request's bearer token (the chat role's
// verifyBearer: it also refuses disabled users and revoked tokens).
type Verifier func(*http.Request) (token.Claims, error)

// AccessFunc reads what the membership rules need for userID in room,
// from the store (membership.Cache.Fresh): an upload or download must not
// trust a cache entry a kick may be on its way to invalidate.
type AccessFunc func(ctx context.Context, room, userID string) (membership.Access, error)

// accessTimeout bounds the membership read of one request.
const accessTimeout = 5 * time.Second

// multipartSlack is what a multipart/form-data body may carry besides the
// file (boundaries, part headers, a few small fields) before its
// Content-Length alone says it is over the limit.
const multipartSlack = 64 << 10

// Service serves and checks attachments.
type Service struct {
	Storage attachment.Storage
	Policy  attachment.Policy
	Access  AccessFunc
	Verify  Verifier
	// Rooms, when not empty, confines uploads and downloads to these rooms
	// (chat.rooms_allowed): another room is refused 400 as on every route.
	Rooms []string
	// Uploads, when set, counts each member's upload attempts
	// (attachments.uploads_per_minute, per UploadKey): over it, 429.
	Uploads *throttle.Throttle
	Log     *slog.Logger
}

// UploadKey is the Redis key counting userID's uploads.
func UploadKey(userID string) string { return "chat:uploads:" + userID }

// Register adds the upload and download routes to mux.
func Register(mux *http.ServeMux, s *Service) {
	mux.HandleFunc("POST /api/rooms/{room}/attachments", s.upload)
	mux.HandleFunc("GET /api/rooms/{room}/attachments/{id}", s.download)
}

// URL is the download route of attachment id of room (attachment.URL).
func URL(room, id string) string { return attachment.URL(room, id) }

// ParseURL reads room and id from a URL made by URL (attachment.ParseURL).
func ParseURL(u string) (room, id string, ok bool) { return attachment.ParseURL(u) }

// Attachment is an uploaded file on the wire (AuroraChat's field names).
type Attachment = bus.Attachment

func wire(room string, o attachment.Object) Attachment {
	return Attachment{URL: URL(room, o.ID), FileType: o.FileType, Size: o.Size, Filename: o.Filename}
}

// decide verifies the token and decides act in the request's room,
// answering a refusal itself (false).
func (s *Service) decide(w http.ResponseWriter, r *http.Request, act membership.Action) (token.Claims, string, bool) {
	claims, err := s.Verify(r)
	if err != nil {
		tokenauth.Unauthorized(w, err)
		return claims, "", false
	}
	room := r.PathValue("room")
	if !bus.ValidRoom(room) {
		app.WriteError(w, http.StatusBadRequest, bus.RoomRule)
		return claims, "", false
	}
	if len(s.Rooms) > 0 && !slices.Contains(s.Rooms, room) {
		app.WriteError(w, http.StatusBadRequest, "room "+room+" is not open on this server")
		return claims, "", false
	}
	ctx, cancel := context.WithTimeout(r.Context(), accessTimeout)
	defer cancel()
	a, err := s.Access(ctx, room, claims.UserID)
	if err == nil {
		err = membership.Decide(a, act, time.Now())
	}
	if err != nil {
		roomapi.WriteError(w, r, s.Log, err)
		return claims, "", false
	}
	return claims, room, true
}

// source is the file of an upload request: its content, declared type,
// filename and length (-1: unknown).
type source struct {
	body     io.Reader
	declared string
	filename string
	size     int64
}

// readErr records the error reading the request body, so a Put that
// failed is told apart: the client's body (400, 413) or the storage (503).
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

func (s *Service) tooLarge(w http.ResponseWriter) {
	app.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the file is too large (limit %d bytes)", s.Policy.MaxBytes))
}

// upload is POST /api/rooms/{room}/attachments: the file as the body
// (Content-Type its type, ?filename= its name) or as the part "file" of
// a multipart/form-data body. Streamed: at most one sniffing buffer (and,
// on S3, one part) of it is in memory.
func (s *Service) upload(w http.ResponseWriter, r *http.Request) {
	claims, room, ok := s.decide(w, r, membership.Send)
	if !ok {
		return
	}
	if !s.allowUpload(w, r, claims.UserID) {
		return
	}
	ct := r.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	multi := mt == "multipart/form-data"
	bodyLimit := s.Policy.MaxBytes
	if multi {
		bodyLimit += multipartSlack
	}
	if r.ContentLength > bodyLimit {
		// Refused before a byte is read: the limit is known.
		s.tooLarge(w)
		return
	}
	// Bounds the whole body (a multipart one's other parts and headers
	// too) and has the server close the connection instead of reading
	// the rest of a refused upload.
	r.Body = http.MaxBytesReader(w, r.Body, bodyLimit)
	src := source{body: r.Body, declared: ct, filename: r.URL.Query().Get("filename"), size: r.ContentLength}
	if multi {
		var err error
		if src, err = filePart(r); err != nil {
			s.bodyError(w, r, err)
			return
		}
	}
	body := &readErr{r: src.body}
	head := make([]byte, attachment.SniffLen)
	n, err := io.ReadFull(body, head)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
	case err != nil:
		s.bodyError(w, r, err)
		return
	}
	head = head[:n]
	if n == 0 {
		app.WriteError(w, http.StatusBadRequest, "the file is empty")
		return
	}
	fileType, err := s.Policy.Check(head, src.declared)
	if err != nil {
		app.WriteError(w, http.StatusUnsupportedMediaType, err.Error())
		return
	}
	meta := attachment.Meta{
		Room:     room,
		Filename: attachment.SanitizeFilename(src.filename, fileType),
		FileType: fileType,
		Uploader: claims.UserID,
	}
	o, err := s.Storage.Put(r.Context(), meta, io.MultiReader(bytes.NewReader(head), body), src.size, s.Policy.MaxBytes)
	switch {
	case errors.Is(err, attachment.ErrTooLarge):
		s.tooLarge(w)
		return
	case body.err != nil:
		s.bodyError(w, r, body.err)
		return
	case err != nil:
		app.Logger(r.Context(), s.Log).Error("store attachment", "room", room, "err", err)
		app.WriteError(w, http.StatusServiceUnavailable, "could not store the file, retry later")
		return
	}
	app.WriteJSON(w, http.StatusCreated, map[string]any{"attachment": wire(room, o)})
}

// bodyError answers a failure reading the request body.
func (s *Service) bodyError(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	var bad *badUpload
	switch {
	case errors.As(err, &tooBig):
		s.tooLarge(w)
	case errors.As(err, &bad):
		app.WriteError(w, http.StatusBadRequest, bad.msg)
	default:
		app.Logger(r.Context(), s.Log).Debug("read upload", "err", err)
		app.WriteError(w, http.StatusBadRequest, "could not read the upload")
	}
}

type badUpload struct{ msg string }

func (e *badUpload) Error() string { return e.msg }

// filePart finds the part "file" of a multipart/form-data body, skipping
// the parts before it (bounded by the body's limit). Its Content-Length is
// unknown.
func filePart(r *http.Request) (source, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return source{}, &badUpload{"malformed multipart/form-data body: " + err.Error()}
	}
	for {
		p, err := mr.NextPart()
		switch {
		case errors.Is(err, io.EOF):
			return source{}, &badUpload{`the multipart/form-data body has no part named "file"`}
		case err != nil:
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return source{}, err
			}
			return source{}, &badUpload{"malformed multipart/form-data body: " + err.Error()}
		}
		if p.FormName() != "file" {
			if _, err := io.Copy(io.Discard, p); err != nil {
				return source{}, err
			}
			continue
		}
		name := p.FileName()
		if name == "" {
			name = r.URL.Query().Get("filename")
		}
		return source{body: p, declared: p.Header.Get("Content-Type"), filename: name, size: -1}, nil
	}
}

// download is GET /api/rooms/{room}/attachments/{id}.
func (s *Service) download(w http.ResponseWriter, r *http.Request) {
	_, room, ok := s.decide(w, r, membership.Read)
	if !ok {
		return
	}
	id := r.PathValue("id")
	rc, o, err := s.Storage.Open(r.Context(), id)
	switch {
	case errors.Is(err, attachment.ErrNotFound):
		app.WriteError(w, http.StatusNotFound, "no such attachment")
		return
	case err != nil:
		app.Logger(r.Context(), s.Log).Error("open attachment", "room", room, "id", id, "err", err)
		app.WriteError(w, http.StatusServiceUnavailable, "could not read the file, retry later")
		return
	}
	defer rc.Close()
	if o.Room != room {
		// Another room's file reads exactly like none.
		app.WriteError(w, http.StatusNotFound, "no such attachment")
		return
	}
	head := make([]byte, attachment.SniffLen)
	n, err := io.ReadFull(rc, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		app.Logger(r.Context(), s.Log).Error("read attachment", "room", room, "id", id, "err", err)
		app.WriteError(w, http.StatusServiceUnavailable, "could not read the file, retry later")
		return
	}
	head = head[:n]
	h := w.Header()
	h.Set("Content-Type", o.FileType)
	h.Set("Content-Length", strconv.FormatInt(o.Size, 10))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Referrer-Policy", "no-referrer")
	// Private: only the room's members may have it; an object never
	// changes under its id, so a member's browser may keep it a while.
	h.Set("Cache-Control", "private, max-age=3600")
	// Inline only an allow-listed image whose content still sniffs as
	// the type it was stored as (a store edited behind Aurora's back does
	// not turn a download into a page).
	inline := attachment.Inline(o.FileType) && attachment.Sniff(head) == o.FileType
	h.Set("Content-Disposition", Disposition(inline, o.Filename))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := w.Write(head); err != nil {
		return
	}
	_, _ = io.Copy(w, rc)
}

// Disposition is the Content-Disposition of a download (RFC 6266): inline
// or attachment, with the filename as an ASCII fallback (other characters
// as '_') and, when it is not plain ASCII, as filename* (RFC 5987, UTF-8
// percent-encoded).
func Disposition(inline bool, filename string) string {
	kind := "attachment"
	if inline {
		kind = "inline"
	}
	var ascii strings.Builder
	plain := true
	for _, r := range filename {
		switch {
		case r < 0x20 || r == 0x7f || r == '"' || r == '\\' || r > 0x7e:
			ascii.WriteByte('_')
			plain = false
		default:
			ascii.WriteRune(r)
		}
	}
	v := kind + `; filename="` + ascii.String() + `"`
	if !plain {
		v += "; filename*=UTF-8''" + rfc5987(filename)
	}
	return v
}

// rfc5987 percent-encodes s except attr-char (RFC 5987 §3.2.1).
func rfc5987(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// ErrInvalid is wrapped by every refusal of Check and DeleteAttachment:
// the message names an attachment that is not one of its room's. Check's
// refusals wrap membership.ErrInvalid too, which the chat role answers as
// invalid_message with the error's text; other errors are the storage
// failing (unavailable, retry).
var ErrInvalid = attachment.ErrInvalid

// refusal is a refusal of Check: it wraps ErrInvalid and, for the chat
// role's message path (which refuses a message on membership.ErrInvalid),
// membership.ErrInvalid too.
type refusal struct{ msg string }

func (r *refusal) Error() string   { return "invalid attachment: " + r.msg }
func (r *refusal) Unwrap() []error { return []error{ErrInvalid, membership.ErrInvalid} }

func invalid(format string, args ...any) error { return &refusal{fmt.Sprintf(format, args...)} }

// allowUpload counts an upload of userID against s.Uploads and answers
// 429 (with Retry-After) over it, or 503 when Redis cannot count it: an
// upload nobody counted would make the limit a suggestion.
func (s *Service) allowUpload(w http.ResponseWriter, r *http.Request, userID string) bool {
	if s.Uploads == nil {
		return true
	}
	ok, wait, err := s.Uploads.Reserve(r.Context(), UploadKey(userID))
	switch {
	case err != nil:
		app.Logger(r.Context(), s.Log).Warn("count an upload", "err", err)
		app.WriteError(w, http.StatusServiceUnavailable, "uploads cannot be counted: service unavailable, retry later")
		return false
	case !ok:
		secs := throttle.RetryAfterSeconds(wait)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		app.WriteError(w, http.StatusTooManyRequests, fmt.Sprintf("too many uploads: retry in %d s", secs))
		return false
	}
	return true
}

// Check verifies the attachments a message of userID to room carries: at
// most bus.MaxAttachments, each url the download route of an object
// userID uploaded to room (no duplicates), and returns them as storage has
// them: fileType, size and filename are storage's, never the client's.
// Another member's upload is refused like an unknown one: deleting the
// message deletes its objects, so a message must never carry a file that
// lives on in someone else's message.
func (s *Service) Check(ctx context.Context, room, userID string, in []bus.Attachment) ([]bus.Attachment, error) {
	if len(in) == 0 {
		return nil, nil
	}
	if len(in) > bus.MaxAttachments {
		return nil, invalid("a message carries at most %d attachments", bus.MaxAttachments)
	}
	out := make([]bus.Attachment, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, a := range in {
		r, id, ok := ParseURL(a.URL)
		if !ok || r != room {
			return nil, invalid("%q is not an attachment of %s (upload it with POST %s)", a.URL, room, "/api/rooms/"+room+"/attachments")
		}
		if seen[id] {
			return nil, invalid("%q is attached twice", a.URL)
		}
		seen[id] = true
		o, err := s.Storage.Stat(ctx, id)
		switch {
		case errors.Is(err, attachment.ErrNotFound):
			return nil, invalid("%q is not an attachment of %s", a.URL, room)
		case err != nil:
			return nil, fmt.Errorf("check attachment %s: %w", id, err)
		}
		if o.Room != room {
			return nil, invalid("%q is not an attachment of %s", a.URL, room)
		}
		if o.Uploader != userID {
			return nil, invalid("%q was not uploaded by you (upload the file again to send it)", a.URL)
		}
		out = append(out, wire(room, o))
	}
	return out, nil
}

// DeleteAttachment deletes the object of a download URL (ingest: the
// message carrying it was deleted or expired): attachment.DeleteURL on
// s.Storage. An object already gone is no error; a URL that is not one of
// URL's, or whose object belongs to another room, is refused with
// ErrInvalid and nothing is deleted.
func (s *Service) DeleteAttachment(ctx context.Context, url string) error {
	return attachment.DeleteURL(ctx, s.Storage, url)
}
