package app_test

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/auroradev/aurora/app"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
	cases := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"no header", "192.0.2.7:5000", nil, "192.0.2.7"},
		{"untrusted peer: header ignored", "192.0.2.7:5000", []string{"203.0.113.9"}, "192.0.2.7"},
		{"trusted peer: right-most hop", "10.1.2.3:5000", []string{"198.51.100.1, 203.0.113.9"}, "203.0.113.9"},
		{"trusted hops skipped", "10.1.2.3:5000", []string{"203.0.113.9, 10.9.9.9"}, "203.0.113.9"},
		{"several headers", "10.1.2.3:5000", []string{"198.51.100.1", "203.0.113.9, 10.2.2.2"}, "203.0.113.9"},
		{"forged left part ignored", "127.0.0.1:5000", []string{"1.2.3.4, 203.0.113.9"}, "203.0.113.9"},
		{"malformed hop stops the walk", "10.1.2.3:5000", []string{"203.0.113.9, junk"}, "10.1.2.3"},
		{"all trusted", "10.1.2.3:5000", []string{"10.4.4.4"}, "10.4.4.4"},
		{"trusted peer, no header", "10.1.2.3:5000", nil, "10.1.2.3"},
		{"mapped v4", "[::ffff:192.0.2.7]:5000", nil, "192.0.2.7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = c.remote
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := app.ClientIP(r, trusted).String(); got != c.want {
				t.Fatalf("ClientIP = %s, want %s", got, c.want)
			}
		})
	}
}
