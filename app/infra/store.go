package infra

import (
	"context"
	"fmt"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/store/mongostore"
	"github.com/auroradev/aurora/app/store/sqlitestore"
)

// OpenStore opens the configured store: MongoDB when mongo.url is set, else
// the SQLite file in the data dir. It does not migrate.
func OpenStore(ctx context.Context, h *app.Host) (store.Store, error) {
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

func newStoreModule(ctx context.Context, h *app.Host) (app.Module, error) {
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
