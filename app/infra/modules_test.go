package infra_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/app/infra"
	"github.com/auroradev/aurora/config"
)

// nop is a role module that does nothing itself.
type nop struct{}

func (nop) Start(context.Context) error { return nil }
func (nop) Stop(context.Context) error  { return nil }

// testRole registers a role depending on deps, whose constructor runs
// check against the Host the infrastructure modules filled in. The registry
// is process-wide and refuses duplicate names: each role gets a fresh one
// (also under -count=N).
func testRole(deps []string, check func(ctx context.Context, h *app.Host) error) string {
	role := "test-infra-" + app.NewID()
	app.Register(app.Registration{
		Name: role, Role: true, Deps: deps,
		New: func(ctx context.Context, h *app.Host) (app.Module, error) {
			if check != nil {
				if err := check(ctx, h); err != nil {
					return nil, err
				}
			}
			return nop{}, nil
		},
	})
	return role
}

func testConfig(t *testing.T, role string) *config.Config {
	t.Helper()
	cfg := apptest.Config(t)
	cfg.Roles = []string{role}
	return cfg
}

func TestInfrastructureModules(t *testing.T) {
	type seen struct {
		redisEmbedded bool
		ping          error
		token         string
		verifyErr     error
	}
	run := func(t *testing.T, redisURL string) seen {
		var got seen
		role := testRole([]string{app.ModRedis, app.ModTokens}, func(ctx context.Context, h *app.Host) error {
			if h.Redis == nil || h.Tokens == nil {
				return errors.New("dependencies not provided before New")
			}
			got.redisEmbedded = h.RedisEmbedded
			got.ping = h.Redis.Do(ctx, h.Redis.B().Ping().Build()).Error()
			tok, _, err := h.Tokens.Issue("0123456789abcdef01234567", "alice")
			if err != nil {
				return err
			}
			got.token = tok
			_, got.verifyErr = h.Tokens.Verify(tok)
			return nil
		})
		cfg := testConfig(t, role)
		cfg.Redis.URL = redisURL
		s := apptest.Start(t, cfg)
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
		return got
	}

	t.Run("configured redis", func(t *testing.T) {
		got := run(t, apptest.RedisURL(t))
		if got.redisEmbedded || got.ping != nil || got.token == "" || got.verifyErr != nil {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("embedded redis", func(t *testing.T) {
		got := run(t, "")
		if !got.redisEmbedded || got.ping != nil || got.verifyErr != nil {
			t.Fatalf("%+v", got)
		}
	})
}

// TestShortSecretNeedsTheFlag: a process configured with AuroraChat's
// dev-secret does not validate; with auth.insecure_short_secret it starts
// and its tokens module warns.
func TestShortSecretNeedsTheFlag(t *testing.T) {
	role := testRole([]string{app.ModTokens}, nil)
	cfg := testConfig(t, role)
	cfg.Auth.JWTSecret = infra.DevSecret
	if err := cfg.Validate(app.Roles()); err == nil || !strings.Contains(err.Error(), "auth.jwt_secret") {
		t.Fatalf("Validate with dev-secret: %v, want an error naming auth.jwt_secret", err)
	}
	cfg.Auth.InsecureShortSecret = true
	if err := cfg.Validate(app.Roles()); err != nil {
		t.Fatalf("Validate with the flag: %v", err)
	}
	var logs apptest.Buffer
	s := apptest.StartWithLog(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "public default 'dev-secret'") {
		t.Errorf("no warning for dev-secret:\n%s", logs.String())
	}
	if _, _, err := s.App.Host().Tokens.Issue("u1", "alice"); err != nil {
		t.Errorf("issue a token with dev-secret: %v", err)
	}
}
