package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// registryRoles stands for the roles the aurora binary's module registry
// holds, which cmd hands to Load (config cannot ask the registry: the
// runtime imports config). cmd's tests check the real registry's list.
var registryRoles = []string{"auth", "chat", "ingest"}

// env returns a getenv over a fixed map, so tests never read or change the
// process environment.
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// writeFile writes a config file into a temp dir and returns its path.
func writeFile(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "aurora.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// flagSet declares the flags serve declares and parses args, as cobra would.
func flagSet(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.StringSlice("roles", nil, "")
	fs.String("http-addr", "", "")
	fs.String("log-level", "", "")
	fs.String("data-dir", "", "")
	fs.String("redis-url", "", "")
	fs.String("mongo-url", "", "")
	fs.String("unrelated", "", "a flag that maps to no key")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func mustLoad(t *testing.T, file string, flags *pflag.FlagSet, getenv func(string) string) *Config {
	t.Helper()
	c, err := load(file, flags, registryRoles, getenv)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	def := Default(registryRoles...)
	if err := def.Validate(registryRoles); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	c := mustLoad(t, "", nil, env())
	if !reflect.DeepEqual(*c, def) {
		t.Fatalf("load with nothing set differs from Default():\n got %+v\nwant %+v", *c, def)
	}
	// The values AuroraChat users rely on, spelled out so a changed default
	// is a deliberate decision.
	checks := []struct {
		key  string
		got  any
		want any
	}{
		{"roles", c.Roles, []string{"auth", "chat", "ingest"}},
		{"http.addr", c.HTTP.Addr, ":8080"},
		{"data_dir", c.DataDir, "./data"},
		{"redis.url", c.Redis.URL, ""},
		{"mongo.url", c.Mongo.URL, ""},
		{"auth.jwt_secret", c.Auth.JWTSecret, ""},
		{"auth.insecure_short_secret", c.Auth.InsecureShortSecret, false},
		{"http.readyz_details", c.HTTP.ReadyzDetails, false},
		{"auth.token_ttl", c.Auth.TokenTTL, 24 * time.Hour},
		{"auth.bcrypt_cost", c.Auth.BcryptCost, 10},
		{"chat.room_rate", c.Chat.RoomRate, 3},
		{"chat.ping_interval", c.Chat.PingInterval, 30 * time.Second},
		{"ingest.batch_size", c.Ingest.BatchSize, 50},
		{"http.drain_timeout", c.HTTP.DrainTimeout, 25 * time.Second},
		{"http.read_timeout", c.HTTP.ReadTimeout, 30 * time.Second},
		{"http.idle_timeout", c.HTTP.IdleTimeout, 120 * time.Second},
		{"http.write_timeout", c.HTTP.WriteTimeout, 60 * time.Second},
		{"http.max_conns_per_ip", c.HTTP.MaxConnsPerIP, 256},
		{"http.upgrade_rate_per_ip", c.HTTP.UpgradeRatePerIP, 20.0},
		{"http.upgrade_burst_per_ip", c.HTTP.UpgradeBurstPerIP, 100},
		{"auth.register_per_ip", c.Auth.RegisterPerIP, 10},
		{"auth.login_per_ip", c.Auth.LoginPerIP, 30},
		{"auth.ip_window", c.Auth.IPWindow, time.Minute},
		{"auth.bcrypt_concurrency", c.Auth.BcryptConcurrency, 0},
		{"auth.bcrypt_wait", c.Auth.BcryptWait, 2 * time.Second},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("default %s = %v, want %v", ck.key, ck.got, ck.want)
		}
	}
	// Default must hand out a fresh roles slice each time.
	a := Default(registryRoles...)
	a.Roles[0] = "changed"
	if Default(registryRoles...).Roles[0] != "auth" {
		t.Error("Default() shares its roles slice between calls")
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, `
http:
  addr: "127.0.0.1:1001"
  drain_timeout: 3s
log:
  level: debug
chat:
  room_rate: 7
  user_rate: 8
ingest:
  batch_size: 20
`)
	getenv := env(
		"AURORA_CHAT_ROOM_RATE", "11", // env beats file
		"AURORA_HTTP_ADDR", "127.0.0.1:2002", // flag beats env
		"AURORA_LOG_LEVEL", "warn", // env beats file, no flag given
		"AURORA_INGEST_FLUSH_INTERVAL", "250ms",
	)
	c := mustLoad(t, file, flagSet(t, "--http-addr", "127.0.0.1:3003", "--roles", "chat,ingest"), getenv)

	cases := []struct {
		key  string
		got  any
		want any
	}{
		{"http.addr (flag > env > file)", c.HTTP.Addr, "127.0.0.1:3003"},
		{"chat.room_rate (env > file)", c.Chat.RoomRate, 11},
		{"log.level (env > file)", c.Log.Level, "warn"},
		{"chat.user_rate (file > default)", c.Chat.UserRate, 8},
		{"ingest.batch_size (file > default)", c.Ingest.BatchSize, 20},
		{"http.drain_timeout (file duration)", c.HTTP.DrainTimeout, 3 * time.Second},
		{"ingest.flush_interval (env duration)", c.Ingest.FlushInterval, 250 * time.Millisecond},
		{"roles (flag slice)", c.Roles, []string{"chat", "ingest"}},
		{"chat.max_text_length (default)", c.Chat.MaxTextLength, 4000},
	}
	for _, tc := range cases {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.key, tc.got, tc.want)
		}
	}
}

func TestFlagsOnlyWhenSet(t *testing.T) {
	// Declared but unset flags must not override the env or the file with
	// their zero values.
	file := writeFile(t, "data_dir: /from/file\n")
	c := mustLoad(t, file, flagSet(t, "--unrelated", "x"), env("AURORA_REDIS_URL", "redis://env:6379"))
	if c.DataDir != "/from/file" {
		t.Errorf("data_dir = %q, want the file's", c.DataDir)
	}
	if c.Redis.URL != "redis://env:6379" {
		t.Errorf("redis.url = %q, want the env's", c.Redis.URL)
	}
	if !reflect.DeepEqual(c.Roles, registryRoles) {
		t.Errorf("roles = %v, want the default", c.Roles)
	}

	c = mustLoad(t, file, flagSet(t, "--data-dir", "/from/flag", "--redis-url", "redis://flag:1",
		"--mongo-url", "mongodb://flag/db", "--log-level", "error"), env("AURORA_REDIS_URL", "redis://env:6379"))
	if c.DataDir != "/from/flag" || c.Redis.URL != "redis://flag:1" || c.Mongo.URL != "mongodb://flag/db" || c.Log.Level != "error" {
		t.Errorf("flags not applied: %+v", c)
	}
}

func TestEnvLists(t *testing.T) {
	c := mustLoad(t, "", nil, env(
		"AURORA_ROLES", "auth,ingest",
		"AURORA_HTTP_CORS_ORIGINS", "https://a.example,https://b.example",
	))
	if !reflect.DeepEqual(c.Roles, []string{"auth", "ingest"}) {
		t.Errorf("roles = %q", c.Roles)
	}
	if !reflect.DeepEqual(c.HTTP.CORSOrigins, []string{"https://a.example", "https://b.example"}) {
		t.Errorf("cors_origins = %q", c.HTTP.CORSOrigins)
	}
	// A list from the file works the same.
	c = mustLoad(t, writeFile(t, "roles: [chat]\nhttp:\n  cors_origins: [\"*\"]\n"), nil, env())
	if !reflect.DeepEqual(c.Roles, []string{"chat"}) || !reflect.DeepEqual(c.HTTP.CORSOrigins, []string{"*"}) {
		t.Errorf("file lists: roles %q cors %q", c.Roles, c.HTTP.CORSOrigins)
	}

	// The migration example of docs/migrations.md, both ways.
	c = mustLoad(t, "", nil, env(
		"AURORA_HTTP_CORS_ORIGINS", "http://localhost:8000,null",
		"AURORA_CHAT_ROOMS_ALLOWED", "general",
	))
	if !reflect.DeepEqual(c.HTTP.CORSOrigins, []string{"http://localhost:8000", "null"}) ||
		!reflect.DeepEqual(c.Chat.RoomsAllowed, []string{"general"}) {
		t.Errorf("env: cors %q rooms %q", c.HTTP.CORSOrigins, c.Chat.RoomsAllowed)
	}
	c = mustLoad(t, writeFile(t, "http:\n  cors_origins: [\"http://localhost:8000\", \"null\"]\nchat:\n  rooms_allowed: [general]\n"), nil, env())
	if !reflect.DeepEqual(c.HTTP.CORSOrigins, []string{"http://localhost:8000", "null"}) ||
		!reflect.DeepEqual(c.Chat.RoomsAllowed, []string{"general"}) {
		t.Errorf("file: cors %q rooms %q", c.HTTP.CORSOrigins, c.Chat.RoomsAllowed)
	}
	// No rooms_allowed means every room.
	if c := mustLoad(t, "", nil, env()); len(c.Chat.RoomsAllowed) != 0 {
		t.Errorf("default rooms_allowed = %q", c.Chat.RoomsAllowed)
	}
}

// Secrets of the minimum length or more, as every configured secret must be.
const (
	legacySecret = "legacy-secret-0123456789abcdef0123"
	newSecret    = "new-secret-0123456789abcdef0123456"
)

func TestAuroraChatEnv(t *testing.T) {
	cases := []struct {
		name   string
		getenv func(string) string
		flags  []string
		check  func(c *Config) (got, want string)
	}{
		{"PORT", env("PORT", "4000"), nil,
			func(c *Config) (string, string) { return c.HTTP.Addr, ":4000" }},
		{"AURORA_HTTP_ADDR beats PORT", env("PORT", "4000", "AURORA_HTTP_ADDR", "127.0.0.1:5000"), nil,
			func(c *Config) (string, string) { return c.HTTP.Addr, "127.0.0.1:5000" }},
		{"flag beats PORT", env("PORT", "4000"), []string{"--http-addr", "127.0.0.1:6000"},
			func(c *Config) (string, string) { return c.HTTP.Addr, "127.0.0.1:6000" }},
		{"JWT_SECRET", env("JWT_SECRET", legacySecret), nil,
			func(c *Config) (string, string) { return c.Auth.JWTSecret, legacySecret }},
		{"AURORA_AUTH_JWT_SECRET beats JWT_SECRET", env("JWT_SECRET", legacySecret, "AURORA_AUTH_JWT_SECRET", newSecret), nil,
			func(c *Config) (string, string) { return c.Auth.JWTSecret, newSecret }},
		{"REDIS_HOST with default port", env("REDIS_HOST", "redis.svc"), nil,
			func(c *Config) (string, string) { return c.Redis.URL, "redis://redis.svc:6379" }},
		{"REDIS_HOST and REDIS_PORT", env("REDIS_HOST", "redis.svc", "REDIS_PORT", "6380"), nil,
			func(c *Config) (string, string) { return c.Redis.URL, "redis://redis.svc:6380" }},
		{"REDIS_HOST IPv6", env("REDIS_HOST", "::1", "REDIS_PORT", "6380"), nil,
			func(c *Config) (string, string) { return c.Redis.URL, "redis://[::1]:6380" }},
		{"REDIS_PORT alone is ignored", env("REDIS_PORT", "6380"), nil,
			func(c *Config) (string, string) { return c.Redis.URL, "" }},
		{"AURORA_REDIS_URL beats REDIS_HOST", env("REDIS_HOST", "redis.svc", "AURORA_REDIS_URL", "redis://other:1"), nil,
			func(c *Config) (string, string) { return c.Redis.URL, "redis://other:1" }},
		{"MONGO_URL", env("MONGO_URL", "mongodb://mongo:27017/aurorachat"), nil,
			func(c *Config) (string, string) { return c.Mongo.URL, "mongodb://mongo:27017/aurorachat" }},
		{"AURORA_MONGO_URL beats MONGO_URL", env("MONGO_URL", "mongodb://legacy/x", "AURORA_MONGO_URL", "mongodb://new/y"), nil,
			func(c *Config) (string, string) { return c.Mongo.URL, "mongodb://new/y" }},
		{"flag beats MONGO_URL", env("MONGO_URL", "mongodb://legacy/x"), []string{"--mongo-url", "mongodb://flag/z"},
			func(c *Config) (string, string) { return c.Mongo.URL, "mongodb://flag/z" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var fs *pflag.FlagSet
			if tc.flags != nil {
				fs = flagSet(t, tc.flags...)
			}
			c := mustLoad(t, "", fs, tc.getenv)
			if got, want := tc.check(c); got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}

	// Legacy variables rank above the file (they are environment).
	c := mustLoad(t, writeFile(t, "http:\n  addr: \":7000\"\n"), nil, env("PORT", "4000"))
	if c.HTTP.Addr != ":4000" {
		t.Errorf("PORT should beat the file: addr = %q", c.HTTP.Addr)
	}

	_, err := load("", nil, registryRoles, env("PORT", "eighty"))
	if err == nil || !strings.Contains(err.Error(), "PORT") {
		t.Errorf("bad PORT: err = %v, want one naming PORT", err)
	}
}

func TestMongoDatabase(t *testing.T) {
	cases := []struct {
		url, db, want string
	}{
		{"", "", "aurorachat"},
		{"mongodb://mongo:27017", "", "aurorachat"},
		{"mongodb://mongo:27017/", "", "aurorachat"},
		{"mongodb://mongo:27017/chatdb", "", "chatdb"},
		{"mongodb://u:p@mongo:27017/chatdb?authSource=admin", "", "chatdb"},
		{"mongodb+srv://cluster.example/prod", "", "prod"},
		{"mongodb://mongo:27017/chatdb", "explicit", "explicit"},
	}
	for _, tc := range cases {
		c := Default(registryRoles...)
		c.Mongo.URL, c.Mongo.Database = tc.url, tc.db
		if got := c.MongoDatabase(); got != tc.want {
			t.Errorf("MongoDatabase(url %q, database %q) = %q, want %q", tc.url, tc.db, got, tc.want)
		}
	}
	// Through the environment, as AuroraChat deployments set it.
	c := mustLoad(t, "", nil, env("MONGO_URL", "mongodb://mongo:27017/legacydb"))
	if got := c.MongoDatabase(); got != "legacydb" {
		t.Errorf("MongoDatabase from MONGO_URL = %q", got)
	}
}

func TestFileErrors(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "colour: blue\n", "colour"},
		{"unknown nested key", "chat:\n  room_rte: 3\n", "room_rte"},
		{"wrong type", "chat:\n  room_rate: lots\n", "chat.room_rate"},
		{"bad duration", "ingest:\n  claim_idle: soon\n", "ingest.claim_idle"},
		{"invalid value", "ingest:\n  batch_size: 5000\n", "ingest.batch_size"},
		{"not yaml", "chat: [\n", "read config file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(writeFile(t, tc.yaml), nil, registryRoles, env())
			if err == nil {
				t.Fatal("load succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}

	missing := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(missing, nil, registryRoles)
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing file: err = %v, want one naming %s", err, missing)
	}
}

func TestExampleFileMatchesDefaults(t *testing.T) {
	// aurora.example.yaml documents the defaults: it must load cleanly (no
	// unknown keys) and change nothing.
	c := mustLoad(t, "aurora.example.yaml", nil, env())
	def := Default(registryRoles...)
	// "cors_origins: []" decodes to an empty slice, the default is nil:
	// the same configuration.
	if len(c.HTTP.CORSOrigins) == 0 && len(def.HTTP.CORSOrigins) == 0 {
		c.HTTP.CORSOrigins = def.HTTP.CORSOrigins
	}
	if len(c.HTTP.TrustedProxies) == 0 && len(def.HTTP.TrustedProxies) == 0 {
		c.HTTP.TrustedProxies = def.HTTP.TrustedProxies
	}
	if len(c.Chat.RoomsAllowed) == 0 && len(def.Chat.RoomsAllowed) == 0 {
		c.Chat.RoomsAllowed = def.Chat.RoomsAllowed
	}
	if len(c.HTTP.TLS.ACME.Domains) == 0 && len(def.HTTP.TLS.ACME.Domains) == 0 {
		c.HTTP.TLS.ACME.Domains = def.HTTP.TLS.ACME.Domains
	}
	if !reflect.DeepEqual(*c, def) {
		t.Fatalf("aurora.example.yaml differs from Default():\n got %+v\nwant %+v", *c, def)
	}
}

func TestInvalidValues(t *testing.T) {
	cases := []struct {
		env, value, key string
	}{
		{"AURORA_ROLES", "auth,bogus", "roles"},
		{"AURORA_HTTP_ADDR", "8080", "http.addr"},
		{"AURORA_HTTP_DRAIN_TIMEOUT", "0s", "http.drain_timeout"},
		{"AURORA_HTTP_SHUTDOWN_DELAY", "-1s", "http.shutdown_delay"},
		{"AURORA_LOG_LEVEL", "loud", "log.level"},
		{"AURORA_LOG_FORMAT", "xml", "log.format"},
		{"AURORA_REDIS_URL", "http://redis:6379", "redis.url"},
		{"AURORA_MONGO_URL", "postgres://db", "mongo.url"},
		{"AURORA_AUTH_INSECURE_SHORT_SECRET", "maybe", "auth.insecure_short_secret"},
		{"AURORA_HTTP_READYZ_DETAILS", "sometimes", "http.readyz_details"},
		{"AURORA_AUTH_TOKEN_TTL", "30s", "auth.token_ttl"},
		{"AURORA_AUTH_BCRYPT_COST", "3", "auth.bcrypt_cost"},
		{"AURORA_AUTH_BCRYPT_COST", "32", "auth.bcrypt_cost"},
		{"AURORA_AUTH_LOGIN_MAX_FAILURES", "0", "auth.login_max_failures"},
		{"AURORA_AUTH_LOGIN_WINDOW", "500ms", "auth.login_window"},
		{"AURORA_CHAT_MAX_TEXT_LENGTH", "0", "chat.max_text_length"},
		{"AURORA_CHAT_ROOM_RATE", "0", "chat.room_rate"},
		{"AURORA_CHAT_ROOM_RATE", "abc", "chat.room_rate"},
		{"AURORA_CHAT_USER_RATE", "-1", "chat.user_rate"},
		{"AURORA_CHAT_MAX_CONNS_PER_USER", "0", "chat.max_conns_per_user"},
		{"AURORA_CHAT_MAX_ROOMS_PER_CONN", "0", "chat.max_rooms_per_conn"},
		{"AURORA_CHAT_PING_INTERVAL", "0s", "chat.ping_interval"},
		{"AURORA_CHAT_PING_INTERVAL", "fast", "chat.ping_interval"},
		{"AURORA_CHAT_SEND_QUEUE", "0", "chat.send_queue"},
		{"AURORA_CHAT_SLOW_TIMEOUT", "-5s", "chat.slow_timeout"},
		{"AURORA_CHAT_PRESENCE_INTERVAL", "0s", "chat.presence_interval"},
		{"AURORA_CHAT_PRESENCE_MAX_MEMBERS", "0", "chat.presence_max_members"},
		{"AURORA_CHAT_DEDUPE_WINDOW", "1m", "chat.dedupe_window"},
		{"AURORA_INGEST_BATCH_SIZE", "0", "ingest.batch_size"},
		{"AURORA_INGEST_BATCH_SIZE", "1001", "ingest.batch_size"},
		{"AURORA_INGEST_FLUSH_INTERVAL", "0s", "ingest.flush_interval"},
		{"AURORA_INGEST_CLAIM_IDLE", "0s", "ingest.claim_idle"},
		{"AURORA_INGEST_MAX_DELIVERIES", "0", "ingest.max_deliveries"},
		{"AURORA_INGEST_KEEP_RECENT", "0", "ingest.keep_recent"},
		{"AURORA_BUS_SHARDS", "0", "bus.shards"},
		{"AURORA_BUS_SHARDS", "65", "bus.shards"},
		{"AURORA_HTTP_CORS_ORIGINS", "localhost:8000", "http.cors_origins"},
		{"AURORA_HTTP_CORS_ORIGINS", "http://localhost:8000/index.html", "http.cors_origins"},
		{"AURORA_HTTP_CORS_ORIGINS", "https://app.example?x=1", "http.cors_origins"},
		{"AURORA_HTTP_CORS_ORIGINS", "https://user@app.example", "http.cors_origins"},
		{"AURORA_HTTP_CORS_ORIGINS", "https://*.example.com", "http.cors_origins"},
		{"AURORA_HTTP_CORS_ORIGINS", "*.example.com", "http.cors_origins"},
		{"AURORA_HTTP_CORS_ORIGINS", "NULL", "http.cors_origins"},
		{"AURORA_HTTP_CORS_ORIGINS", "https://ok.example,file://", "http.cors_origins"},
		{"AURORA_CHAT_ROOMS_ALLOWED", "general,Dev", "chat.rooms_allowed"},
		{"AURORA_CHAT_ROOMS_ALLOWED", "dev", "chat.rooms_allowed"}, // without general
		{"AURORA_HTTP_READ_TIMEOUT", "0s", "http.read_timeout"},
		{"AURORA_HTTP_IDLE_TIMEOUT", "10ms", "http.idle_timeout"},
		{"AURORA_HTTP_WRITE_TIMEOUT", "-1s", "http.write_timeout"},
		{"AURORA_HTTP_MAX_CONNS_PER_IP", "-1", "http.max_conns_per_ip"},
		{"AURORA_HTTP_UPGRADE_RATE_PER_IP", "-1", "http.upgrade_rate_per_ip"},
		{"AURORA_HTTP_UPGRADE_BURST_PER_IP", "0", "http.upgrade_burst_per_ip"},
		{"AURORA_HTTP_TRUSTED_PROXIES", "10.0.0.0/8,proxy.local", "http.trusted_proxies"},
		{"AURORA_HTTP_TRUSTED_PROXIES", "10.0.0.0/33", "http.trusted_proxies"},
		{"AURORA_AUTH_REGISTER_PER_IP", "0", "auth.register_per_ip"},
		{"AURORA_AUTH_LOGIN_PER_IP", "0", "auth.login_per_ip"},
		{"AURORA_AUTH_IP_WINDOW", "100ms", "auth.ip_window"},
		{"AURORA_AUTH_BCRYPT_CONCURRENCY", "-1", "auth.bcrypt_concurrency"},
		{"AURORA_AUTH_BCRYPT_WAIT", "0s", "auth.bcrypt_wait"},
	}
	for _, tc := range cases {
		t.Run(tc.env+"="+tc.value, func(t *testing.T) {
			_, err := load("", nil, registryRoles, env(tc.env, tc.value))
			if err == nil {
				t.Fatal("load succeeded")
			}
			if !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("error %q does not name key %s", err, tc.key)
			}
		})
	}

	// Values set directly on the struct are checked the same way.
	c := Default(registryRoles...)
	c.DataDir = ""
	if err := c.Validate(registryRoles); err == nil || !strings.Contains(err.Error(), "data_dir") {
		t.Errorf("empty data_dir: %v", err)
	}
	c = Default(registryRoles...)
	c.Roles = nil
	err := c.Validate(registryRoles)
	if err == nil || !strings.Contains(err.Error(), "roles") || !strings.Contains(err.Error(), "auth, chat, ingest") {
		t.Errorf("no roles: %v (want the key and the valid roles)", err)
	}
	// Every bad key is reported, not just the first.
	c = Default(registryRoles...)
	c.Chat.RoomRate, c.Ingest.BatchSize = 0, 0
	err = c.Validate(registryRoles)
	if err == nil || !strings.Contains(err.Error(), "chat.room_rate") || !strings.Contains(err.Error(), "ingest.batch_size") {
		t.Errorf("two bad keys: %v", err)
	}
}

func TestValidEdgeValues(t *testing.T) {
	// Accepted forms that must not be rejected.
	for _, tc := range []struct{ env, value string }{
		{"AURORA_REDIS_URL", "rediss://:pw@redis:6380/1"},
		{"AURORA_REDIS_URL", "unix:///run/redis.sock"},
		{"AURORA_MONGO_URL", "mongodb+srv://cluster.example/db"},
		{"AURORA_LOG_LEVEL", "WARNING"},
		{"AURORA_HTTP_ADDR", "[::1]:0"},
		{"AURORA_AUTH_BCRYPT_COST", "4"},
		{"AURORA_INGEST_BATCH_SIZE", "1000"},
		{"AURORA_CHAT_DEDUPE_WINDOW", "10m"},
		{"AURORA_HTTP_CORS_ORIGINS", "null"},
		{"AURORA_HTTP_CORS_ORIGINS", "*,null"},
		{"AURORA_HTTP_CORS_ORIGINS", "http://localhost:8000,null"},
		{"AURORA_HTTP_CORS_ORIGINS", "https://app.example/"},
		{"AURORA_HTTP_CORS_ORIGINS", "http://[::1]:8000"},
		{"AURORA_HTTP_CORS_ORIGINS", "chrome-extension://abcdef"},
		{"AURORA_CHAT_ROOMS_ALLOWED", "general"},
		{"AURORA_HTTP_READYZ_DETAILS", "true"},
	} {
		if _, err := load("", nil, registryRoles, env(tc.env, tc.value)); err != nil {
			t.Errorf("%s=%s rejected: %v", tc.env, tc.value, err)
		}
	}
}

func TestJWTSecretLength(t *testing.T) {
	short := strings.Repeat("s", MinSecretLength-1)
	// Refused below 32 bytes, from every source, with an error that names
	// the key, the length, how to generate one and the flag.
	for _, tc := range []struct {
		name   string
		file   string
		getenv func(string) string
		n      int
	}{
		{"AURORA_AUTH_JWT_SECRET", "", env("AURORA_AUTH_JWT_SECRET", "abc"), 3},
		{"AuroraChat's JWT_SECRET=dev-secret", "", env("JWT_SECRET", "dev-secret"), 10},
		{"AuroraChat's .env example", "", env("JWT_SECRET", "dev-secret-change-in-production"), 31},
		{"one byte short", "", env("AURORA_AUTH_JWT_SECRET", short), MinSecretLength - 1},
		{"file", writeFile(t, "auth:\n  jwt_secret: hunter2\n"), env(), 7},
		{"flag false", "", env("AURORA_AUTH_JWT_SECRET", "abc", "AURORA_AUTH_INSECURE_SHORT_SECRET", "false"), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(tc.file, nil, registryRoles, tc.getenv)
			if err == nil {
				t.Fatal("a short secret was accepted")
			}
			for _, want := range []string{"config key auth.jwt_secret", fmt.Sprintf("is %d bytes", tc.n), "at least 32",
				"openssl rand -hex 32", "auth.insecure_short_secret: true", "AURORA_AUTH_INSECURE_SHORT_SECRET=true"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}

	// Accepted: 32 bytes or more, empty (generated), or short with the flag
	// from the environment or the file.
	for _, tc := range []struct {
		name   string
		file   string
		getenv func(string) string
		want   string
	}{
		{"32 bytes", "", env("AURORA_AUTH_JWT_SECRET", short+"s"), short + "s"},
		{"empty", "", env(), ""},
		{"flag in env", "", env("JWT_SECRET", "dev-secret", "AURORA_AUTH_INSECURE_SHORT_SECRET", "true"), "dev-secret"},
		{"flag in file", writeFile(t, "auth:\n  jwt_secret: dev-secret\n  insecure_short_secret: true\n"), env(), "dev-secret"},
	} {
		c, err := load(tc.file, nil, registryRoles, tc.getenv)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if c.Auth.JWTSecret != tc.want {
			t.Errorf("%s: jwt_secret %q, want %q", tc.name, c.Auth.JWTSecret, tc.want)
		}
	}
}

func TestBoolKeys(t *testing.T) {
	c := mustLoad(t, "", nil, env("AURORA_HTTP_READYZ_DETAILS", "true", "AURORA_AUTH_INSECURE_SHORT_SECRET", "1"))
	if !c.HTTP.ReadyzDetails || !c.Auth.InsecureShortSecret {
		t.Errorf("env: readyz_details %v, insecure_short_secret %v; want both true", c.HTTP.ReadyzDetails, c.Auth.InsecureShortSecret)
	}
	c = mustLoad(t, writeFile(t, "http:\n  readyz_details: true\n"), nil, env())
	if !c.HTTP.ReadyzDetails {
		t.Error("file: readyz_details false, want true")
	}
}

func TestMasked(t *testing.T) {
	c := Default(registryRoles...)
	c.Auth.JWTSecret = "s3cret-signing-key"
	c.Redis.URL = "redis://:redispw@redis:6379/0"
	c.Mongo.URL = "mongodb://admin:mongopw@mongo:27017/aurorachat?authSource=admin"
	m := c.Masked()

	if m.Auth.JWTSecret == c.Auth.JWTSecret || m.Auth.JWTSecret == "" {
		t.Errorf("jwt_secret not masked: %q", m.Auth.JWTSecret)
	}
	for _, u := range []string{m.Redis.URL, m.Mongo.URL} {
		if strings.Contains(u, "redispw") || strings.Contains(u, "mongopw") {
			t.Errorf("password visible in %q", u)
		}
	}
	if !strings.Contains(m.Redis.URL, "redis:6379/0") {
		t.Errorf("masked redis url lost its host: %q", m.Redis.URL)
	}
	if !strings.Contains(m.Mongo.URL, "admin:") || !strings.Contains(m.Mongo.URL, "mongo:27017/aurorachat") ||
		!strings.Contains(m.Mongo.URL, "authSource=admin") {
		t.Errorf("masked mongo url lost its user, host or options: %q", m.Mongo.URL)
	}
	// The original is untouched.
	if c.Auth.JWTSecret != "s3cret-signing-key" || !strings.Contains(c.Redis.URL, "redispw") {
		t.Error("Masked changed the original")
	}

	// Nothing to hide: values stay as they are (an empty secret stays
	// empty, so "not set" remains visible).
	plain := Default(registryRoles...)
	plain.Redis.URL = "redis://redis:6379"
	pm := plain.Masked()
	if pm.Auth.JWTSecret != "" || pm.Redis.URL != "redis://redis:6379" || pm.Mongo.URL != "" {
		t.Errorf("masked a config without secrets: %+v", pm)
	}

	// Map (what `config print` prints) carries the masked values and
	// durations as text.
	mm := m.Map()
	auth := mm["auth"].(map[string]any)
	if auth["jwt_secret"] != m.Auth.JWTSecret || auth["token_ttl"] != "24h0m0s" {
		t.Errorf("Map auth = %v", auth)
	}
	if mm["data_dir"] != "./data" {
		t.Errorf("Map data_dir = %v", mm["data_dir"])
	}
	if mm["chat"].(map[string]any)["room_rate"] != 3 {
		t.Errorf("Map chat.room_rate = %v", mm["chat"].(map[string]any)["room_rate"])
	}
}

func TestHelpers(t *testing.T) {
	c := Default(registryRoles...)
	c.Roles = []string{"chat"}
	if !c.HasRole("chat") || c.HasRole("auth") {
		t.Errorf("HasRole wrong for %v", c.Roles)
	}
	c.DataDir = filepath.Join("var", "aurora")
	if got, want := c.SQLitePath(), filepath.Join("var", "aurora", "aurora.db"); got != want {
		t.Errorf("SQLitePath = %q, want %q", got, want)
	}
}

// keys flattens Map() into dotted keys.
func keys(prefix string, m map[string]any, out *[]string) {
	for k, v := range m {
		if prefix != "" {
			k = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok {
			keys(k, sub, out)
			continue
		}
		*out = append(*out, k)
	}
}

func TestConfigurationDocListsEveryKey(t *testing.T) {
	// docs/configuration.md is the reference operators read: a key added
	// to Config must be documented there, with its environment variable,
	// and shown in the example file.
	doc, err := os.ReadFile(filepath.Join("..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("aurora.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	keys("", Default(registryRoles...).Map(), &all)
	if len(all) < 30 {
		t.Fatalf("only %d keys found: %q", len(all), all)
	}
	for _, k := range all {
		envName := "AURORA_" + strings.ToUpper(strings.ReplaceAll(k, ".", "_"))
		if !strings.Contains(string(doc), "| `"+k+"` |") || !strings.Contains(string(doc), "`"+envName+"`") {
			t.Errorf("docs/configuration.md lacks a row for %s (%s)", k, envName)
		}
		leaf := k[strings.LastIndex(k, ".")+1:]
		if !strings.Contains(string(example), leaf+":") {
			t.Errorf("aurora.example.yaml does not show %s", k)
		}
	}
	for flag, key := range FlagKeys {
		if !strings.Contains(string(doc), "`--"+flag+"`") {
			t.Errorf("docs/configuration.md does not mention --%s (%s)", flag, key)
		}
	}
}

// TestAckReplicas: chat.ack_replicas needs a Redis that can have replicas
// (the embedded one has none, so nothing could ever be acked) and a WAIT
// timeout WAIT can express (0 would be "forever").
func TestAckReplicas(t *testing.T) {
	const redis = "redis://127.0.0.1:6379"
	c := mustLoad(t, "", nil, env("AURORA_CHAT_ACK_REPLICAS", "1", "AURORA_REDIS_URL", redis, "AURORA_CHAT_ACK_TIMEOUT", "250ms"))
	if c.Chat.AckReplicas != 1 || c.Chat.AckTimeout != 250*time.Millisecond {
		t.Errorf("ack_replicas %d ack_timeout %s, want 1 and 250ms", c.Chat.AckReplicas, c.Chat.AckTimeout)
	}
	// Off, the timeout is not checked (it is never used).
	mustLoad(t, "", nil, env("AURORA_CHAT_ACK_TIMEOUT", "0s"))

	for _, tc := range []struct {
		name string
		kv   []string
		key  string
		say  string
	}{
		{"embedded redis", []string{"AURORA_CHAT_ACK_REPLICAS", "1"}, "chat.ack_replicas", "embedded Redis"},
		{"negative", []string{"AURORA_CHAT_ACK_REPLICAS", "-1", "AURORA_REDIS_URL", redis}, "chat.ack_replicas", "negative"},
		{"zero timeout", []string{"AURORA_CHAT_ACK_REPLICAS", "1", "AURORA_REDIS_URL", redis, "AURORA_CHAT_ACK_TIMEOUT", "0s"},
			"chat.ack_timeout", "1ms"},
		{"sub-millisecond timeout", []string{"AURORA_CHAT_ACK_REPLICAS", "2", "AURORA_REDIS_URL", redis, "AURORA_CHAT_ACK_TIMEOUT", "500us"},
			"chat.ack_timeout", "1ms"},
		{"long timeout", []string{"AURORA_CHAT_ACK_REPLICAS", "1", "AURORA_REDIS_URL", redis, "AURORA_CHAT_ACK_TIMEOUT", "11s"},
			"chat.ack_timeout", "10s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load("", nil, registryRoles, env(tc.kv...))
			if err == nil {
				t.Fatal("load succeeded")
			}
			if !strings.Contains(err.Error(), "config key "+tc.key) || !strings.Contains(err.Error(), tc.say) {
				t.Fatalf("error %q does not name %s and say %q", err, tc.key, tc.say)
			}
		})
	}
}

// TestTLSValidation: one certificate source, complete, with what the
// chosen source needs; each refusal names the key to fix.
func TestTLSValidation(t *testing.T) {
	cases := []struct {
		name string
		kv   []string
		key  string // "" when the configuration is valid
	}{
		{"cert without key", []string{"AURORA_HTTP_TLS_CERT_FILE", "/etc/aurora/cert.pem"}, "http.tls.key_file"},
		{"key without cert", []string{"AURORA_HTTP_TLS_KEY_FILE", "/etc/aurora/key.pem"}, "http.tls.cert_file"},
		{"cert and key", []string{"AURORA_HTTP_TLS_CERT_FILE", "c.pem", "AURORA_HTTP_TLS_KEY_FILE", "k.pem"}, ""},
		{"files and ACME", []string{"AURORA_HTTP_TLS_CERT_FILE", "c.pem", "AURORA_HTTP_TLS_KEY_FILE", "k.pem",
			"AURORA_HTTP_TLS_ACME_DOMAINS", "chat.example.com"}, "http.tls.acme.domains"},
		{"ACME", []string{"AURORA_HTTP_TLS_ACME_DOMAINS", "chat.example.com,www.chat.example.com",
			"AURORA_HTTP_TLS_ACME_EMAIL", "ops@example.com"}, ""},
		{"ACME email without domains", []string{"AURORA_HTTP_TLS_ACME_EMAIL", "ops@example.com"}, "http.tls.acme.domains"},
		{"ACME cache dir without domains", []string{"AURORA_HTTP_TLS_ACME_CACHE_DIR", "/var/lib/aurora/acme"}, "http.tls.acme.domains"},
		{"ACME IP", []string{"AURORA_HTTP_TLS_ACME_DOMAINS", "192.0.2.1"}, "http.tls.acme.domains"},
		{"ACME wildcard", []string{"AURORA_HTTP_TLS_ACME_DOMAINS", "*.example.com"}, "http.tls.acme.domains"},
		{"ACME single label", []string{"AURORA_HTTP_TLS_ACME_DOMAINS", "localhost"}, "http.tls.acme.domains"},
		{"ACME with port", []string{"AURORA_HTTP_TLS_ACME_DOMAINS", "chat.example.com:443"}, "http.tls.acme.domains"},
		{"ACME bad email", []string{"AURORA_HTTP_TLS_ACME_DOMAINS", "chat.example.com", "AURORA_HTTP_TLS_ACME_EMAIL", "ops"}, "http.tls.acme.email"},
		{"ACME plain directory", []string{"AURORA_HTTP_TLS_ACME_DOMAINS", "chat.example.com",
			"AURORA_HTTP_TLS_ACME_DIRECTORY_URL", "http://acme.example.com/dir"}, "http.tls.acme.directory_url"},
		{"ACME plain loopback directory", []string{"AURORA_HTTP_TLS_ACME_DOMAINS", "chat.example.com",
			"AURORA_HTTP_TLS_ACME_DIRECTORY_URL", "http://127.0.0.1:14000/dir"}, "http.tls.acme.directory_url"},
		{"ACME private CA", []string{"AURORA_HTTP_TLS_ACME_DOMAINS", "chat.example.com",
			"AURORA_HTTP_TLS_ACME_DIRECTORY_URL", "https://127.0.0.1:14000/dir",
			"AURORA_HTTP_TLS_ACME_DIRECTORY_CA_FILE", "/etc/aurora/acme-ca.pem"}, ""},
		{"ACME CA file without domains", []string{"AURORA_HTTP_TLS_ACME_DIRECTORY_CA_FILE", "/etc/aurora/acme-ca.pem"}, "http.tls.acme.domains"},
		{"ACME directory not a URL", []string{"AURORA_HTTP_TLS_ACME_DOMAINS", "chat.example.com",
			"AURORA_HTTP_TLS_ACME_DIRECTORY_URL", "letsencrypt"}, "http.tls.acme.directory_url"},
		{"redirect without TLS", []string{"AURORA_HTTP_REDIRECT_ADDR", ":80"}, "http.redirect_addr"},
		{"redirect not host:port", []string{"AURORA_HTTP_TLS_ACME_DOMAINS", "chat.example.com", "AURORA_HTTP_REDIRECT_ADDR", "80"}, "http.redirect_addr"},
		{"redirect on the TLS address", []string{"AURORA_HTTP_TLS_ACME_DOMAINS", "chat.example.com",
			"AURORA_HTTP_ADDR", ":443", "AURORA_HTTP_REDIRECT_ADDR", ":443"}, "http.redirect_addr"},
		{"redirect with ACME", []string{"AURORA_HTTP_TLS_ACME_DOMAINS", "chat.example.com",
			"AURORA_HTTP_ADDR", ":443", "AURORA_HTTP_REDIRECT_ADDR", ":80"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load("", nil, registryRoles, env(tc.kv...))
			switch {
			case tc.key == "" && err != nil:
				t.Fatalf("valid configuration refused: %v", err)
			case tc.key == "" && !c.HTTP.TLS.Enabled():
				t.Fatal("valid TLS configuration: TLS not enabled")
			case tc.key != "" && err == nil:
				t.Fatal("load succeeded")
			case tc.key != "" && !strings.Contains(err.Error(), "config key "+tc.key+":"):
				t.Fatalf("error %q does not name key %s", err, tc.key)
			}
		})
	}

	def := Default(registryRoles...)
	if def.HTTP.TLS.Enabled() || def.HTTP.RedirectAddr != "" {
		t.Errorf("TLS or the redirect is on by default: %+v %q", def.HTTP.TLS, def.HTTP.RedirectAddr)
	}
	if def.HTTP.TLS.ACME.DirectoryURL != LetsEncryptURL {
		t.Errorf("default directory %q, want Let's Encrypt production", def.HTTP.TLS.ACME.DirectoryURL)
	}
	def.DataDir = "/var/lib/aurora"
	if got := def.ACMECacheDir(); got != filepath.Join("/var/lib/aurora", "acme") {
		t.Errorf("ACMECacheDir() = %q, want <data_dir>/acme", got)
	}
	def.HTTP.TLS.ACME.CacheDir = "/srv/acme"
	if got := def.ACMECacheDir(); got != "/srv/acme" {
		t.Errorf("ACMECacheDir() = %q with cache_dir set", got)
	}
}
