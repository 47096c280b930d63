// Package infra holds the shared infrastructure modules: redis (the
// configured Redis, or an embedded one), store (MongoDB or the SQLite file
// in the data dir) and tokens (the JWT issuer). Each registers with the
// runtime from init under the name package app gives it (app.ModRedis,
// app.ModStore, app.ModTokens) and fills in its Host field before the
// modules that list it in Deps are built. The runtime itself imports none
// of the drivers: the composition root (cmd) and app/apptest import this
// package; roles only name the modules.
package infra

import (
	"context"

	"github.com/auroradev/aurora/app"
)

func init() {
	app.Register(app.Registration{Name: app.ModRedis, New: newRedisModule})
	app.Register(app.Registration{Name: app.ModStore, New: newStoreModule})
	app.Register(app.Registration{Name: app.ModTokens, New: newTokensModule})
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
