package infra

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/token"
	"github.com/auroradev/aurora/config"
)

// DevSecret is AuroraChat's default secret. It is shorter than
// config.MinSecretLength, so only auth.insecure_short_secret lets it
// through, and then with a loud warning.
const DevSecret = "dev-secret"

func newTokensModule(_ context.Context, h *app.Host) (app.Module, error) {
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
