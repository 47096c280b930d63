package cmd_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"go.yaml.in/yaml/v3"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/infra"
	"github.com/auroradev/aurora/cmd"
)

// clearConfigEnv unsets every variable the configuration reads, for this test, so
// the machine's environment cannot change what a command sees.
func clearConfigEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "AURORA_"),
			k == "PORT", k == "JWT_SECRET", k == "REDIS_HOST", k == "REDIS_PORT", k == "MONGO_URL":
			t.Setenv(k, "")
		}
	}
}

// runAurora runs the command line in process and returns its exit code and output.
func runAurora(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := cmd.Run(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestVersion(t *testing.T) {
	code, out, errOut := runAurora(t, "version")
	if code != 0 {
		t.Fatalf("version exited %d: %s", code, errOut)
	}
	for _, want := range []string{"aurora " + cmd.Version, "commit ", runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(out, want) {
			t.Errorf("version output %q lacks %q", out, want)
		}
	}

	// What -ldflags stamps is what version prints.
	oldV, oldC := cmd.Version, cmd.Commit
	t.Cleanup(func() { cmd.Version, cmd.Commit = oldV, oldC })
	cmd.Version, cmd.Commit = "v1.2.3", "abc1234"
	_, out, _ = runAurora(t, "version")
	if !strings.Contains(out, "aurora v1.2.3\n") || !strings.Contains(out, "commit abc1234\n") {
		t.Errorf("stamped version output %q", out)
	}
}

func TestServeRejectsUnknownRole(t *testing.T) {
	clearConfigEnv(t)
	code, _, errOut := runAurora(t, "serve", "--roles=bogus", "--data-dir", t.TempDir())
	if code == 0 {
		t.Fatal("serve --roles=bogus exited 0")
	}
	for _, want := range []string{"bogus", "roles", "auth, chat, ingest"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q lacks %q", errOut, want)
		}
	}
}

func TestUnknownCommandAndFlag(t *testing.T) {
	if code, _, errOut := runAurora(t, "frobnicate"); code == 0 || !strings.Contains(errOut, "frobnicate") {
		t.Errorf("unknown command: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := runAurora(t, "serve", "--no-such-flag"); code == 0 || !strings.Contains(errOut, "no-such-flag") {
		t.Errorf("unknown flag: exit %d, stderr %q", code, errOut)
	}
}

func TestConfigPrint(t *testing.T) {
	clearConfigEnv(t)
	t.Setenv("AURORA_AUTH_JWT_SECRET", "very-secret-signing-key-0123456789")
	t.Setenv("AURORA_REDIS_URL", "redis://:hunter2@redis.internal:6379/0")
	t.Setenv("AURORA_CHAT_ROOM_RATE", "9")
	file := filepath.Join(t.TempDir(), "aurora.yaml")
	if err := os.WriteFile(file, []byte("ingest:\n  batch_size: 25\nchat:\n  room_rate: 4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runAurora(t, "config", "print", "--config", file, "--mongo-url", "mongodb://u:mongopw@mongo:27017/chat")
	if code != 0 {
		t.Fatalf("config print exited %d: %s", code, errOut)
	}
	for _, secret := range []string{"very-secret-signing-key", "hunter2", "mongopw"} {
		if strings.Contains(out, secret) {
			t.Errorf("config print shows the secret %q:\n%s", secret, out)
		}
	}

	var got struct {
		Roles []string `yaml:"roles"`
		HTTP  struct {
			Addr         string `yaml:"addr"`
			DrainTimeout string `yaml:"drain_timeout"`
		} `yaml:"http"`
		Redis struct{ URL string } `yaml:"redis"`
		Mongo struct{ URL string } `yaml:"mongo"`
		Auth  struct {
			JWTSecret string `yaml:"jwt_secret"`
		} `yaml:"auth"`
		Chat struct {
			RoomRate int `yaml:"room_rate"`
		} `yaml:"chat"`
		Ingest struct {
			BatchSize int `yaml:"batch_size"`
		} `yaml:"ingest"`
	}
	if err := yaml.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("config print is not YAML: %v\n%s", err, out)
	}
	if got.Auth.JWTSecret == "" {
		t.Error("jwt_secret printed empty although one is set (masking must still show it is set)")
	}
	if !strings.Contains(got.Redis.URL, "redis.internal:6379") || !strings.Contains(got.Mongo.URL, "u:") {
		t.Errorf("masked URLs lost their host or user: redis %q mongo %q", got.Redis.URL, got.Mongo.URL)
	}
	if got.Chat.RoomRate != 9 { // env beats the file
		t.Errorf("chat.room_rate = %d, want 9 from the environment", got.Chat.RoomRate)
	}
	if got.Ingest.BatchSize != 25 {
		t.Errorf("ingest.batch_size = %d, want 25 from the file", got.Ingest.BatchSize)
	}
	if got.HTTP.Addr != ":8080" || got.HTTP.DrainTimeout != "25s" {
		t.Errorf("http = %+v, want the defaults (durations as text)", got.HTTP)
	}
	if strings.Join(got.Roles, ",") != "auth,chat,ingest" {
		t.Errorf("roles = %q", got.Roles)
	}
}

func TestConfigPrintBadValue(t *testing.T) {
	clearConfigEnv(t)
	t.Setenv("AURORA_CHAT_ROOM_RATE", "0")
	code, out, errOut := runAurora(t, "config", "print")
	if code == 0 {
		t.Fatalf("config print with a bad value exited 0:\n%s", out)
	}
	if !strings.Contains(errOut, "chat.room_rate") {
		t.Errorf("stderr %q does not name the key", errOut)
	}
}

func TestShortJWTSecret(t *testing.T) {
	clearConfigEnv(t)
	t.Setenv("JWT_SECRET", "dev-secret") // AuroraChat's default
	dir := filepath.Join(t.TempDir(), "data")
	code, _, errOut := runAurora(t, "serve", "--data-dir", dir, "--http-addr", "127.0.0.1:0")
	if code == 0 {
		t.Fatal("serve with JWT_SECRET=dev-secret exited 0")
	}
	for _, want := range []string{"config key auth.jwt_secret: is 10 bytes, at least 32", "openssl rand -hex 32", "AURORA_AUTH_INSECURE_SHORT_SECRET=true"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q lacks %q", errOut, want)
		}
	}
	if strings.Contains(errOut, "dev-secret") && !strings.Contains(errOut, "AuroraChat's dev-secret") {
		t.Errorf("stderr shows the secret: %q", errOut)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("serve touched the data dir before refusing (stat: %v)", err)
	}

	t.Setenv("AURORA_AUTH_INSECURE_SHORT_SECRET", "true")
	code, out, errOut := runAurora(t, "config", "print")
	if code != 0 || !strings.Contains(out, "insecure_short_secret: true") {
		t.Fatalf("config print with the flag: exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestMigrateSQLite(t *testing.T) {
	clearConfigEnv(t)
	dir := filepath.Join(t.TempDir(), "data")
	for i := range 2 { // idempotent
		code, out, errOut := runAurora(t, "migrate", "--data-dir", dir)
		if code != 0 {
			t.Fatalf("migrate run %d exited %d: %s", i+1, code, errOut)
		}
		if strings.TrimSpace(out) != "sqlite store migrated" {
			t.Fatalf("migrate run %d printed %q", i+1, out)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "aurora.db")); err != nil || fi.Size() == 0 {
		t.Fatalf("migrate left no database file: %v", err)
	}
}

func TestDevRedis(t *testing.T) {
	clearConfigEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		code := cmd.Run(ctx, []string{"dev", "redis", "--addr", "127.0.0.1:0"}, pw, &stderr)
		_ = pw.Close()
		done <- code
	}()

	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("dev redis printed nothing: %v (stderr %q)", err, stderr.String())
	}
	// "embedded Redis listening on redis://:PASSWORD@127.0.0.1:NNNN?protocol=2 ..."
	var url string
	for _, f := range strings.Fields(line) {
		if strings.HasPrefix(f, "redis://") {
			url = f
		}
	}
	if url == "" || !strings.HasSuffix(url, "?protocol=2") || !strings.HasPrefix(url, "redis://:") {
		t.Fatalf("no redis URL with a password in %q", line)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	opt, err := infra.RedisOptions(url)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	if err := c.Do(rctx, c.B().Set().Key("k").Value("v").Build()).Error(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if v, err := c.Do(rctx, c.B().Get().Key("k").Build()).ToString(); err != nil || v != "v" {
		t.Fatalf("GET = %q, %v", v, err)
	}
	// Keys age on the wall clock.
	if err := c.Do(rctx, c.B().Set().Key("short").Value("v").Px(150*time.Millisecond).Build()).Error(); err != nil {
		t.Fatalf("SET PX: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	if n, err := c.Do(rctx, c.B().Exists().Key("short").Build()).AsInt64(); err != nil || n != 0 {
		t.Fatalf("EXISTS 200 ms after SET PX 150 = %d, %v", n, err)
	}
	c.Close()

	// Without the password nothing is answered.
	opt.Password = ""
	if nc, err := rueidis.NewClient(opt); err == nil {
		err = nc.Do(rctx, nc.B().Get().Key("k").Build()).Error()
		nc.Close()
		if err == nil || !strings.Contains(err.Error(), "NOAUTH") {
			t.Fatalf("GET without the password: %v, want NOAUTH", err)
		}
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("dev redis exited %d: %s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev redis did not stop on cancel")
	}
}

// TestDevRedisLoopbackOnly: the embedded Redis is never offered to the
// network.
func TestDevRedisLoopbackOnly(t *testing.T) {
	clearConfigEnv(t)
	var out, errOut bytes.Buffer
	code := cmd.Run(context.Background(), []string{"dev", "redis", "--addr", "0.0.0.0:0"}, &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "loopback") {
		t.Fatalf("dev redis on 0.0.0.0: exit %d, %q", code, errOut.String())
	}
}

func TestAllRolesInProcess(t *testing.T) {
	// The command line registers every role (cmd imports them); with the
	// default roles, the runtime starts them with the shared infrastructure
	// and /readyz reports each check.
	cfg := apptest.Config(t)
	if strings.Join(cfg.Roles, ",") != "auth,chat,ingest" {
		t.Fatalf("default roles %q", cfg.Roles)
	}
	s := apptest.Start(t, cfg)
	if got := app.Roles(); strings.Join(got, ",") != "auth,chat,ingest" {
		t.Errorf("registered roles %q, want auth, chat, ingest", got)
	}
	resp, err := http.Get(s.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ready); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || ready.Status != "ok" {
		t.Fatalf("/readyz = %d %+v", resp.StatusCode, ready)
	}
	for _, name := range []string{app.ModRedis, app.ModStore} {
		if ready.Checks[name] != "ok" {
			t.Errorf("/readyz check %s = %q, want ok (all: %v)", name, ready.Checks[name], ready.Checks)
		}
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}
