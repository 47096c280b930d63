package store

import (
	"time"

	"github.com/auroradev/aurora/app/bus"
)

// This file converts between the two shapes of a message the store sees:
// the stored record (Message) and the stream entry it was ingested from
// (bus.Entry). The client frame is the entry's (bus.Entry.Frame), so a
// stored message reaches a client as MessageFromEntry's inverse, Entry,
// then Frame: each conversion is written once.

// statusSent is the status of every ingested message.
const statusSent = "sent"

// MessageFromEntry is the record the ingest role stores for a stream
// entry: created at its id's time (the time the chat role accepted it, the
// same on every copy), updated now.
func MessageFromEntry(e bus.Entry, now time.Time) Message {
	return Message{
		ID:        e.ID,
		RoomID:    e.RoomID,
		UserID:    e.UserID,
		Username:  e.Username,
		Text:      e.Text,
		ClientID:  e.ClientID,
		Type:      e.Type,
		Event:     e.Event,
		Status:    statusSent,
		CreatedAt: time.UnixMilli(int64(e.ID.Ms)).UTC(),
		UpdatedAt: now,

		MessageID:   e.MessageID,
		Emoji:       e.Emoji,
		On:          e.On,
		ReplyTo:     e.ReplyTo,
		Mentions:    e.Mentions,
		Attachments: e.Attachments,
	}
}

// Entry is the stream entry of a stored message, as the history API merges
// it with the stream's: its ts is the creation time (the id's time when
// the record has none).
func (m Message) Entry() bus.Entry {
	ts := m.CreatedAt.UnixMilli()
	if m.CreatedAt.IsZero() {
		ts = int64(m.ID.Ms)
	}
	var edited int64
	if !m.Edited.IsZero() {
		edited = m.Edited.UnixMilli()
	}
	return bus.Entry{
		ID:       m.ID,
		RoomID:   m.RoomID,
		UserID:   m.UserID,
		Username: m.Username,
		Text:     m.Text,
		TS:       ts,
		ClientID: m.ClientID,
		Type:     m.Type,
		Event:    m.Event,

		MessageID:   m.MessageID,
		Emoji:       m.Emoji,
		On:          m.On,
		ReplyTo:     m.ReplyTo,
		Mentions:    m.Mentions,
		Attachments: m.Attachments,
		Edited:      edited,
		Deleted:     m.Deleted,
		Reactions:   m.Reactions,
	}
}
