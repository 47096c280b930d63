package bus

import (
	"context"
	"fmt"
	"math"

	"github.com/redis/rueidis"
)

// TrimResult tells what Trim did or, with dryRun, would do.
type TrimResult struct {
	// LengthBefore is the stream's length before trimming.
	LengthBefore int64 `json:"lengthBefore"`
	// SafeID is the first id some consumer group still needs: every entry
	// before it is acknowledged by every group.
	SafeID string `json:"safeId,omitempty"`
	// MinID is the XTRIM MINID threshold used: entries before it went.
	MinID   string `json:"minId,omitempty"`
	Trimmed int64  `json:"trimmed"`
	// Reason says why nothing (more) could be trimmed, if so.
	Reason string `json:"reason,omitempty"`
	DryRun bool   `json:"dryRun,omitempty"`
}

// Trim removes from the stream at most limit entries that every consumer
// group has acknowledged, always keeping the newest keepRecent entries (for
// reconnect recovery). It never removes an entry that is pending or not yet
// delivered to some group (it trims below TrimPoint only); with no group on
// the stream it removes nothing, since nothing is known to be stored.
func Trim(ctx context.Context, c rueidis.Client, stream string, keepRecent, limit int64, dryRun bool) (TrimResult, error) {
	res := TrimResult{DryRun: dryRun}
	if limit <= 0 {
		limit = math.MaxInt32
	}
	var err error
	if res.LengthBefore, err = c.Do(ctx, c.B().Xlen().Key(stream).Build()).AsInt64(); err != nil {
		return res, fmt.Errorf("length of %s: %w", stream, err)
	}
	excess := res.LengthBefore - keepRecent
	if excess <= 0 {
		res.Reason = fmt.Sprintf("the stream holds %d entries, not more than the %d kept for recovery", res.LengthBefore, keepRecent)
		return res, nil
	}
	safe, ok, err := TrimPoint(ctx, c, stream)
	if err != nil {
		return res, err
	}
	if !ok {
		res.Reason = "no consumer group reads the stream, so no entry is known to be stored"
		return res, nil
	}
	res.SafeID = safe.String()
	n := min(excess, limit)
	es, err := c.Do(ctx, c.B().Xrange().Key(stream).Start("-").End("("+safe.String()).Count(n).Build()).ToArray()
	if err != nil {
		return res, fmt.Errorf("find entries of %s to trim: %w", stream, err)
	}
	if len(es) == 0 {
		res.Reason = "the oldest entry is not acknowledged yet"
		return res, nil
	}
	last, err := es[len(es)-1].AsXRangeSlice()
	if err != nil {
		return res, fmt.Errorf("find entries of %s to trim: %w", stream, err)
	}
	lastID, err := ParseID(last.ID)
	if err != nil {
		return res, fmt.Errorf("find entries of %s to trim: %w", stream, err)
	}
	// lastID is below safe, so it is not the largest id and has a next.
	minID, _ := lastID.Next()
	res.MinID = minID.String()
	if dryRun {
		res.Trimmed = int64(len(es))
		return res, nil
	}
	if res.Trimmed, err = c.Do(ctx, c.B().Xtrim().Key(stream).Minid().Exact().Threshold(res.MinID).Build()).AsInt64(); err != nil {
		return res, fmt.Errorf("trim %s before %s: %w", stream, res.MinID, err)
	}
	return res, nil
}
