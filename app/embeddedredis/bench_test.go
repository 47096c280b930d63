package embeddedredis

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// BenchmarkCommandWithKeys measures one SET PX and one GET (what the send
// script does to its dedupe key) with n other keys carrying a TTL: with this
// package's clock, with no clock (plain miniredis, keys never age), and
// with miniredis' own ClockTTL mode, which ages every key on every command.
// The clock's cost must not grow with the number of keys.
//
//	go test -run - -bench CommandWithKeys ./app/embeddedredis/
func BenchmarkCommandWithKeys(b *testing.B) {
	for _, mode := range []string{"none", "clock", "miniredis-ClockTTL"} {
		for _, n := range []int{0, 10000, 90000} {
			if mode == "miniredis-ClockTTL" && n > 10000 {
				continue // loading 90,000 keys alone takes minutes in that mode
			}
			b.Run(fmt.Sprintf("%s/keys=%d", mode, n), func(b *testing.B) {
				s, err := Start("127.0.0.1:0", Options{FrozenClock: mode != "clock"})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				if mode == "miniredis-ClockTTL" {
					s.m.ClockTTL(true)
				}
				c, err := rueidis.NewClient(s.ClientOptions())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				ctx := context.Background()
				cmds := make(rueidis.Commands, 0, 1000)
				for i := 0; i < n; i++ {
					cmds = append(cmds, c.B().Set().Key("chat:dedupe:{chat:messages}:u:"+strconv.Itoa(i)).Value("1-0").Px(time.Hour).Build())
					if len(cmds) == cap(cmds) || i == n-1 {
						for _, r := range c.DoMulti(ctx, cmds...) {
							if err := r.Error(); err != nil {
								b.Fatal(err)
							}
						}
						cmds = cmds[:0]
					}
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					k := "bench:" + strconv.Itoa(i)
					if err := c.Do(ctx, c.B().Set().Key(k).Value("v").Px(time.Minute).Build()).Error(); err != nil {
						b.Fatal(err)
					}
					if err := c.Do(ctx, c.B().Get().Key(k).Build()).Error(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
