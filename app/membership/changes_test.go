package membership_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/auroradev/aurora/app/membership"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/app/store/sqlitestore"
)

// failing is a Publisher that cannot announce (Redis away).
type failing struct{ calls int }

func (f *failing) Publish(context.Context, membership.Change) error {
	f.calls++
	return errors.New("redis away")
}

// TestLocalFirst: a change made on this replica reaches its own cache
// before (and whether or not) the announcement goes out, so a decision
// right after it does not read the entry cached before it.
func TestLocalFirst(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "aurora.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(ctx) })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	cache := membership.NewCache(st, nil)
	// The access check of a join to a room that does not exist yet
	// caches that it does not.
	if a, err := cache.Access(ctx, "dev", "u1"); err != nil || a.Room != nil {
		t.Fatalf("Access before the room = %+v, %v", a, err)
	}
	if _, err := st.CreateRoom(ctx, store.Room{Name: "dev"}, &store.Member{UserID: "u1", Username: "alice", Role: store.RoleOwner}); err != nil {
		t.Fatal(err)
	}
	if a, _ := cache.Access(ctx, "dev", "u1"); a.Room != nil {
		t.Fatal("the cache answered from the store: the test shows nothing")
	}
	next := &failing{}
	err = membership.LocalFirst{Cache: cache, Next: next}.Publish(ctx, membership.Change{Room: "dev"})
	if err == nil || next.calls != 1 {
		t.Errorf("Publish = %v after %d announcements, want the announcement's error after 1", err, next.calls)
	}
	a, err := cache.Access(ctx, "dev", "u1")
	if err != nil || a.Room == nil || a.Member == nil || a.Member.Role != store.RoleOwner {
		t.Errorf("Access after the change = %+v, %v: want the room and the owner's membership", a, err)
	}
}
