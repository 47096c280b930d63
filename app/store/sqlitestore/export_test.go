package sqlitestore

import "database/sql"

// SchemaV1 is migration 1's schema, for tests that build a file as an
// Aurora before the later migrations left it.
const SchemaV1 = schema

// EarlyLife is the query applyEarly reads the early life entries of n
// messages with.
func EarlyLife(n int) string { return earlyLife(n) }

// DB is the store's database, for a test of a query plan.
func (s *Store) DB() *sql.DB { return s.db }
