package membership

import (
	"strconv"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/store"
)

// BenchmarkUsersAllowed is the revocation check a connect and every HTTP
// request pay: a read-locked map lookup, with 10,000 flagged users.
//
//	go test -run - -bench UsersAllowed ./app/membership/
func BenchmarkUsersAllowed(b *testing.B) {
	u := NewUsers(nil, nil)
	now := time.Now()
	for i := 0; i < 10000; i++ {
		id := strconv.Itoa(i)
		u.flagged[id] = store.User{ID: id, Disabled: i%2 == 0, ValidAfter: now}
	}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			_ = u.Allowed(strconv.Itoa(i%20000), now)
		}
	})
}
