package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/auroradev/aurora/app/store"
)

// Token refusals of Users.Allowed.
var (
	ErrDisabled = errors.New("user disabled")
	ErrRevoked  = errors.New("token revoked")
)

// PollInterval is how often a replica asks the store which users changed.
// A disabled user's connections are closed, and their tokens refused, by
// every replica within it (plus the store's answer).
const PollInterval = time.Second

// pollOverlap re-reads changes this far before the last poll, so a change
// written by a process whose clock runs behind, or committed while the
// last poll ran, is not missed (reading one twice does nothing).
const pollOverlap = 5 * time.Second

// Users is a replica's view of the users that are not plain: disabled, with
// revoked tokens, or server administrators. Tokens are stateless, so a
// token of a disabled user would otherwise work until it expires; the view
// lets every token check and right check be a map lookup. It is loaded at
// Start (store.FlaggedUsers) and kept current by polling
// store.UsersChangedSince every PollInterval, so an operator's
// `aurora users disable`, which writes only the store, reaches every
// replica.
type Users struct {
	store    store.Users
	log      *slog.Logger
	interval time.Duration
	// OnRevoked, when set, is called (on the poll goroutine) with each
	// user that became disabled or had tokens revoked, so the caller can
	// close their connections.
	OnRevoked func(userID string)

	mu      sync.RWMutex
	flagged map[string]store.User
	since   time.Time
}

// NewUsers returns a view of s; Start loads it.
func NewUsers(s store.Users, log *slog.Logger) *Users {
	return &Users{store: s, log: log, interval: PollInterval, flagged: map[string]store.User{}}
}

// Start loads the flagged users.
func (u *Users) Start(ctx context.Context) error {
	at := time.Now()
	users, err := u.store.FlaggedUsers(ctx)
	if err != nil {
		return fmt.Errorf("load disabled users and administrators: %w", err)
	}
	u.mu.Lock()
	for _, x := range users {
		u.flagged[x.ID] = x
	}
	u.since = at.Add(-pollOverlap)
	u.mu.Unlock()
	return nil
}

// Run polls the store until ctx ends.
func (u *Users) Run(ctx context.Context) {
	t := time.NewTicker(u.interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := u.Poll(ctx)
			switch {
			case err != nil && ctx.Err() == nil && !failing:
				// Once per outage, not every second: the store's own
				// health is on /readyz.
				u.log.Warn("poll changed users: disabled users and revoked tokens are not seen until the store answers", "err", err)
				failing = true
			case err == nil && failing:
				u.log.Info("poll changed users: the store answers again")
				failing = false
			}
		}
	}
}

// Poll reads the users changed since the last poll and updates the view.
func (u *Users) Poll(ctx context.Context) error {
	u.mu.RLock()
	since := u.since
	u.mu.RUnlock()
	at := time.Now()
	changed, err := u.store.UsersChangedSince(ctx, since)
	if err != nil {
		return fmt.Errorf("read users changed since %s: %w", since.Format(time.RFC3339), err)
	}
	var revoked []string
	u.mu.Lock()
	for _, x := range changed {
		old, had := u.flagged[x.ID]
		if x.Disabled && (!had || !old.Disabled) || x.ValidAfter.After(old.ValidAfter) {
			revoked = append(revoked, x.ID)
		}
		if x.Disabled || x.Admin || !x.ValidAfter.IsZero() {
			u.flagged[x.ID] = x
		} else {
			delete(u.flagged, x.ID)
		}
	}
	u.since = at.Add(-pollOverlap)
	u.mu.Unlock()
	if u.OnRevoked != nil {
		for _, id := range revoked {
			u.OnRevoked(id)
		}
	}
	return nil
}

// Note records a user the caller changed itself (a server administrator's
// disable over the API), so this replica acts on it before its next poll.
func (u *Users) Note(x store.User) {
	u.mu.Lock()
	old := u.flagged[x.ID]
	if x.Disabled || x.Admin || !x.ValidAfter.IsZero() {
		u.flagged[x.ID] = x
	} else {
		delete(u.flagged, x.ID)
	}
	u.mu.Unlock()
	if u.OnRevoked != nil && (x.Disabled && !old.Disabled || x.ValidAfter.After(old.ValidAfter)) {
		u.OnRevoked(x.ID)
	}
}

// Allowed says whether a token of userID issued at issuedAt is still
// good: nil, ErrDisabled or ErrRevoked. JWT times are whole seconds, so a
// token issued in the second of ValidAfter is still good (one issued
// before the revocation in that second is too; the user being disabled
// stops it anyway).
func (u *Users) Allowed(userID string, issuedAt time.Time) error {
	u.mu.RLock()
	x, ok := u.flagged[userID]
	u.mu.RUnlock()
	switch {
	case !ok:
		return nil
	case x.Disabled:
		return ErrDisabled
	case !x.ValidAfter.IsZero() && issuedAt.Before(x.ValidAfter.Truncate(time.Second)):
		return ErrRevoked
	}
	return nil
}

// Admin reports whether userID is a server administrator (and not
// disabled).
func (u *Users) Admin(userID string) bool {
	u.mu.RLock()
	x, ok := u.flagged[userID]
	u.mu.RUnlock()
	return ok && x.Admin && !x.Disabled
}
