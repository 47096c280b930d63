// Package config holds Aurora's one typed configuration and loads it from, in
// rising priority: built-in defaults, a YAML config file, AURORA_* environment
// variables (plus AuroraChat's PORT, JWT_SECRET, REDIS_HOST, REDIS_PORT and
// MONGO_URL, so an existing deployment's environment works unchanged), and
// command-line flags.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/auroradev/aurora/app/bus"
)

// Config is the whole configuration of one aurora process. Every role reads
// the part it needs; the mapstructure tags are the keys of the config file and,
// upper-cased with dots as underscores and an AURORA_ prefix, of the environment.
type Config struct {
	// DataDir holds the embedded SQLite store and the generated JWT secret.
	DataDir string   `mapstructure:"data_dir"`
	Roles   []string `mapstructure:"roles"`
	HTTP    HTTP     `mapstructure:"http"`
	Log     Log      `mapstructure:"log"`
	Redis   Redis    `mapstructure:"redis"`
	Mongo   Mongo    `mapstructure:"mongo"`
	Auth    Auth     `mapstructure:"auth"`
	Chat    Chat     `mapstructure:"chat"`
	Ingest  Ingest   `mapstructure:"ingest"`
	Bus     Bus      `mapstructure:"bus"`
	// Attachments configures the files messages carry.
	Attachments Attachments `mapstructure:"attachments"`
}

// Attachments configures the storage and limits of uploaded files
// (docs/configuration.md, "Attachments").
type Attachments struct {
	// Dir is the local directory objects are kept in; empty:
	// <data_dir>/attachments. Ignored when S3URL is set.
	Dir string `mapstructure:"dir"`
	// S3URL, when set, keeps objects in an S3-compatible object store
	// instead (required with more than one chat replica unless Dir is
	// shared): s3://bucket[/prefix]?endpoint=host:port&region=r&secure=false&path_style=true.
	S3URL string `mapstructure:"s3_url"`
	// S3AccessKey and S3SecretKey are the store's keys; empty: the
	// environment's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
	S3AccessKey string `mapstructure:"s3_access_key"`
	S3SecretKey string `mapstructure:"s3_secret_key" secret:"true"`
	// MaxBytes bounds one file.
	MaxBytes int64 `mapstructure:"max_bytes"`
	// Types are the media types accepted, as sniffed from the content.
	Types []string `mapstructure:"types"`
	// UploadsPerMinute bounds one user's uploads (every attempt a member
	// makes, refused ones too) per minute across replicas; 0: no limit.
	UploadsPerMinute int `mapstructure:"uploads_per_minute"`
}

// MaxUploadsPerMinute bounds attachments.uploads_per_minute.
const MaxUploadsPerMinute = 100_000

// AttachmentsDir is where local attachments are kept.
func (c *Config) AttachmentsDir() string {
	if c.Attachments.Dir != "" {
		return c.Attachments.Dir
	}
	return filepath.Join(c.DataDir, "attachments")
}

// MaxAttachmentBytes bounds attachments.max_bytes: 1 GiB (a larger file is
// not a chat attachment, and the upload would outlive http.read_timeout).
const MaxAttachmentBytes = 1 << 30

// forbiddenAttachmentTypes may not be in attachments.types: a browser runs
// scripts in them.
var forbiddenAttachmentTypes = []string{"text/html", "image/svg+xml", "application/xhtml+xml", "text/xml", "application/xml",
	"text/javascript", "application/javascript"}

// validateAttachments checks the attachments section.
func (c *Config) validateAttachments(bad func(key string, format string, a ...any)) {
	a := c.Attachments
	if a.MaxBytes < 1 || a.MaxBytes > MaxAttachmentBytes {
		bad("attachments.max_bytes", "must be between 1 and %d", MaxAttachmentBytes)
	}
	if len(a.Types) == 0 {
		bad("attachments.types", "must list at least one media type")
	}
	if a.UploadsPerMinute < 0 || a.UploadsPerMinute > MaxUploadsPerMinute {
		bad("attachments.uploads_per_minute", "must be between 0 (no limit) and %d", MaxUploadsPerMinute)
	}
	for _, t := range a.Types {
		switch {
		case t != strings.ToLower(strings.TrimSpace(t)) || !strings.Contains(t, "/") || strings.ContainsAny(t, ";, "):
			bad("attachments.types", "%q is not a lower-case media type without parameters, like image/png", t)
		case slices.Contains(forbiddenAttachmentTypes, t):
			bad("attachments.types", "%s is not allowed: a browser runs scripts in it", t)
		}
	}
	if a.S3URL != "" {
		u, err := url.Parse(a.S3URL)
		switch {
		case err != nil || u.Scheme != "s3" || u.Host == "":
			bad("attachments.s3_url", "must be an s3:// URL like s3://bucket?endpoint=host:9000&region=us-east-1")
		case u.User != nil:
			bad("attachments.s3_url", "must not carry keys: set attachments.s3_access_key and s3_secret_key")
		}
		if (a.S3AccessKey == "") != (a.S3SecretKey == "") {
			bad("attachments.s3_secret_key", "attachments.s3_access_key and s3_secret_key are set together (or both left empty for AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
		}
	} else if a.S3AccessKey != "" || a.S3SecretKey != "" {
		bad("attachments.s3_url", "must be set with attachments.s3_access_key and s3_secret_key")
	}
}

// Bus configures what the roles share on Redis.
type Bus struct {
	// Shards is the number of message streams (bus.Shards): a room's
	// messages go to the stream of its shard. 1 is the one stream
	// chat:messages, AuroraChat's. Every process of a deployment must use
	// the same count: changing it moves rooms between streams.
	Shards int `mapstructure:"shards"`
}

// HTTP configures the one listener of the process.
type HTTP struct {
	Addr string `mapstructure:"addr"`
	// CORSOrigins lists browser origins allowed besides the server's own:
	// "scheme://host[:port]" entries, "*" for any http(s) origin, and
	// "null" (listed on its own, "*" does not cover it) for pages opened as
	// files, unsafe outside development. It also serves as the WebSocket
	// Origin allow-list.
	CORSOrigins []string `mapstructure:"cors_origins"`
	// DrainTimeout bounds a graceful stop: every module must be stopped by then.
	DrainTimeout time.Duration `mapstructure:"drain_timeout"`
	// ShutdownDelay is how long /readyz reports 503 before the drain starts,
	// so load balancers stop routing new connections here first.
	ShutdownDelay time.Duration `mapstructure:"shutdown_delay"`
	// ReadyzDetails shows each failing check's error in /readyz to every
	// client; otherwise only loopback clients see it, others "unavailable"
	// (the errors name internal hosts and addresses).
	ReadyzDetails bool `mapstructure:"readyz_details"`
	// ReadTimeout bounds reading one request, headers and body; IdleTimeout
	// how long a keep-alive connection may wait for its next request;
	// WriteTimeout writing one response. A WebSocket upgrade is exempt from
	// the read and write bounds once its headers are read.
	ReadTimeout  time.Duration `mapstructure:"read_timeout"`
	IdleTimeout  time.Duration `mapstructure:"idle_timeout"`
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// MaxConnsPerIP caps the open connections of one remote address
	// (0: no cap). Peers in TrustedProxies are not capped.
	MaxConnsPerIP int `mapstructure:"max_conns_per_ip"`
	// UpgradeRatePerIP and UpgradeBurstPerIP are the token bucket of
	// WebSocket handshakes per client address (rate 0: no limit).
	UpgradeRatePerIP  float64 `mapstructure:"upgrade_rate_per_ip"`
	UpgradeBurstPerIP int     `mapstructure:"upgrade_burst_per_ip"`
	// TrustedProxies lists the CIDRs of reverse proxies whose
	// X-Forwarded-For is believed: the client is the right-most address
	// in it that is not a trusted proxy.
	TrustedProxies []string `mapstructure:"trusted_proxies"`
	// TLS makes the listener serve HTTPS (and WSS) itself, from files or
	// from ACME; off when neither is set.
	TLS TLS `mapstructure:"tls"`
	// RedirectAddr, when set (":80"), is a second, plain HTTP listener that
	// answers every request with a 308 to the same path on HTTPS and, with
	// ACME, serves its http-01 challenges. Requires TLS.
	RedirectAddr string `mapstructure:"redirect_addr"`
}

// TLS is where the HTTPS certificate comes from: CertFile and KeyFile (PEM,
// the chain first), or ACME. Neither: plain HTTP.
type TLS struct {
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	ACME     ACME   `mapstructure:"acme"`
}

// ACME obtains and renews the certificate from an ACME CA (Let's Encrypt by
// default) for a single host: on when Domains is not empty.
type ACME struct {
	// Domains are the host names a certificate is obtained for; a TLS
	// handshake for any other name is refused.
	Domains []string `mapstructure:"domains"`
	// Email is the CA account's contact, for expiry and problem notices.
	Email string `mapstructure:"email"`
	// DirectoryURL is the CA's ACME directory (https://).
	DirectoryURL string `mapstructure:"directory_url"`
	// DirectoryCAFile, when set, holds the PEM roots trusted for the
	// directory's HTTPS instead of the system's: a private ACME CA's.
	DirectoryCAFile string `mapstructure:"directory_ca_file"`
	// CacheDir keeps the account key and certificates across restarts
	// (mode 0700); empty: <data_dir>/acme.
	CacheDir string `mapstructure:"cache_dir"`
}

// LetsEncryptURL is Let's Encrypt's production ACME directory, the default
// http.tls.acme.directory_url.
const LetsEncryptURL = "https://acme-v02.api.letsencrypt.org/directory"

// Enabled reports whether the listener serves TLS.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" || t.ACME.Enabled() }

// Enabled reports whether the certificate comes from ACME.
func (a ACME) Enabled() bool { return len(a.Domains) > 0 }

// Log configures slog.
type Log struct {
	Level  string `mapstructure:"level"`  // debug, info, warn, error
	Format string `mapstructure:"format"` // auto, json, text
}

// Redis points at the Redis server; empty URL means an embedded in-process
// Redis that keeps nothing across restarts.
type Redis struct {
	URL string `mapstructure:"url" secret:"url"`
}

// Mongo points at MongoDB; an empty URL means the embedded SQLite store.
type Mongo struct {
	URL string `mapstructure:"url" secret:"url"`
	// Database defaults to the URL's path, else "aurorachat" as in AuroraChat.
	Database string `mapstructure:"database"`
}

// Auth configures users, passwords and tokens.
type Auth struct {
	// JWTSecret signs tokens (HS256). Empty: a random secret is generated
	// once and kept in <data_dir>/jwt-secret.
	JWTSecret string `mapstructure:"jwt_secret" secret:"true"`
	// InsecureShortSecret accepts a JWTSecret shorter than MinSecretLength
	// (AuroraChat's dev-secret, say, during a migration), with a WARN.
	InsecureShortSecret bool          `mapstructure:"insecure_short_secret"`
	TokenTTL            time.Duration `mapstructure:"token_ttl"`
	BcryptCost          int           `mapstructure:"bcrypt_cost"`
	LoginMaxFailures    int           `mapstructure:"login_max_failures"`
	LoginWindow         time.Duration `mapstructure:"login_window"`
	// RegisterPerIP and LoginPerIP bound the registrations and login
	// attempts of one client address per IPWindow, across replicas.
	RegisterPerIP int           `mapstructure:"register_per_ip"`
	LoginPerIP    int           `mapstructure:"login_per_ip"`
	IPWindow      time.Duration `mapstructure:"ip_window"`
	// BcryptConcurrency bounds the bcrypt hashes and comparisons running
	// at once (0: GOMAXPROCS); a request that cannot start one within
	// BcryptWait is answered 503.
	BcryptConcurrency int           `mapstructure:"bcrypt_concurrency"`
	BcryptWait        time.Duration `mapstructure:"bcrypt_wait"`
}

// Chat configures the WebSocket gateway.
type Chat struct {
	MaxTextLength   int           `mapstructure:"max_text_length"`
	RoomRate        int           `mapstructure:"room_rate"` // messages per second per user per room
	UserRate        int           `mapstructure:"user_rate"` // messages per second per user, all rooms
	MaxConnsPerUser int           `mapstructure:"max_conns_per_user"`
	MaxRoomsPerConn int           `mapstructure:"max_rooms_per_conn"`
	PingInterval    time.Duration `mapstructure:"ping_interval"`
	SendQueue       int           `mapstructure:"send_queue"` // frames queued per connection
	SlowTimeout     time.Duration `mapstructure:"slow_timeout"`
	// WriteDelay: how long a room's frame may wait for others to the same
	// connection before the writer starts, so they leave in one write
	// (0: at once). Replies and closes never wait.
	WriteDelay         time.Duration `mapstructure:"write_delay"`
	PresenceInterval   time.Duration `mapstructure:"presence_interval"`
	PresenceMaxMembers int           `mapstructure:"presence_max_members"`
	DedupeWindow       time.Duration `mapstructure:"dedupe_window"`
	// RoomsAllowed, when not empty, confines users to these rooms: a join,
	// message, typing or history request for any other room is refused as
	// an invalid room. Set it to [general] while AuroraChat chat-services
	// share the Redis (their fan-out crashes on rooms they never saw).
	RoomsAllowed []string `mapstructure:"rooms_allowed"`
	// CreateOnJoin: a WebSocket join of a room name nobody uses creates a
	// public room, the joiner its owner (AuroraChat's behaviour). False:
	// such a join is refused as not_found; rooms are created with POST
	// /api/rooms.
	CreateOnJoin bool `mapstructure:"create_on_join"`
	// AckReplicas, when above 0, holds each ack until that many Redis
	// replicas confirmed the message (WAIT on the send's connection);
	// AckTimeout is how long the send waits for them before answering
	// unavailable (the message stays queued). docs/reliability.md.
	AckReplicas int           `mapstructure:"ack_replicas"`
	AckTimeout  time.Duration `mapstructure:"ack_timeout"`
}

// Ingest configures the stream-to-store pipeline.
type Ingest struct {
	BatchSize     int           `mapstructure:"batch_size"`
	FlushInterval time.Duration `mapstructure:"flush_interval"`
	ClaimIdle     time.Duration `mapstructure:"claim_idle"`
	MaxDeliveries int           `mapstructure:"max_deliveries"`
	// KeepRecent is how many acknowledged entries the stream keeps for
	// reconnect recovery before they are trimmed.
	KeepRecent int `mapstructure:"keep_recent"`
	// Retention is the server's default for how long messages are kept
	// (0: forever); a room's own (aurora rooms retention) overrides it.
	Retention time.Duration `mapstructure:"retention"`
	// RetentionInterval is how often the ingest role deletes the messages
	// past their room's retention.
	RetentionInterval time.Duration `mapstructure:"retention_interval"`
}

// MinSecretLength is the shortest auth.jwt_secret accepted, in bytes,
// without auth.insecure_short_secret: HS256 wants a key of at least its
// 256-bit output, and a short one can be brute-forced from any token.
const MinSecretLength = 32

// MaxAckTimeout bounds chat.ack_timeout: a connection reads its next frame
// only after the ack, so a longer wait holds the client up for nothing a
// retry would not do better.
const MaxAckTimeout = 10 * time.Second

// generalRoom is the room every chat connection joins on connect, as in
// AuroraChat; chat.rooms_allowed must keep it.
const generalRoom = "general"

// Default returns the built-in defaults for a binary that can run roles:
// a process runs all of them unless told otherwise. The roles are the
// module registry's (app.Roles()), handed in by the caller: the registry is
// their one list, and config cannot import the runtime that imports it.
func Default(roles ...string) Config {
	return Config{
		DataDir: "./data",
		Roles:   append([]string(nil), roles...),
		HTTP: HTTP{
			Addr:              ":8080",
			DrainTimeout:      25 * time.Second,
			ShutdownDelay:     0,
			ReadTimeout:       30 * time.Second,
			IdleTimeout:       120 * time.Second,
			WriteTimeout:      60 * time.Second,
			MaxConnsPerIP:     256,
			UpgradeRatePerIP:  20,
			UpgradeBurstPerIP: 100,
			TLS:               TLS{ACME: ACME{DirectoryURL: LetsEncryptURL}},
		},
		Log:   Log{Level: "info", Format: "auto"},
		Mongo: Mongo{},
		Auth: Auth{
			TokenTTL:          24 * time.Hour,
			BcryptCost:        10,
			LoginMaxFailures:  5,
			LoginWindow:       15 * time.Minute,
			RegisterPerIP:     10,
			LoginPerIP:        30,
			IPWindow:          time.Minute,
			BcryptConcurrency: 0,
			BcryptWait:        2 * time.Second,
		},
		Chat: Chat{
			MaxTextLength:      4000,
			RoomRate:           3,
			UserRate:           10,
			MaxConnsPerUser:    10,
			MaxRoomsPerConn:    50,
			PingInterval:       30 * time.Second,
			SendQueue:          256,
			SlowTimeout:        5 * time.Second,
			WriteDelay:         5 * time.Millisecond,
			PresenceInterval:   250 * time.Millisecond,
			PresenceMaxMembers: 1000,
			DedupeWindow:       15 * time.Minute,
			CreateOnJoin:       true,
			AckReplicas:        0,
			AckTimeout:         500 * time.Millisecond,
		},
		Ingest: Ingest{
			BatchSize:     50,
			FlushInterval: time.Second,
			ClaimIdle:     30 * time.Second,
			MaxDeliveries: 5,
			KeepRecent:    10000,

			Retention:         0,
			RetentionInterval: time.Minute,
		},
		Bus: Bus{Shards: 1},
		Attachments: Attachments{
			MaxBytes:         10 << 20,
			Types:            []string{"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain", "application/zip"},
			UploadsPerMinute: 30,
		},
	}
}

// legacyEnv maps AuroraChat's environment variables onto keys. They rank
// below AURORA_* variables, which name the same keys explicitly.
func legacyEnv(v *viper.Viper, getenv func(string) string) error {
	if p := getenv("PORT"); p != "" && getenv("AURORA_HTTP_ADDR") == "" {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return fmt.Errorf("PORT: %q is not a port number", p)
		}
		v.Set("http.addr", ":"+p)
	}
	if s := getenv("JWT_SECRET"); s != "" && getenv("AURORA_AUTH_JWT_SECRET") == "" {
		v.Set("auth.jwt_secret", s)
	}
	if h := getenv("REDIS_HOST"); h != "" && getenv("AURORA_REDIS_URL") == "" {
		port := getenv("REDIS_PORT")
		if port == "" {
			port = "6379"
		}
		v.Set("redis.url", "redis://"+net.JoinHostPort(h, port))
	}
	if m := getenv("MONGO_URL"); m != "" && getenv("AURORA_MONGO_URL") == "" {
		v.Set("mongo.url", m)
	}
	return nil
}

// FlagKeys maps the command-line flags that override config keys to those
// keys. A flag overrides everything else only when the user set it.
var FlagKeys = map[string]string{
	"roles":     "roles",
	"http-addr": "http.addr",
	"log-level": "log.level",
	"data-dir":  "data_dir",
	"redis-url": "redis.url",
	"mongo-url": "mongo.url",
}

// Load builds the configuration for a binary that can run roles (the module
// registry's, app.Roles()): they are the default and all that key roles
// accepts. file may be empty; flags may be nil.
func Load(file string, flags *pflag.FlagSet, roles []string) (*Config, error) {
	return load(file, flags, roles, os.Getenv)
}

func load(file string, flags *pflag.FlagSet, roles []string, getenv func(string) string) (*Config, error) {
	v := viper.New()
	def := Default(roles...)
	setDefaults(v, "", reflect.ValueOf(def))

	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("read config file %s: %w", file, err)
		}
	}
	if err := legacyEnv(v, getenv); err != nil {
		return nil, err
	}
	// AURORA_* variables: bound explicitly per key so they override the
	// file and the legacy variables.
	for _, key := range v.AllKeys() {
		env := "AURORA_" + strings.ToUpper(strings.NewReplacer(".", "_").Replace(key))
		if val := getenv(env); val != "" {
			v.Set(key, val)
		}
	}
	if flags != nil {
		flags.Visit(func(f *pflag.Flag) {
			key, ok := FlagKeys[f.Name]
			if !ok {
				return
			}
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				v.Set(key, sv.GetSlice())
				return
			}
			v.Set(key, f.Value.String())
		})
	}

	var c Config
	err := v.UnmarshalExact(&c, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	)))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := c.Validate(roles); err != nil {
		return nil, err
	}
	return &c, nil
}

func setDefaults(v *viper.Viper, prefix string, rv reflect.Value) {
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		key := f.Tag.Get("mapstructure")
		if prefix != "" {
			key = prefix + "." + key
		}
		if f.Type.Kind() == reflect.Struct {
			setDefaults(v, key, rv.Field(i))
			continue
		}
		v.SetDefault(key, rv.Field(i).Interface())
	}
}

// Validate checks every value, the roles against the roles this binary can
// run (the module registry's, app.Roles()), and names the key of each bad
// one.
func (c *Config) Validate(roles []string) error {
	var errs []error
	bad := func(key string, format string, a ...any) {
		errs = append(errs, fmt.Errorf("config key %s: %s", key, fmt.Sprintf(format, a...)))
	}
	if len(c.Roles) == 0 {
		bad("roles", "at least one role is required (valid: %s)", strings.Join(roles, ", "))
	}
	for _, r := range c.Roles {
		if !slices.Contains(roles, r) {
			bad("roles", "unknown role %q (valid: %s)", r, strings.Join(roles, ", "))
		}
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
		bad("http.addr", "%q is not host:port", c.HTTP.Addr)
	}
	if c.HTTP.DrainTimeout <= 0 {
		bad("http.drain_timeout", "must be positive")
	}
	if c.HTTP.ShutdownDelay < 0 {
		bad("http.shutdown_delay", "must not be negative")
	}
	for _, o := range c.HTTP.CORSOrigins {
		if err := checkOrigin(o); err != nil {
			bad("http.cors_origins", "%q %v", o, err)
		}
	}
	for k, d := range map[string]time.Duration{
		"http.read_timeout":  c.HTTP.ReadTimeout,
		"http.idle_timeout":  c.HTTP.IdleTimeout,
		"http.write_timeout": c.HTTP.WriteTimeout,
	} {
		if d < 100*time.Millisecond {
			bad(k, "must be at least 100ms")
		}
	}
	if c.HTTP.MaxConnsPerIP < 0 {
		bad("http.max_conns_per_ip", "must not be negative (0: no cap)")
	}
	if c.HTTP.UpgradeRatePerIP < 0 {
		bad("http.upgrade_rate_per_ip", "must not be negative (0: no limit)")
	}
	if c.HTTP.UpgradeRatePerIP > 0 && c.HTTP.UpgradeBurstPerIP < 1 {
		bad("http.upgrade_burst_per_ip", "must be at least 1")
	}
	for _, p := range c.HTTP.TrustedProxies {
		if _, err := ParsePrefix(p); err != nil {
			bad("http.trusted_proxies", "%q is not a CIDR (10.0.0.0/8) or an address", p)
		}
	}
	c.validateTLS(bad)
	c.validateAttachments(bad)
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "warning", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "auto", "json", "text":
	default:
		bad("log.format", "%q is not one of auto, json, text", c.Log.Format)
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	if c.Redis.URL != "" {
		if u, err := url.Parse(c.Redis.URL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			bad("redis.url", "must be a redis://, rediss:// or unix:// URL")
		}
	}
	if c.Mongo.URL != "" {
		if u, err := url.Parse(c.Mongo.URL); err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") {
			bad("mongo.url", "must be a mongodb:// or mongodb+srv:// URL")
		}
	}
	if n := len(c.Auth.JWTSecret); n > 0 && n < MinSecretLength && !c.Auth.InsecureShortSecret {
		bad("auth.jwt_secret", "is %d bytes, at least %d are required (a short secret can be guessed offline from any one token, "+
			"and then tokens forged): generate one with `openssl rand -hex 32`, or leave it empty to have one generated in data_dir; "+
			"to accept it anyway (AuroraChat's dev-secret during a migration), set auth.insecure_short_secret: true (AURORA_AUTH_INSECURE_SHORT_SECRET=true)",
			n, MinSecretLength)
	}
	if c.Auth.TokenTTL < time.Minute {
		bad("auth.token_ttl", "must be at least 1m")
	}
	if c.Auth.BcryptCost < 4 || c.Auth.BcryptCost > 31 {
		bad("auth.bcrypt_cost", "must be between 4 and 31")
	}
	if c.Auth.LoginMaxFailures < 1 {
		bad("auth.login_max_failures", "must be at least 1")
	}
	if c.Auth.LoginWindow < time.Second {
		bad("auth.login_window", "must be at least 1s")
	}
	if c.Auth.BcryptConcurrency < 0 {
		bad("auth.bcrypt_concurrency", "must not be negative (0: GOMAXPROCS)")
	}
	if c.Auth.BcryptWait <= 0 {
		bad("auth.bcrypt_wait", "must be a positive duration")
	}
	if c.Auth.IPWindow < time.Second {
		bad("auth.ip_window", "must be at least 1s")
	}
	positive := map[string]int{
		"auth.register_per_ip":      c.Auth.RegisterPerIP,
		"auth.login_per_ip":         c.Auth.LoginPerIP,
		"chat.max_text_length":      c.Chat.MaxTextLength,
		"chat.room_rate":            c.Chat.RoomRate,
		"chat.user_rate":            c.Chat.UserRate,
		"chat.max_conns_per_user":   c.Chat.MaxConnsPerUser,
		"chat.max_rooms_per_conn":   c.Chat.MaxRoomsPerConn,
		"chat.send_queue":           c.Chat.SendQueue,
		"chat.presence_max_members": c.Chat.PresenceMaxMembers,
		"ingest.max_deliveries":     c.Ingest.MaxDeliveries,
		"ingest.keep_recent":        c.Ingest.KeepRecent,
	}
	for k, n := range positive {
		if n < 1 {
			bad(k, "must be at least 1")
		}
	}
	durations := map[string]time.Duration{
		"chat.ping_interval":     c.Chat.PingInterval,
		"chat.slow_timeout":      c.Chat.SlowTimeout,
		"chat.presence_interval": c.Chat.PresenceInterval,
		"chat.dedupe_window":     c.Chat.DedupeWindow,
		"ingest.flush_interval":  c.Ingest.FlushInterval,
		"ingest.claim_idle":      c.Ingest.ClaimIdle,

		"ingest.retention_interval": c.Ingest.RetentionInterval,
	}
	if c.Chat.WriteDelay < 0 || c.Chat.WriteDelay > time.Second {
		bad("chat.write_delay", "must be between 0 and 1s")
	}
	for k, d := range durations {
		if d <= 0 {
			bad(k, "must be a positive duration")
		}
	}
	if c.Chat.DedupeWindow > 0 && c.Chat.DedupeWindow < 10*time.Minute {
		bad("chat.dedupe_window", "must be at least 10m (clients may resend for that long)")
	}
	for _, r := range c.Chat.RoomsAllowed {
		if !bus.ValidRoom(r) {
			bad("chat.rooms_allowed", "%q is not a room name: %s", r, bus.RoomRule)
		}
	}
	if len(c.Chat.RoomsAllowed) > 0 && !slices.Contains(c.Chat.RoomsAllowed, generalRoom) {
		bad("chat.rooms_allowed", "must include %s, the room every connection joins (or be empty for no restriction)", generalRoom)
	}
	if c.Chat.AckReplicas < 0 {
		bad("chat.ack_replicas", "must not be negative (0: ack without waiting for replicas)")
	}
	if c.Chat.AckReplicas > 0 {
		if c.Chat.AckTimeout < time.Millisecond || c.Chat.AckTimeout > MaxAckTimeout {
			// WAIT counts whole milliseconds and takes 0 as "forever".
			bad("chat.ack_timeout", "must be between 1ms and %s when chat.ack_replicas is set", MaxAckTimeout)
		}
		if c.Redis.URL == "" {
			bad("chat.ack_replicas", "is %d, but the embedded Redis (no redis.url) has no replicas, so no message could ever be acked: "+
				"set redis.url to a Redis primary with replicas, or set chat.ack_replicas to 0", c.Chat.AckReplicas)
		}
	}
	if c.Ingest.BatchSize < 1 || c.Ingest.BatchSize > 1000 {
		bad("ingest.batch_size", "must be between 1 and 1000")
	}
	if c.Ingest.Retention < 0 {
		bad("ingest.retention", "must not be negative (0: keep messages forever)")
	}
	if c.Bus.Shards < 1 || c.Bus.Shards > bus.MaxShards {
		bad("bus.shards", "must be between 1 and %d", bus.MaxShards)
	}
	return errors.Join(errs...)
}

// validateTLS checks http.tls and http.redirect_addr: one certificate
// source, complete, and a redirect only to an HTTPS listener.
func (c *Config) validateTLS(bad func(key string, format string, a ...any)) {
	t := c.HTTP.TLS
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		bad("http.tls.key_file", "must be set with http.tls.cert_file (the certificate's private key, PEM)")
	case t.KeyFile != "" && t.CertFile == "":
		bad("http.tls.cert_file", "must be set with http.tls.key_file (the certificate chain, PEM)")
	}
	if t.ACME.Enabled() && (t.CertFile != "" || t.KeyFile != "") {
		bad("http.tls.acme.domains", "ACME and http.tls.cert_file/key_file are two certificate sources: set one of them")
	}
	for _, d := range t.ACME.Domains {
		if err := checkDomain(d); err != nil {
			bad("http.tls.acme.domains", "%q %v", d, err)
		}
	}
	a := t.ACME
	if !a.Enabled() && (a.Email != "" || a.CacheDir != "" || a.DirectoryCAFile != "") {
		bad("http.tls.acme.domains", "ACME needs the domains to obtain a certificate for (http.tls.acme.email, cache_dir or directory_ca_file is set)")
	}
	if a.Enabled() {
		if a.Email != "" && (!strings.Contains(a.Email, "@") || strings.ContainsAny(a.Email, " \t\r\n<>")) {
			bad("http.tls.acme.email", "%q is not an email address", a.Email)
		}
		if err := checkDirectoryURL(a.DirectoryURL); err != nil {
			bad("http.tls.acme.directory_url", "%q %v", a.DirectoryURL, err)
		}
	}
	if r := c.HTTP.RedirectAddr; r != "" {
		if _, _, err := net.SplitHostPort(r); err != nil {
			bad("http.redirect_addr", "%q is not host:port (\":80\")", r)
		} else if !t.Enabled() {
			bad("http.redirect_addr", "redirects to HTTPS, but this server does not serve TLS: set http.tls.cert_file and key_file, or http.tls.acme.domains")
		} else if _, port, _ := net.SplitHostPort(r); r == c.HTTP.Addr && port != "0" {
			bad("http.redirect_addr", "must differ from http.addr %q", c.HTTP.Addr)
		}
	}
}

// checkDomain accepts a host name a public CA can issue for: letters,
// digits, '-' and at least one dot; no IP address, port or wildcard
// (http-01 and tls-alpn-01 cannot prove a wildcard).
func checkDomain(d string) error {
	if net.ParseIP(d) != nil {
		return errors.New("is an IP address, ACME needs a host name")
	}
	if !strings.Contains(strings.Trim(d, "."), ".") || strings.HasSuffix(d, ".") || len(d) > 253 {
		return errors.New("is not a fully qualified host name like chat.example.com")
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return errors.New("is not a fully qualified host name like chat.example.com")
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("has %q: only letters, digits and '-' (no wildcard, port or path)", r)
			}
		}
	}
	return nil
}

// checkDirectoryURL accepts an https:// ACME directory: ACME requires
// HTTPS (RFC 8555), and the account key's orders must not cross a network
// in the clear.
func checkDirectoryURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Scheme != "https" {
		return errors.New("is not an https:// URL like " + LetsEncryptURL)
	}
	return nil
}

// ACMECacheDir is where ACME keeps its account key and certificates.
func (c *Config) ACMECacheDir() string {
	if c.HTTP.TLS.ACME.CacheDir != "" {
		return c.HTTP.TLS.ACME.CacheDir
	}
	return filepath.Join(c.DataDir, "acme")
}

// checkOrigin accepts one http.cors_origins entry: "*", "null", or an
// origin "scheme://host[:port]" (a trailing "/" is tolerated). Anything else
// could never equal a browser's Origin header.
func checkOrigin(o string) error {
	switch o {
	case "*", "null":
		return nil
	}
	if strings.EqualFold(o, "null") {
		return errors.New(`must be "null" in lower case, as browsers send it`)
	}
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return errors.New(`is not an origin like https://chat.example.com, "*" or "null"`)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") {
		return errors.New("must be only scheme://host[:port], without user, path, query or fragment")
	}
	if strings.Contains(u.Host, "*") {
		return errors.New(`wildcards are not supported inside an origin; list each origin, or "*" for all`)
	}
	return nil
}

// ParsePrefix parses one http.trusted_proxies entry: a CIDR, or a single
// address (a /32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// TrustedProxyPrefixes returns http.trusted_proxies parsed (Validate has
// checked them).
func (c *Config) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.HTTP.TrustedProxies {
		if p, err := ParsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// HasRole reports whether the process runs role r.
func (c *Config) HasRole(r string) bool {
	for _, x := range c.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// MongoDatabase is the database to use: the configured one, else the URL's
// path, else "aurorachat" as in AuroraChat.
func (c *Config) MongoDatabase() string {
	if c.Mongo.Database != "" {
		return c.Mongo.Database
	}
	if u, err := url.Parse(c.Mongo.URL); err == nil {
		if db := strings.Trim(u.Path, "/"); db != "" {
			return db
		}
	}
	return "aurorachat"
}

// SQLitePath is the embedded store's file.
func (c *Config) SQLitePath() string { return filepath.Join(c.DataDir, "aurora.db") }

// Masked returns a copy with secrets replaced, for printing: fields tagged
// secret:"true" are hidden whole, secret:"url" hide only a URL's password.
func (c Config) Masked() Config {
	mask(reflect.ValueOf(&c).Elem())
	return c
}

func mask(rv reflect.Value) {
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		f := rv.Field(i)
		switch rt.Field(i).Tag.Get("secret") {
		case "true":
			if f.String() != "" {
				f.SetString("********")
			}
		case "url":
			if u, err := url.Parse(f.String()); err == nil && u.User != nil {
				if _, has := u.User.Password(); has {
					u.User = url.UserPassword(u.User.Username(), "xxxxx")
					f.SetString(u.String())
				}
			}
		default:
			if f.Kind() == reflect.Struct {
				mask(f)
			}
		}
	}
}

// Map returns the configuration as nested maps keyed like the config file,
// durations as strings, for printing.
func (c Config) Map() map[string]any { return toMap(reflect.ValueOf(c)) }

func toMap(rv reflect.Value) map[string]any {
	out := map[string]any{}
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		key := rt.Field(i).Tag.Get("mapstructure")
		f := rv.Field(i)
		switch {
		case f.Kind() == reflect.Struct:
			out[key] = toMap(f)
		case f.Type() == reflect.TypeOf(time.Duration(0)):
			out[key] = time.Duration(f.Int()).String()
		default:
			out[key] = f.Interface()
		}
	}
	return out
}
