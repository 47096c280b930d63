package attachment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Local keeps objects in a directory: the content in <dir>/<id> and the
// metadata in <dir>/<id>.json. Both are written to temporary files in the
// same directory and renamed into place (content first, metadata last), so
// a reader sees a whole object or none: an object is there when its
// metadata file is. A crash between the renames leaves content without
// metadata, which nothing serves (and Delete removes).
type Local struct {
	dir string
}

// metaSuffix names an object's metadata file.
const metaSuffix = ".json"

// tempPrefix starts every temporary file: a name NewID never makes.
const tempPrefix = ".upload-"

// NewLocal returns a Local storing in dir, creating it (mode 0700: the
// files are the rooms' private content) when missing.
func NewLocal(dir string) (*Local, error) {
	if dir == "" {
		return nil, errors.New("attachment storage: empty directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create attachment directory %s: %w", dir, err)
	}
	return &Local{dir: dir}, nil
}

// Dir is the directory objects are stored in.
func (l *Local) Dir() string { return l.dir }

func (l *Local) content(id string) string { return filepath.Join(l.dir, id) }
func (l *Local) meta(id string) string    { return filepath.Join(l.dir, id+metaSuffix) }

// Put implements Storage.
func (l *Local) Put(ctx context.Context, meta Meta, r io.Reader, size, limit int64) (Object, error) {
	if size > limit {
		return Object{}, ErrTooLarge
	}
	id, err := NewID()
	if err != nil {
		return Object{}, fmt.Errorf("new attachment id: %w", err)
	}
	tmp, err := os.CreateTemp(l.dir, tempPrefix+"*")
	if err != nil {
		return Object{}, fmt.Errorf("create attachment file: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	lr := &limited{r: ctxReader{ctx, r}, limit: limit}
	n, err := io.Copy(tmp, lr)
	switch {
	case errors.Is(err, ErrTooLarge):
		return Object{}, ErrTooLarge
	case err != nil:
		return Object{}, fmt.Errorf("store attachment content: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return Object{}, fmt.Errorf("sync attachment: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return Object{}, fmt.Errorf("close attachment: %w", err)
	}
	meta.Size = n
	meta.Created = time.Now().UTC()
	data, err := json.Marshal(meta)
	if err != nil {
		return Object{}, fmt.Errorf("encode attachment metadata: %w", err)
	}
	if err := os.Rename(tmp.Name(), l.content(id)); err != nil {
		return Object{}, fmt.Errorf("store attachment: %w", err)
	}
	done = true
	if err := writeFileAtomic(l.dir, l.meta(id), data); err != nil {
		_ = os.Remove(l.content(id))
		return Object{}, err
	}
	return Object{ID: id, Meta: meta}, nil
}

// writeFileAtomic writes data to path through a temporary file in dir.
func writeFileAtomic(dir, path string, data []byte) error {
	tmp, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return fmt.Errorf("create attachment metadata: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write attachment metadata: %w", err)
	}
	return nil
}

// Stat implements Storage.
func (l *Local) Stat(_ context.Context, id string) (Object, error) {
	if !ValidID(id) {
		return Object{}, ErrNotFound
	}
	data, err := os.ReadFile(l.meta(id))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Object{}, ErrNotFound
	case err != nil:
		return Object{}, fmt.Errorf("read attachment metadata %s: %w", id, err)
	}
	o := Object{ID: id}
	if err := json.Unmarshal(data, &o.Meta); err != nil {
		return Object{}, fmt.Errorf("decode attachment metadata %s: %w", id, err)
	}
	return o, nil
}

// Open implements Storage.
func (l *Local) Open(ctx context.Context, id string) (io.ReadCloser, Object, error) {
	o, err := l.Stat(ctx, id)
	if err != nil {
		return nil, Object{}, err
	}
	f, err := os.Open(l.content(id))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Deleted between the two reads.
		return nil, Object{}, ErrNotFound
	case err != nil:
		return nil, Object{}, fmt.Errorf("open attachment %s: %w", id, err)
	}
	return f, o, nil
}

// Delete implements Storage: the metadata first, so the object is gone for
// readers before its content is.
func (l *Local) Delete(_ context.Context, id string) error {
	if !ValidID(id) {
		return nil
	}
	for _, p := range []string{l.meta(id), l.content(id)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete attachment %s: %w", id, err)
		}
	}
	return nil
}

// ctxReader stops reading once ctx is done (a request cancelled mid-upload).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
