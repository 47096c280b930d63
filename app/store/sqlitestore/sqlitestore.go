// Package sqlitestore is the embedded store: one SQLite file (pure Go,
// modernc.org/sqlite) with tables named like the MongoDB collections.
package sqlitestore

import (
	"context"
	"errors"

	"github.com/auroradev/aurora/app/store"
)

// Store is a store.Store over SQLite. STUB: being implemented.
type Store struct{ store.Store }

// Open opens (creating if needed) the SQLite file at path.
func Open(ctx context.Context, path string) (*Store, error) {
	return nil, errors.New("sqlitestore: not implemented")
}
