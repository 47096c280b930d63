package bus

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ID is a message id: a Redis stream entry id "<ms>-<seq>". IDs compare
// numerically, part by part.
type ID struct {
	Ms  uint64
	Seq uint64
}

// ParseID parses "<ms>-<seq>". A bare "<ms>" is not accepted: ids on the
// wire are always complete.
func ParseID(s string) (ID, error) {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok {
		return ID{}, fmt.Errorf("message id %q is not <ms>-<seq>", s)
	}
	m, err1 := strconv.ParseUint(ms, 10, 64)
	q, err2 := strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil || ms == "" || seq == "" || ms[0] == '+' || seq[0] == '+' {
		return ID{}, fmt.Errorf("message id %q is not <ms>-<seq>", s)
	}
	return ID{Ms: m, Seq: q}, nil
}

// String formats the id as Redis does.
func (id ID) String() string {
	return strconv.FormatUint(id.Ms, 10) + "-" + strconv.FormatUint(id.Seq, 10)
}

// Compare returns -1, 0 or +1 as id is before, equal to or after o.
func (id ID) Compare(o ID) int {
	switch {
	case id.Ms < o.Ms:
		return -1
	case id.Ms > o.Ms:
		return 1
	case id.Seq < o.Seq:
		return -1
	case id.Seq > o.Seq:
		return 1
	}
	return 0
}

// IsZero reports whether id is the zero id "0-0".
func (id ID) IsZero() bool { return id.Ms == 0 && id.Seq == 0 }

// Next returns the id right after id; false for the largest id, which has
// none (then id itself is returned).
func (id ID) Next() (ID, bool) {
	switch {
	case id.Seq < math.MaxUint64:
		return ID{Ms: id.Ms, Seq: id.Seq + 1}, true
	case id.Ms < math.MaxUint64:
		return ID{Ms: id.Ms + 1}, true
	}
	return id, false
}

// Prev returns the id right before id; false for 0-0, which has none (then
// id itself is returned).
func (id ID) Prev() (ID, bool) {
	switch {
	case id.Seq > 0:
		return ID{Ms: id.Ms, Seq: id.Seq - 1}, true
	case id.Ms > 0:
		return ID{Ms: id.Ms - 1, Seq: math.MaxUint64}, true
	}
	return id, false
}

// MaxID is the largest message id, the inclusive form of XRANGE's "+".
func MaxID() ID { return ID{Ms: math.MaxUint64, Seq: math.MaxUint64} }

// parseGroupID parses an id a server reports for a consumer group
// (last-delivered-id). A real Redis always reports "<ms>-<seq>"; the
// embedded Redis (miniredis) keeps the id given at XGROUP CREATE as it was
// given, so a group created at "0" reports "0". A bare "<ms>" is read as
// "<ms>-0", as Redis itself reads an incomplete id at XGROUP CREATE. This is
// the one place that knows it; TestGroupProgressAgrees in this package runs
// against both servers.
func parseGroupID(s string) (ID, error) {
	if id, err := ParseID(s); err == nil {
		return id, nil
	}
	ms, err := strconv.ParseUint(s, 10, 64)
	if err != nil || s == "" || s[0] == '+' {
		return ID{}, fmt.Errorf("consumer group id %q is not <ms>-<seq>", s)
	}
	return ID{Ms: ms}, nil
}
