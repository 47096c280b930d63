package ingest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
)

// This file is what the ingest role deletes: the objects of attachments
// whose messages were deleted, and the messages past their room's
// retention.

// AttachmentDeleter deletes an attachment's stored object by its URL (the
// attachment storage of the chat role). Deleting an object already gone
// must succeed: a redelivered delete names it again.
type AttachmentDeleter interface {
	DeleteAttachment(ctx context.Context, url string) error
}

// RoomLister lists the rooms with their retention.
type RoomLister interface {
	ListRooms(ctx context.Context) ([]store.Room, error)
}

const (
	// deleteTimeout bounds the attachment deletions after one batch.
	deleteTimeout = 10 * time.Second
	// expireBatch is how many rows one ExpireMessages call deletes, and
	// expirePause the pause between two, so retention catching up on a
	// large room never holds the store for long.
	expireBatch = 500
	expirePause = 50 * time.Millisecond
	// RetentionLockKey is the Redis key that lets one ingest process at a
	// time run the retention loop.
	RetentionLockKey = "ingest:retention:lock"
)

// deleteAttachments deletes the objects of atts, logging and counting
// failures (the object is then left behind; the message is gone all the
// same).
func (w *Worker) deleteAttachments(atts []bus.Attachment) {
	deleteObjects(w.hardCtx, w.o.Attachments, atts, w.m, w.log)
}

func deleteObjects(ctx context.Context, d AttachmentDeleter, atts []bus.Attachment, m *metrics, log interface {
	Warn(msg string, args ...any)
}) {
	if d == nil || len(atts) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, deleteTimeout)
	defer cancel()
	for _, a := range atts {
		if err := d.DeleteAttachment(ctx, a.URL); err != nil {
			m.attachmentErrors.Inc()
			log.Warn("delete an attachment's object; it is left in storage", "url", a.URL, "err", err)
			continue
		}
		m.attachmentsDeleted.Inc()
	}
}

// retention is the retention loop of one ingest process.
type retention struct {
	o      Options
	m      *metrics
	holder string // this process's value of the lock
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// start runs the loop until stop.
func (r *retention) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		t := time.NewTicker(r.o.Config.RetentionInterval)
		defer t.Stop()
		for {
			if r.lock(ctx) {
				if err := r.pass(ctx, time.Now()); err != nil && ctx.Err() == nil {
					r.m.retentionErrors.Inc()
					r.o.Log.Warn("retention pass failed; retried at the next interval", "err", err)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (r *retention) stop() {
	if r.cancel != nil {
		r.cancel()
		r.done.Wait()
	}
}

// lockTTL is how long the lock outlives its last refresh: two intervals,
// so the holder keeps it from pass to pass and another process takes
// over within two intervals of its death.
func (r *retention) lockTTL() time.Duration {
	return max(2*r.o.Config.RetentionInterval, time.Second)
}

// lock takes or refreshes the retention lock, reporting whether this
// process holds it.
func (r *retention) lock(ctx context.Context) bool {
	c := r.o.Redis
	ttl := r.lockTTL().Milliseconds()
	err := c.Do(ctx, c.B().Set().Key(RetentionLockKey).Value(r.holder).Nx().PxMilliseconds(ttl).Build()).Error()
	if err == nil {
		return true
	}
	if !rueidis.IsRedisNil(err) {
		r.o.Log.Warn("take the retention lock", "err", err)
		return false
	}
	held, err := c.Do(ctx, c.B().Get().Key(RetentionLockKey).Build()).ToString()
	if err != nil || held != r.holder {
		return false
	}
	// Ours from the last pass: keep it.
	return c.Do(ctx, c.B().Set().Key(RetentionLockKey).Value(r.holder).Xx().PxMilliseconds(ttl).Build()).Error() == nil
}

// effective is a room's retention: its own, or the default when it has
// none; 0 keeps everything.
func effective(room store.Room, def time.Duration) time.Duration {
	switch {
	case room.Retention == store.RetainForever:
		return 0
	case room.Retention > 0:
		return room.Retention
	}
	return max(def, 0)
}

// pass deletes, room by room, every message older than its room's
// retention at now, with the objects of its attachments.
func (r *retention) pass(ctx context.Context, now time.Time) error {
	rooms, err := r.o.Rooms.ListRooms(ctx)
	if err != nil {
		return fmt.Errorf("list rooms for retention: %w", err)
	}
	for _, room := range rooms {
		keep := effective(room, r.o.Config.Retention)
		if keep <= 0 {
			continue
		}
		if err := r.expire(ctx, room.Name, now.Add(-keep)); err != nil {
			return err
		}
	}
	return nil
}

// expire deletes room's rows created before before, in bounded batches.
func (r *retention) expire(ctx context.Context, room string, before time.Time) error {
	for {
		gone, err := r.o.Store.ExpireMessages(ctx, room, before, expireBatch)
		if err != nil {
			return fmt.Errorf("expire messages of %s before %s: %w", room, before.Format(time.RFC3339), err)
		}
		r.m.expired.Add(float64(len(gone)))
		var atts []bus.Attachment
		for _, m := range gone {
			atts = append(atts, m.Attachments...)
		}
		deleteObjects(ctx, r.o.Attachments, atts, r.m, r.o.Log)
		if len(gone) < expireBatch {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(expirePause):
		}
		// Another process may have taken the lock meanwhile (this one
		// stalled past its TTL): then it carries on.
		if !r.lock(ctx) {
			return nil
		}
	}
}
