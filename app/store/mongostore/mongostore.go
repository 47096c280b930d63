// Package mongostore is the production store on MongoDB (mongo-driver v2),
// in AuroraChat's collections.
package mongostore

import (
	"context"
	"errors"

	"github.com/auroradev/aurora/app/store"
)

// Store is a store.Store over MongoDB. STUB: being implemented.
type Store struct{ store.Store }

// Open connects to uri and uses database.
func Open(ctx context.Context, uri, database string) (*Store, error) {
	return nil, errors.New("mongostore: not implemented")
}
