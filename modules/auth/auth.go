// Package auth is the auth role: register, login and me over HTTP, with
// bcrypt passwords and HS256 JWTs, wire-compatible with AuroraChat's user
// service. STUB: being implemented.
package auth

import (
	"context"

	"github.com/auroradev/aurora/app"
)

func init() {
	app.Register(app.Registration{
		Name: "auth",
		Role: true,
		Deps: []string{app.ModRedis, app.ModStore, app.ModTokens},
		New: func(ctx context.Context, h *app.Host) (app.Module, error) {
			return nil, nil
		},
	})
}
