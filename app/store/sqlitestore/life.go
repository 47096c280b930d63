package sqlitestore

import (
	"context"
	"errors"
	"time"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
)

// errTODO marks what the message-life work has not built yet.
var errTODO = errors.New("not implemented yet")

// Message implements store.MessageReader.
func (s *Store) Message(ctx context.Context, room string, id bus.ID) (store.Message, error) {
	return store.Message{}, errTODO
}

// Search implements store.MessageReader.
func (s *Store) Search(ctx context.Context, q store.SearchQuery) ([]store.Message, bool, error) {
	return nil, false, errTODO
}

// ReadMarkers implements store.MessageReader.
func (s *Store) ReadMarkers(ctx context.Context, userID string) (map[string]bus.ID, error) {
	return nil, errTODO
}

// Unread implements store.MessageReader.
func (s *Store) Unread(ctx context.Context, userID, room string, marker bus.ID, limit int) (store.UnreadCount, error) {
	return store.UnreadCount{}, errTODO
}

// ExpireMessages implements store.MessageWriter.
func (s *Store) ExpireMessages(ctx context.Context, room string, before time.Time, limit int) ([]store.Message, error) {
	return nil, errTODO
}

// SetRetention implements store.Rooms.
func (s *Store) SetRetention(ctx context.Context, name string, d time.Duration) error {
	return errTODO
}
