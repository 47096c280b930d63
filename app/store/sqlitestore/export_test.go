package sqlitestore

// SchemaV1 is migration 1's schema, for tests that build a file as an
// Aurora before the later migrations left it.
const SchemaV1 = schema
