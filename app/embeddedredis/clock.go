package embeddedredis

import (
	"strconv"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/alicebob/miniredis/v2/server"
)

// sweepInterval is how often keys that no command touches are removed once
// their time is up. It bounds only how long an expired, untouched key keeps
// its memory: a key is always checked exactly, to the millisecond, just
// before a command that names it runs, and every expired key is removed
// before a command that lists keys (KEYS, SCAN, DBSIZE, INFO, RANDOMKEY).
// A sweep looks at the due keys only, so its cost is a walk over an index,
// not over the data: a quarter second keeps memory tight at a negligible
// CPU cost.
const sweepInterval = 250 * time.Millisecond

// clock makes TTLs run on the wall clock, as in Redis.
//
// miniredis stores a key's TTL as a remaining duration that changes only
// when FastForward walks (and sorts) every key, and its own ClockTTL mode
// does that walk before every command: 5 ms per command at 10,000 keys and
// 76 ms at 90,000 on this project's machine, while the chat role's dedupe
// keys alone reach tens of thousands (one per message for 15 minutes). So
// the clock ages each key on its own instead:
//
//   - after a command runs, every key it named that has a TTL is recorded
//     with the time ("base") as of which miniredis' remaining duration is
//     exact;
//   - before a command runs, every recorded key it names is brought up to
//     date: its remaining TTL less the time since base, deleted when that
//     is zero or less, else written back;
//   - a sweep removes the recorded keys whose deadline has passed.
//
// For "before" and "after" to bracket the command, the clock runs each
// command of a client itself from miniredis' pre-command hook (serialised
// by run; miniredis serialises commands anyway). Two kinds of command pass
// straight through: blocking reads (XREADGROUP BLOCK, BLPOP, ...), which
// wait for other clients' commands and so cannot hold run (they set no
// TTLs), and the commands a Lua script issues, which miniredis sends
// through the same hook under its own lock with a peer of their own; those
// are told apart from clients because every client authenticates first
// (the server requires a password), and the keys they name are recorded
// with the script's.
//
// Hash-field TTLs (HEXPIRE) are not aged: Aurora does not use them.
type clock struct {
	m   *miniredis.Miniredis
	now func() time.Time

	// run is held while a client's command runs, and while keys are
	// brought up to date, so no command changes a TTL in between.
	run sync.Mutex

	// mu guards the fields below. It is held only briefly and never while
	// calling into miniredis: a script's commands take it while miniredis
	// holds its own lock.
	mu        sync.Mutex
	srv       *server.Server // the server the hook is installed on
	tracked   map[dbKey]deadline
	peers     map[*server.Peer]*peerState
	running   bool    // a client's command is running (under run)
	runningDB int     // ... on this database
	inner     []dbKey // keys named by the running command's script

	life     sync.Mutex // guards the sweep's start and stop
	sweeping bool
	quit     chan struct{}
	done     chan struct{}
}

type dbKey struct {
	db  int
	key string
}

// deadline records a key with a TTL: miniredis' remaining duration is exact
// as of base, and the key is due at due.
type deadline struct {
	base, due time.Time
}

// peerState is a client connection's state. Only that connection's goroutine
// reads or writes it (miniredis runs a connection's commands on one
// goroutine), so it needs no lock.
type peerState struct {
	db     int
	multi  bool     // inside MULTI: commands are queued until EXEC
	queued []string // keys of the queued commands
	inside bool     // the clock is running this peer's command right now
}

func newClock(m *miniredis.Miniredis) *clock {
	return &clock{
		m:       m,
		now:     time.Now,
		tracked: map[dbKey]deadline{},
		peers:   map[*server.Peer]*peerState{},
	}
}

// install hooks the clock into the (re)started server and starts the sweep.
func (c *clock) install() {
	srv := c.m.Server()
	c.mu.Lock()
	c.srv = srv
	c.mu.Unlock()
	srv.SetPreHook(c.hook)
	c.life.Lock()
	defer c.life.Unlock()
	if c.sweeping {
		return
	}
	c.sweeping = true
	c.quit, c.done = make(chan struct{}), make(chan struct{})
	go c.sweep(c.quit, c.done)
}

// stop stops the sweep; the hook goes with the server.
func (c *clock) stop() {
	c.life.Lock()
	defer c.life.Unlock()
	if !c.sweeping {
		return
	}
	c.sweeping = false
	close(c.quit)
	<-c.done
}

func (c *clock) sweep(quit, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
			c.run.Lock()
			c.expireDue()
			c.run.Unlock()
		}
	}
}

// hook runs before every command miniredis dispatches. It returns true when
// it ran the command itself.
func (c *clock) hook(p *server.Peer, cmd string, args ...string) bool {
	c.mu.Lock()
	ps := c.peers[p]
	if ps == nil {
		if cmd == "AUTH" || cmd == "HELLO" {
			ps = &peerState{}
			c.peers[p] = ps
			c.mu.Unlock()
			p.OnDisconnect(func() {
				c.mu.Lock()
				delete(c.peers, p)
				c.mu.Unlock()
			})
			return false // miniredis checks the password
		}
		// A command of the running command's script, or of a client that
		// has not authenticated (miniredis answers NOAUTH).
		if c.running {
			for _, k := range keysOf(cmd, args) {
				c.inner = append(c.inner, dbKey{c.runningDB, k})
			}
		}
		c.mu.Unlock()
		return false
	}
	c.mu.Unlock()
	if ps.inside {
		return false // the clock's own dispatch of this command
	}

	db := ps.db
	var keys []string
	switch {
	case cmd == "EXEC":
		keys, ps.queued, ps.multi = ps.queued, nil, false
	case cmd == "DISCARD":
		ps.queued, ps.multi = nil, false
	case cmd == "MULTI":
		ps.multi = true
	case ps.multi && cmd != "WATCH":
		// Only queued now; its keys are brought up to date at EXEC.
		ps.queued = append(ps.queued, keysOf(cmd, args)...)
	default:
		keys = keysOf(cmd, args)
	}

	if !ps.multi && blocking(cmd, args) {
		c.run.Lock()
		c.refresh(db, keys)
		c.run.Unlock()
		return false
	}

	c.run.Lock()
	defer c.run.Unlock()
	if listsKeys[cmd] {
		c.expireDue()
	}
	c.refresh(db, keys)

	c.mu.Lock()
	c.running, c.runningDB, c.inner = true, db, c.inner[:0]
	// Not c.m.Server(): miniredis forgets its server on Close while
	// connections are still finishing their last command.
	srv := c.srv
	c.mu.Unlock()
	ps.inside = true
	srv.Dispatch(p, append([]string{cmd}, args...))
	ps.inside = false
	c.mu.Lock()
	c.running = false
	inner := append([]dbKey(nil), c.inner...)
	c.mu.Unlock()

	for _, k := range keys {
		c.record(dbKey{db, k})
	}
	for _, k := range inner {
		c.record(k)
	}
	c.afterDBCommand(ps, cmd, args)
	return true
}

// afterDBCommand follows the commands that change which database a key
// lives in.
func (c *clock) afterDBCommand(ps *peerState, cmd string, args []string) {
	switch cmd {
	case "SELECT":
		if len(args) == 1 {
			if n, err := strconv.Atoi(args[0]); err == nil && n >= 0 {
				ps.db = n
			}
		}
	case "MOVE":
		if len(args) == 2 {
			if n, err := strconv.Atoi(args[1]); err == nil {
				c.record(dbKey{n, args[0]})
			}
		}
	case "FLUSHALL", "FLUSHDB", "SWAPDB":
		// Forget what moved or vanished; keys found later without a TTL
		// are dropped anyway, and SWAPDB swaps the records with the data.
		c.mu.Lock()
		defer c.mu.Unlock()
		if cmd == "SWAPDB" && len(args) == 2 {
			i, err1 := strconv.Atoi(args[0])
			j, err2 := strconv.Atoi(args[1])
			if err1 == nil && err2 == nil {
				swapped := make(map[dbKey]deadline, len(c.tracked))
				for k, d := range c.tracked {
					switch k.db {
					case i:
						k.db = j
					case j:
						k.db = i
					}
					swapped[k] = d
				}
				c.tracked = swapped
			}
			return
		}
		for k := range c.tracked {
			if cmd == "FLUSHALL" || k.db == ps.db {
				delete(c.tracked, k)
			}
		}
	}
}

// record notes key's TTL as exact now, or forgets the key when it has none.
// Called with run held.
func (c *clock) record(k dbKey) {
	ttl := c.m.DB(k.db).TTL(k.key)
	now := c.now()
	c.mu.Lock()
	if ttl > 0 {
		c.tracked[k] = deadline{base: now, due: now.Add(ttl)}
	} else {
		delete(c.tracked, k)
	}
	c.mu.Unlock()
}

// refresh brings the named keys' TTLs up to date. Called with run held.
func (c *clock) refresh(db int, keys []string) {
	for _, key := range keys {
		k := dbKey{db, key}
		c.mu.Lock()
		d, ok := c.tracked[k]
		c.mu.Unlock()
		if ok {
			c.age(k, d)
		}
	}
}

// expireDue brings every key whose deadline has passed up to date, which
// deletes it. Called with run held.
func (c *clock) expireDue() {
	now := c.now()
	var due []dbKey
	var ds []deadline
	c.mu.Lock()
	for k, d := range c.tracked {
		if !d.due.After(now) {
			due = append(due, k)
			ds = append(ds, d)
		}
	}
	c.mu.Unlock()
	for i, k := range due {
		c.age(k, ds[i])
	}
}

// age takes the time elapsed since d.base off k's TTL, deleting k when
// nothing is left. Called with run held, so no command changes the TTL
// between the read and the write.
func (c *clock) age(k dbKey, d deadline) {
	db := c.m.DB(k.db)
	ttl := db.TTL(k.key)
	now := c.now()
	if ttl <= 0 {
		c.mu.Lock()
		delete(c.tracked, k)
		c.mu.Unlock()
		return
	}
	left := ttl - now.Sub(d.base)
	if left <= 0 {
		db.Del(k.key)
		c.mu.Lock()
		delete(c.tracked, k)
		c.mu.Unlock()
		return
	}
	db.SetTTL(k.key, left)
	c.mu.Lock()
	c.tracked[k] = deadline{base: now, due: now.Add(left)}
	c.mu.Unlock()
}
