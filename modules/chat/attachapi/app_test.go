package attachapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/config"
	_ "github.com/auroradev/aurora/modules/chat" // the chat role, which registers the routes
)

// TestServedByTheChatRole runs the routes as the chat role mounts them
// (modules/chat newModule), on the default local storage and on S3 by
// attachments.s3_url.
func TestServedByTheChatRole(t *testing.T) {
	t.Run("local", func(t *testing.T) {
		cfg := apptest.Config(t)
		cfg.Roles = []string{"chat"}
		a := roundTrip(t, cfg)
		id := a.URL[len(a.URL)-32:]
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "attachments", id)); err != nil {
			t.Fatalf("not in <data_dir>/attachments: %v", err)
		}
	})
	t.Run("s3", func(t *testing.T) {
		mem := s3mem.New()
		if err := mem.CreateBucket("aurora"); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(gofakes3.New(mem).Server())
		t.Cleanup(srv.Close)
		u, _ := url.Parse(srv.URL)
		cfg := apptest.Config(t)
		cfg.Roles = []string{"chat"}
		cfg.Attachments.S3URL = "s3://aurora/files?endpoint=" + u.Host + "&secure=false&region=us-east-1"
		cfg.Attachments.S3AccessKey, cfg.Attachments.S3SecretKey = "test", "test-secret"
		roundTrip(t, cfg)
		list, err := mem.ListBucket("aurora", nil, gofakes3.ListBucketPage{})
		if err != nil || len(list.Contents) != 1 {
			t.Fatalf("bucket holds %v, %v", list, err)
		}
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "attachments")); !os.IsNotExist(err) {
			t.Fatalf("a local directory was made with s3: %v", err)
		}
	})
}

// roundTrip uploads a PNG to general and downloads it through a server
// running cfg.
func roundTrip(t *testing.T, cfg *config.Config) bus.Attachment {
	t.Helper()
	s := apptest.Start(t, cfg)
	tok, _, err := s.App.Host().Tokens.Issue("64b000000000000000000001", "alice")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/rooms/general/attachments?filename=cat.png", bytes.NewReader(pngFile))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "image/png")
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	var out struct{ Attachment bus.Attachment }
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest(http.MethodGet, s.URL+out.Attachment.URL, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = s.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, pngFile) || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("download: %d, %d bytes, %v", resp.StatusCode, len(got), resp.Header)
	}
	return out.Attachment
}
