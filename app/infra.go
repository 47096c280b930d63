package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/embeddedredis"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/store/mongostore"
	"github.com/auroradev/aurora/app/store/sqlitestore"
	"github.com/auroradev/aurora/app/token"
	"github.com/auroradev/aurora/config"
)

// The shared infrastructure modules. Roles list them in Deps.
const (
	ModRedis  = "redis"
	ModStore  = "store"
	ModTokens = "tokens"
)

func init() {
	Register(Registration{Name: ModRedis, New: newRedisModule})
	Register(Registration{Name: ModStore, New: newStoreModule})
	Register(Registration{Name: ModTokens, New: newTokensModule})
}

// funcModule adapts start/stop/check functions to Module and Checker.
type funcModule struct {
	start func(context.Context) error
	stop  func(context.Context) error
	check func(context.Context) error
}

func (m funcModule) Start(ctx context.Context) error {
	if m.start == nil {
		return nil
	}
	return m.start(ctx)
}

func (m funcModule) Stop(ctx context.Context) error {
	if m.stop == nil {
		return nil
	}
	return m.stop(ctx)
}

func (m funcModule) Check(ctx context.Context) error {
	if m.check == nil {
		return nil
	}
	return m.check(ctx)
}

func newRedisModule(ctx context.Context, h *Host) (Module, error) {
	var embedded *embeddedredis.Server
	var removeRuntime func()
	url := h.Config.Redis.URL
	var opt rueidis.ClientOption
	if url == "" {
		// The runtime file below holds the embedded Redis' password.
		if err := PrivateDataDir(h.Config.DataDir, h.Log); err != nil {
			return nil, err
		}
		var err error
		embedded, err = embeddedredis.Start("127.0.0.1:0", embeddedredis.Options{})
		if err != nil {
			return nil, err
		}
		// Operator commands on this data dir find the Redis through this file.
		removeRuntime, err = embedded.WriteRuntime(h.Config.DataDir)
		if err != nil {
			embedded.Close()
			return nil, err
		}
		opt = embedded.ClientOptions()
		h.RedisEmbedded = true
	} else {
		var err error
		opt, err = RedisOptions(url)
		if err != nil {
			return nil, err
		}
	}
	closeEmbedded := func() {
		if embedded != nil {
			removeRuntime()
			embedded.Close()
		}
	}
	client, err := rueidis.NewClient(opt)
	if err != nil {
		closeEmbedded()
		return nil, fmt.Errorf("connect to redis: %w", err)
	}
	h.Redis = client
	if embedded == nil {
		warnWithoutAOF(ctx, client, h.Log)
	}
	return funcModule{
		stop: func(context.Context) error {
			client.Close()
			closeEmbedded()
			return nil
		},
		check: func(ctx context.Context) error {
			return client.Do(ctx, client.B().Ping().Build()).Error()
		},
	}, nil
}

// warnWithoutAOF warns when the Redis says it keeps no append-only file: a
// restart then loses every message acknowledged and not yet stored. Best
// effort: managed Redis often refuses CONFIG, and then nothing is said.
func warnWithoutAOF(ctx context.Context, c rueidis.Client, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	kv, err := c.Do(ctx, c.B().ConfigGet().Parameter("appendonly").Build()).AsStrMap()
	if err != nil {
		return
	}
	if v, ok := kv["appendonly"]; ok && v == "no" {
		log.Warn("Redis runs without its append-only file (appendonly no): a Redis restart loses the messages " +
			"acknowledged to senders and not yet stored; see docs/reliability.md")
	}
}

// RedisOptions returns client options for a Redis URL. Client-side caching is
// off: Aurora reads nothing that it would cache.
func RedisOptions(url string) (rueidis.ClientOption, error) {
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		return opt, fmt.Errorf("config key redis.url: %w", err)
	}
	opt.DisableCache = true
	if opt.AlwaysRESP2 {
		// ?protocol=2 marks a RESP2-only server such as `aurora dev redis`,
		// which is never a cluster either.
		opt.ForceSingleClient = true
	}
	return opt, nil
}

// OpenStore opens the configured store: MongoDB when mongo.url is set, else
// the SQLite file in the data dir. It does not migrate.
func OpenStore(ctx context.Context, h *Host) (store.Store, error) {
	cfg := h.Config
	if cfg.Mongo.URL != "" {
		s, err := mongostore.Open(ctx, cfg.Mongo.URL, cfg.MongoDatabase())
		if err != nil {
			return nil, fmt.Errorf("open mongodb: %w", err)
		}
		return s, nil
	}
	if err := PrivateDataDir(cfg.DataDir, h.Log); err != nil {
		return nil, err
	}
	s, err := sqlitestore.Open(ctx, cfg.SQLitePath())
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", cfg.SQLitePath(), err)
	}
	for _, f := range s.PermFixes() {
		if f.Err != nil {
			h.Log.Warn(fmt.Sprintf("%s is mode %#o, open to other local users, and could not be tightened to %#o: %v; it holds the users' password hashes: make it owned by the user Aurora runs as, mode %#o",
				f.Path, f.Was, sqlitestore.FileMode, f.Err, sqlitestore.FileMode), "path", f.Path, "mode", fmt.Sprintf("%#o", f.Was))
			continue
		}
		h.Log.Warn(fmt.Sprintf("%s was mode %#o, open to other local users; tightened it to %#o", f.Path, f.Was, sqlitestore.FileMode),
			"path", f.Path, "was", fmt.Sprintf("%#o", f.Was))
	}
	return s, nil
}

// DataDirMode is the data dir's mode: it holds the SQLite store (with the
// users' password hashes), the generated JWT secret and the embedded
// Redis' password, none of which other local users may read or replace.
const DataDirMode fs.FileMode = 0o700

// warnedDirs holds the data dirs whose mode could not be fixed and were
// warned about, so the modules sharing one dir warn once between them.
var warnedDirs sync.Map

// PrivateDataDir creates dir (and missing parents) at DataDirMode whatever
// the umask, or gives an existing dir that group or others can access that
// mode, with a WARN saying it did. When the chmod fails (the process does
// not own dir), it WARNs that the dir stays open and goes on: the files
// Aurora keeps there are 0600 anyway. Only failing to create dir is an
// error.
func PrivateDataDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, DataDirMode); err != nil {
		return fmt.Errorf("create data dir %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	was := fi.Mode().Perm()
	if was&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(dir, DataDirMode); err != nil {
		if _, dup := warnedDirs.LoadOrStore(dir, true); !dup {
			log.Warn(fmt.Sprintf("data dir %s is mode %#o, open to other local users, and could not be tightened to %#o: %v; "+
				"the files Aurora keeps there are 0600, but others can list them (and delete or replace them if the dir is writable to them): "+
				"make the dir owned by the user Aurora runs as, mode %#o, or point data_dir at a subdirectory Aurora creates itself",
				dir, was, DataDirMode, err, DataDirMode), "path", dir, "mode", fmt.Sprintf("%#o", was))
		}
		return nil
	}
	log.Warn(fmt.Sprintf("data dir %s was mode %#o, open to other local users; tightened it to %#o", dir, was, DataDirMode),
		"path", dir, "was", fmt.Sprintf("%#o", was))
	return nil
}

func newStoreModule(ctx context.Context, h *Host) (Module, error) {
	s, err := OpenStore(ctx, h)
	if err != nil {
		return nil, err
	}
	h.Store = s
	return funcModule{
		start: func(ctx context.Context) error {
			if err := s.Migrate(ctx); err != nil {
				return fmt.Errorf("migrate %s store: %w", s.Kind(), err)
			}
			return nil
		},
		stop:  s.Close,
		check: s.Ping,
	}, nil
}

// DevSecret is AuroraChat's default secret. It is shorter than
// config.MinSecretLength, so only auth.insecure_short_secret lets it
// through, and then with a loud warning.
const DevSecret = "dev-secret"

func newTokensModule(_ context.Context, h *Host) (Module, error) {
	secret, err := JWTSecret(h.Config.Auth.JWTSecret, h.Config.DataDir, h.Log)
	if err != nil {
		return nil, err
	}
	h.Tokens = token.NewIssuer(secret, h.Config.Auth.TokenTTL)
	return funcModule{}, nil
}

// JWTSecret returns the configured secret, or the one kept in
// <dataDir>/jwt-secret, generating a random 256-bit one there (mode 0600) on
// first use so tokens survive restarts.
func JWTSecret(configured, dataDir string, log *slog.Logger) ([]byte, error) {
	if configured != "" {
		// The configuration refuses a short secret unless
		// auth.insecure_short_secret is set: say loudly what that costs.
		switch {
		case configured == DevSecret || strings.HasPrefix(configured, "dev-secret"):
			log.Warn("!!! JWT secret is AuroraChat's public default 'dev-secret': anyone can forge tokens. Set auth.jwt_secret (AURORA_AUTH_JWT_SECRET or JWT_SECRET) to a random value (openssl rand -hex 32) !!!",
				"bytes", len(configured))
		case len(configured) < config.MinSecretLength:
			log.Warn(fmt.Sprintf("!!! auth.insecure_short_secret: the JWT secret is only %d bytes (at least %d are safe): it can be guessed from any token, and then tokens forged. Rotate to a random one (openssl rand -hex 32) !!!",
				len(configured), config.MinSecretLength), "bytes", len(configured))
		}
		return []byte(configured), nil
	}
	if err := PrivateDataDir(dataDir, log); err != nil {
		return nil, err
	}
	path := filepath.Join(dataDir, "jwt-secret")
	b, err := os.ReadFile(path)
	if err == nil {
		return secretFromFile(path, b)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read jwt secret %s: %w", path, err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("generate jwt secret: %w", err)
	}
	s := hex.EncodeToString(raw[:])
	// Write the whole secret to a private temp file, then hard-link it into
	// place: the link appears atomically and fails if the name exists, so
	// when two processes race on first start, one wins and the other reads
	// the winner's complete secret, never a half-written file.
	tmp, err := os.CreateTemp(dataDir, ".jwt-secret-*")
	if err != nil {
		return nil, fmt.Errorf("write jwt secret in %s: %w", dataDir, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write jwt secret %s: %w", tmp.Name(), err)
	}
	if _, err := tmp.WriteString(s + "\n"); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write jwt secret %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write jwt secret %s: %w", tmp.Name(), err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			b, rerr := os.ReadFile(path)
			if rerr != nil {
				return nil, fmt.Errorf("read jwt secret %s: %w", path, rerr)
			}
			return secretFromFile(path, b)
		}
		return nil, fmt.Errorf("write jwt secret %s: %w", path, err)
	}
	log.Info("generated a JWT secret", "path", path)
	return []byte(s), nil
}

func secretFromFile(path string, b []byte) ([]byte, error) {
	s := strings.TrimSpace(string(b))
	if len(s) < 32 {
		return nil, fmt.Errorf("jwt secret file %s is too short (want at least 32 characters)", path)
	}
	return []byte(s), nil
}
