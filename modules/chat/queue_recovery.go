package chat

import (
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/modules/chat/history"
)

// A connection's replayed frames, queued or being written, are at most
// replayMaxFrames frames and replayMaxBytes bytes. Live frames are encoded
// once per replica and shared by every member's queue; a replay is the
// connection's own copy, so it is what a client that asks for replays and
// never reads could pile up. One whole replay of typical messages (a few
// hundred bytes each) fits.
const (
	replayMaxFrames = history.MaxSince
	replayMaxBytes  = 1 << 20
)

// replayRoom is what is left of the replay budget: how many frames and
// bytes a replay could be given now (see endRecovery), for asking the
// history for no more than that.
func (q *sendQueue) replayRoom() (frames, bytes int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return max(replayMaxFrames-q.replayFrames, 0), max(replayMaxBytes-q.replayBytes, 0)
}

// beginRecovery starts buffering room's live frames.
func (q *sendQueue) beginRecovery(room string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.recovering == nil {
		q.recovering = map[string][]item{}
	}
	if _, ok := q.recovering[room]; !ok {
		q.recovering[room] = nil
	}
}

// endRecovery ends buffering room's live frames. It queues head (the
// answer to the join, built with whether the replay is complete, when not
// nil), then the replay as far as the replay budget admits it, then the
// buffered live frames that are not among the replayed ones (message ids
// after the last one replayed, or after since; frames without an id
// always).
//
// The replay is one entry of the queue, written back to back as a
// presence batch is, so it never takes the room of live frames; its frames
// count in the connection's replay budget (replayMaxFrames, replayMaxBytes)
// until they are written. What does not fit is not queued: the replay is
// then not complete, and the client pages on through the history API. So
// however often a client asks for replays without reading them, it holds
// no more than the budget; the live frames behave as they always did (a
// client that lets them fill the queue for chat.slow_timeout is cut with
// 4008).
func (q *sendQueue) endRecovery(room string, since bus.ID, replay []history.Frame, complete bool, head func(complete bool) []byte) {
	q.mu.Lock()
	buf := q.recovering[room]
	delete(q.recovering, room)
	if len(q.recovering) == 0 {
		// Every connection recovers once (the welcome's hold): keeping
		// the empty map would cost each idle one its header.
		q.recovering = nil
	}
	if q.dropped {
		q.mu.Unlock()
		return
	}
	free, budget := replayMaxFrames-q.replayFrames, replayMaxBytes-q.replayBytes
	k, size := 0, 0
	for k < len(replay) && k < free && size+len(replay[k].JSON) <= budget {
		size += len(replay[k].JSON)
		k++
	}
	if k < len(replay) {
		complete = false
	}
	if head != nil {
		q.items = append(q.items, item{frame: head(complete)})
	}
	last := since
	if k > 0 {
		frames := make([][]byte, k)
		for i, f := range replay[:k] {
			frames[i] = f.JSON
			if f.ID.Compare(last) > 0 {
				last = f.ID
			}
		}
		q.items = append(q.items, item{frames: frames, replay: true})
		q.replayFrames += k
		q.replayBytes += size
	}
	for _, it := range buf {
		if it.id.IsZero() || it.id.Compare(last) > 0 {
			q.items = append(q.items, it)
		}
	}
	start := q.needWriterLocked()
	q.mu.Unlock()
	if start {
		q.startWriter()
	}
}
