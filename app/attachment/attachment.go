// Package attachment stores the files messages carry (issue #13): the
// Storage interface with a local-directory implementation (the default,
// <data_dir>/attachments) and an S3-compatible one (minio-go, for
// multi-replica installs), and the upload policy every upload passes
// (Policy: the type sniffed from the content and checked against an
// allow-list, the declared type agreeing with it, a size limit enforced
// while streaming) and the display filename (SanitizeFilename).
//
// An object is named by a random id (NewID), never by anything the client
// sent: the client's filename is metadata only, so no upload can choose a
// path or key. The chat role's HTTP API (modules/chat/attachapi) decides who
// may upload and download; this package decides nothing about rooms.
package attachment

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"time"
)

// Errors of a Storage. Every other error is the backend failing (a disk or
// the object store), which a client may retry.
var (
	// ErrNotFound: no object has the id (or the id is not one NewID makes).
	ErrNotFound = errors.New("attachment not found")
	// ErrTooLarge: the upload is over the limit Put was given; nothing was
	// stored.
	ErrTooLarge = errors.New("attachment too large")
)

// Meta is what is kept with an object. Size and Created are set by Put.
type Meta struct {
	Room     string    `json:"room"`
	Filename string    `json:"filename"` // sanitised, for display only
	FileType string    `json:"fileType"` // the sniffed media type, no parameters
	Size     int64     `json:"size"`
	Uploader string    `json:"uploader"` // user id
	Created  time.Time `json:"created"`
}

// Object is a stored object: its id and its metadata.
type Object struct {
	ID string
	Meta
}

// Storage keeps attachment objects. Implementations are safe for
// concurrent use.
type Storage interface {
	// Put stores the content read from r under a new id with meta (its
	// Size and Created are set here) and returns the object. It reads at
	// most limit bytes: content beyond them is ErrTooLarge and nothing is
	// stored. size is the content's length when known (Content-Length),
	// else -1; a size over limit is ErrTooLarge before anything is read.
	// An error reading r is returned wrapped, and nothing is stored.
	Put(ctx context.Context, meta Meta, r io.Reader, size, limit int64) (Object, error)
	// Open returns the content of the object id, with its metadata;
	// ErrNotFound. The caller closes the reader.
	Open(ctx context.Context, id string) (io.ReadCloser, Object, error)
	// Stat returns the object's metadata; ErrNotFound.
	Stat(ctx context.Context, id string) (Object, error)
	// Delete removes the object. Deleting an object that is not there is
	// not an error (ingest deletes again when it redelivers a batch).
	Delete(ctx context.Context, id string) error
}

// idBytes is the randomness of an id: 128 bits, unguessable, so an id
// known to nobody but the room is as good as a capability (the download
// route checks membership anyway).
const idBytes = 16

// NewID returns a new random object id: 32 lowercase hex digits.
func NewID() (string, error) {
	var b [idBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// ValidID reports whether id has the form NewID makes. Every Storage
// refuses other ids as not found, so an id from a URL never reaches a path
// or key with a '/' or '.' in it.
func ValidID(id string) bool {
	if len(id) != 2*idBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// limited reads at most limit bytes of r, and one more to tell that r has
// more: n counts what was read, over reports the excess.
type limited struct {
	r     io.Reader
	limit int64
	n     int64
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n > l.limit {
		return 0, ErrTooLarge
	}
	if rest := l.limit + 1 - l.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.limit {
		return n, ErrTooLarge
	}
	return n, err
}
