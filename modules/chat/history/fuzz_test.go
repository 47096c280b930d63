package history

import (
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/auroradev/aurora/app/bus"
)

// FuzzParseQuery: parseQuery never panics; refuses with a message naming
// what is wrong (the room, the query string, limit, before or after) or
// accepts a valid room and bounds: a limit clamped to 1..MaxLimit (any
// integer, however large), ids as bus.ParseID reads them, never both
// before and after; and what it accepted, encoded again, parses the same.
// Hostile seeds are in testdata/fuzz/FuzzParseQuery.
func FuzzParseQuery(f *testing.F) {
	for _, s := range [][2]string{
		{"general", ""},
		{"general", "limit=10&before=1700000000000-0"},
		{"general", "limit=99999999999999999999999&after=0-0"},
		{"general", "limit=-99999999999999999999999"},
		{"general", "limit=1e3"},
		{"general", "limit=%00"},
		{"general", "before=18446744073709551616-0"},
		{"general", "before=1-0&after=2-0"},
		{"general", "before=&after="},
		{"general", "limit=1&limit=500"},
		{"general", "%zz"},
		{"general", "a=1;b=2"},
		{"gеneral", ""},
		{"../general", ""},
		{"*", ""},
		{"", ""},
	} {
		f.Add(s[0], s[1])
	}
	rulesets := [][]string{nil, {"general", "dev"}}
	f.Fuzz(func(t *testing.T, room, rawQuery string) {
		for _, rooms := range rulesets {
			q, err := parse(room, rawQuery, rooms)
			if err != nil {
				msg := err.Error()
				if !slices.ContainsFunc([]string{"room", "query", "limit", "before", "after"}, func(w string) bool { return strings.Contains(msg, w) }) {
					t.Fatalf("%q %q: error %q names no parameter", room, rawQuery, msg)
				}
				continue
			}
			checkQuery(t, room, rawQuery, rooms, q)
		}
	})
}

// parse runs parseQuery on a request for room with rawQuery.
func parse(room, rawQuery string, rooms []string) (query, error) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.URL.RawQuery = rawQuery
	r.SetPathValue("room", room)
	return parseQuery(r, rooms)
}

func checkQuery(t *testing.T, room, rawQuery string, rooms []string, q query) {
	t.Helper()
	if q.room != room || !bus.ValidRoom(room) || len(rooms) > 0 && !slices.Contains(rooms, room) {
		t.Fatalf("%q: room %q accepted (rooms %v)", room, q.room, rooms)
	}
	v, err := url.ParseQuery(rawQuery)
	if err != nil {
		t.Fatalf("%q: malformed query string accepted: %v", rawQuery, err)
	}
	want := int64(DefaultLimit)
	if l := v.Get("limit"); l != "" {
		n, ok := new(big.Int).SetString(l, 10)
		if !ok {
			t.Fatalf("%q: limit %q is no integer, accepted", rawQuery, l)
		}
		switch {
		case n.Cmp(big.NewInt(1)) < 0:
			want = 1
		case n.Cmp(big.NewInt(MaxLimit)) > 0:
			want = MaxLimit
		default:
			want = n.Int64()
		}
	}
	if int64(q.limit) != want {
		t.Fatalf("%q: limit %d, want %d", rawQuery, q.limit, want)
	}
	for name, got := range map[string]*bus.ID{"before": q.before, "after": q.after} {
		raw := v.Get(name)
		id, err := bus.ParseID(raw)
		switch {
		case raw == "" && got != nil, raw != "" && (got == nil || err != nil || id != *got):
			t.Fatalf("%q: %s %v, query has %q", rawQuery, name, got, raw)
		}
	}
	if q.before != nil && q.after != nil {
		t.Fatalf("%q: before and after both accepted", rawQuery)
	}
	// Encoded again, as a client would.
	e := url.Values{"limit": {strconv.Itoa(q.limit)}}
	if q.before != nil {
		e.Set("before", q.before.String())
	}
	if q.after != nil {
		e.Set("after", q.after.String())
	}
	again, err := parse(room, e.Encode(), rooms)
	if err != nil || again.room != q.room || again.limit != q.limit || !sameID(again.before, q.before) || !sameID(again.after, q.after) {
		t.Fatalf("%q: parsed %+v; encoded again %q parses %+v %v", rawQuery, q, e.Encode(), again, err)
	}
}

func sameID(a, b *bus.ID) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }
