package attachment_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/auroradev/aurora/app/attachment"
	"github.com/auroradev/aurora/config"
)

// backend is one Storage under the contract test, with a way to count
// what it holds (so a refused upload is seen to leave nothing behind).
type backend struct {
	name    string
	storage attachment.Storage
	count   func(t *testing.T) int
}

func localBackend(t *testing.T) backend {
	dir := t.TempDir()
	l, err := attachment.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	return backend{name: "local", storage: l, count: func(t *testing.T) int {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		return len(entries)
	}}
}

// FakeS3 starts an in-process S3-compatible server (gofakes3, in memory)
// on a free port with bucket, and returns its storage URL and backend.
func FakeS3(t testing.TB, bucket string) (string, *s3mem.Backend) {
	t.Helper()
	mem := s3mem.New()
	if err := mem.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(mem).Server())
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return "s3://" + bucket + "/objects?endpoint=" + u.Host + "&region=us-east-1&secure=false&path_style=true", mem
}

func s3Backend(t *testing.T) backend {
	raw, mem := FakeS3(t, "aurora-test")
	c, err := attachment.ParseS3URL(raw)
	if err != nil {
		t.Fatal(err)
	}
	c.AccessKey, c.SecretKey = "test-access", "test-secret"
	s, err := attachment.NewS3(c)
	if err != nil {
		t.Fatal(err)
	}
	return backend{name: "s3", storage: s, count: func(t *testing.T) int {
		list, err := mem.ListBucket("aurora-test", nil, gofakes3.ListBucketPage{})
		if err != nil {
			t.Fatal(err)
		}
		return len(list.Contents)
	}}
}

func backends(t *testing.T) []func(*testing.T) backend {
	return []func(*testing.T) backend{localBackend, s3Backend}
}

// TestStorageContract runs every Storage through the same contract.
func TestStorageContract(t *testing.T) {
	for _, mk := range backends(t) {
		b := mk(t)
		t.Run(b.name, func(t *testing.T) { contract(t, b) })
	}
}

func contract(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.storage
	const limit = 1 << 20
	meta := attachment.Meta{Room: "team-1", Filename: "Résumé 100% final (2).pdf", FileType: "application/pdf", Uploader: "u1"}

	t.Run("round trip", func(t *testing.T) {
		content := []byte("%PDF-1.4 hello")
		before := time.Now().Add(-time.Second)
		o, err := s.Put(ctx, meta, bytes.NewReader(content), int64(len(content)), limit)
		if err != nil {
			t.Fatal(err)
		}
		if !attachment.ValidID(o.ID) || o.Size != int64(len(content)) || o.Room != meta.Room || o.Created.Before(before) {
			t.Fatalf("put returned %+v", o)
		}
		st, err := s.Stat(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.Room != meta.Room || st.Filename != meta.Filename || st.FileType != meta.FileType || st.Uploader != meta.Uploader ||
			st.Size != int64(len(content)) || !st.Created.Equal(o.Created) {
			t.Fatalf("stat = %+v, put %+v", st, o)
		}
		rc, ob, err := s.Open(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil || !bytes.Equal(got, content) || ob.Filename != meta.Filename || ob.Size != o.Size {
			t.Fatalf("open = %q, %+v, %v", got, ob, err)
		}
		if err := s.Delete(ctx, o.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(ctx, o.ID); !errors.Is(err, attachment.ErrNotFound) {
			t.Fatalf("stat after delete: %v", err)
		}
		if _, _, err := s.Open(ctx, o.ID); !errors.Is(err, attachment.ErrNotFound) {
			t.Fatalf("open after delete: %v", err)
		}
		if err := s.Delete(ctx, o.ID); err != nil {
			t.Fatalf("second delete: %v", err)
		}
		if n := b.count(t); n != 0 {
			t.Fatalf("%d files left after delete", n)
		}
	})

	t.Run("unknown length", func(t *testing.T) {
		// Larger than an S3 part, so the S3 storage goes multipart.
		content := bytes.Repeat([]byte("0123456789abcdef"), (6<<20)/16)
		o, err := s.Put(ctx, meta, io.MultiReader(bytes.NewReader(content)), -1, 8<<20)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.Delete(ctx, o.ID) }()
		rc, _, err := s.Open(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		_ = rc.Close()
		if o.Size != int64(len(content)) || !bytes.Equal(got, content) {
			t.Fatalf("size %d, read %d bytes, want %d", o.Size, len(got), len(content))
		}
	})

	t.Run("exactly the limit", func(t *testing.T) {
		content := bytes.Repeat([]byte("x"), 1000)
		o, err := s.Put(ctx, meta, bytes.NewReader(content), -1, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, o.ID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("over the limit", func(t *testing.T) {
		content := bytes.Repeat([]byte("x"), 1001)
		for _, size := range []int64{-1, 1001} {
			if _, err := s.Put(ctx, meta, bytes.NewReader(content), size, 1000); !errors.Is(err, attachment.ErrTooLarge) {
				t.Fatalf("size %d: %v, want ErrTooLarge", size, err)
			}
		}
		// Over the limit past one S3 part, unknown length: the multipart
		// upload is aborted.
		big := io.LimitReader(zeros{}, 7<<20)
		if _, err := s.Put(ctx, meta, big, -1, 6<<20); !errors.Is(err, attachment.ErrTooLarge) {
			t.Fatalf("big: %v, want ErrTooLarge", err)
		}
		if n := b.count(t); n != 0 {
			t.Fatalf("%d files left by refused uploads", n)
		}
	})

	t.Run("reader fails", func(t *testing.T) {
		boom := errors.New("client went away")
		r := io.MultiReader(strings.NewReader("partial content"), failing{boom})
		if _, err := s.Put(ctx, meta, r, -1, limit); !errors.Is(err, boom) {
			t.Fatalf("put: %v, want %v", err, boom)
		}
		if n := b.count(t); n != 0 {
			t.Fatalf("%d files left by a failed upload", n)
		}
	})

	t.Run("bad ids", func(t *testing.T) {
		for _, id := range []string{"", "../../etc/passwd", "0123456789abcdef0123456789abcdeF", "0123456789abcdef0123456789abcde.", "0123456789abcdef0123456789abcdef"} {
			if _, err := s.Stat(ctx, id); !errors.Is(err, attachment.ErrNotFound) {
				t.Errorf("stat %q: %v", id, err)
			}
			if _, _, err := s.Open(ctx, id); !errors.Is(err, attachment.ErrNotFound) {
				t.Errorf("open %q: %v", id, err)
			}
			if err := s.Delete(ctx, id); err != nil {
				t.Errorf("delete %q: %v", id, err)
			}
		}
	})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

type failing struct{ err error }

func (f failing) Read([]byte) (int, error) { return 0, f.err }

func TestFromConfig(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	c := config.Default("chat")
	c.DataDir = t.TempDir()
	s, p, err := attachment.FromConfig(&c)
	if err != nil {
		t.Fatal(err)
	}
	l, ok := s.(*attachment.Local)
	if !ok || l.Dir() != filepath.Join(c.DataDir, "attachments") || p.MaxBytes != c.Attachments.MaxBytes || len(p.Types) != len(c.Attachments.Types) {
		t.Fatalf("local: %T %+v", s, p)
	}
	if fi, err := os.Stat(l.Dir()); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory: %v %v", fi, err)
	}
	c.Attachments.S3URL = "s3://files?endpoint=127.0.0.1:9&secure=false"
	if _, _, err := attachment.FromConfig(&c); err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("s3 without keys: %v", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "ak")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "sk")
	if s, _, err := attachment.FromConfig(&c); err != nil {
		t.Fatalf("s3 with env keys: %v", err)
	} else if _, ok := s.(*attachment.S3); !ok {
		t.Fatalf("s3: %T", s)
	}
	c.Attachments.S3URL = "s3://files?colour=blue"
	if _, _, err := attachment.FromConfig(&c); err == nil {
		t.Fatal("bad s3 url accepted")
	}
}
