package faultproxy

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Faults are the impairments a proxy applies to what it forwards. The
// zero value forwards everything at once. Set applies them to what is
// read from then on: bytes or datagrams already held keep the release
// time they were given.
type Faults struct {
	// Delay is how long each TCP chunk or UDP datagram is held before it
	// is forwarded. Negative counts as zero.
	Delay time.Duration
	// Jitter spreads the delay uniformly over [Delay-Jitter,
	// Delay+Jitter], never below zero.
	Jitter time.Duration
	// Loss is the probability, from 0 to 1, that a UDP datagram is
	// dropped, drawn per datagram and per direction. TCP ignores it: see
	// the package doc.
	Loss float64
	// Seed seeds the random source of Jitter and Loss. Every Set restarts
	// the source from Seed, one stream per direction, so the same
	// traffic sees the same draws.
	Seed uint64
}

// Direction names one way through a proxy, or both.
type Direction int

const (
	// Upstream is from the client to the target.
	Upstream Direction = 1 << iota
	// Downstream is from the target back to the client.
	Downstream
	// Both is Upstream and Downstream.
	Both = Upstream | Downstream
)

// String returns "upstream", "downstream", "both" or, for anything else,
// "none".
func (d Direction) String() string {
	switch d {
	case Upstream:
		return "upstream"
	case Downstream:
		return "downstream"
	case Both:
		return "both"
	}
	return "none"
}

// stream is the index of a single direction's random stream.
func (d Direction) stream() int {
	if d == Downstream {
		return 1
	}
	return 0
}

// event is what a proxy reports to a test hook: a point in its work that
// a test must wait for, since nothing outside the proxy can observe it.
type event int

const (
	evHeld      event = iota // a TCP pump waits, its direction stopped: nothing more goes that way
	evHeldConn               // an accepted TCP connection waits for Heal before dialing
	evForwarded              // a UDP datagram was sent on
	evDropped                // a UDP datagram was dropped
)

// config is what tests may change; the exported constructors use the
// defaults.
type config struct {
	hook        func(event, Direction) // nil outside tests; must not block
	maxClients  int                    // UDP client mappings
	maxHeld     int                    // UDP datagrams held for delay
	maxHeldSize int                    // UDP bytes held for delay
}

func defaultConfig() config {
	return config{maxClients: 1024, maxHeld: 4096, maxHeldSize: 1 << 20}
}

func (c *config) trace(ev event, d Direction) {
	if c.hook != nil {
		c.hook(ev, d)
	}
}

// state is the faults and stops both proxies share, safe for concurrent
// use. A waiter re-checks after changed is closed: stall, partition and
// heal each close it and make a new one. Set wakes no one: a chunk's or
// datagram's hold is drawn once, when it is read.
type state struct {
	mu          sync.Mutex
	f           Faults
	rng         [2]*rand.Rand // per direction: one direction's traffic does not shift the other's draws
	stalled     Direction
	partitioned bool
	changed     chan struct{}
}

func newState() *state {
	s := &state{changed: make(chan struct{})}
	s.set(Faults{})
	return s
}

// maxHold bounds Delay and Jitter, about 36 years, so that no sum or
// draw of them overflows.
const maxHold = 1 << 60

func (s *state) set(f Faults) {
	f.Delay = min(max(f.Delay, 0), maxHold)
	f.Jitter = min(max(f.Jitter, 0), maxHold)
	f.Loss = min(max(f.Loss, 0), 1)
	s.mu.Lock()
	s.f = f
	s.rng[0] = rand.New(rand.NewPCG(f.Seed, 1))
	s.rng[1] = rand.New(rand.NewPCG(f.Seed, 2))
	s.mu.Unlock()
}

// stall adds d to the stalled directions.
func (s *state) stall(d Direction) { s.update(func() { s.stalled |= d & Both }) }

// partition stops both directions until heal.
func (s *state) partition() { s.update(func() { s.partitioned = true }) }

// heal clears the partition and every stall.
func (s *state) heal() { s.update(func() { s.partitioned, s.stalled = false, 0 }) }

// flowing reports whether direction d may be forwarded; s.mu is held.
func (s *state) flowing(d Direction) bool { return !s.partitioned && s.stalled&d == 0 }

// update changes the stops under the lock and wakes every waiter.
func (s *state) update(change func()) {
	s.mu.Lock()
	change()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// delay draws the hold for one chunk or datagram going in direction d.
func (s *state) delay(d Direction) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.drawDelay(d)
}

func (s *state) drawDelay(d Direction) time.Duration {
	hold := s.f.Delay
	if j := s.f.Jitter; j > 0 {
		hold += time.Duration(s.rng[d.stream()].Int64N(2*int64(j)+1)) - j
	}
	return max(hold, 0)
}

// fate decides a datagram going in direction d: dropped, or held for the
// returned delay. A partition drops without a draw.
func (s *state) fate(d Direction) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.partitioned {
		return 0, true
	}
	if s.f.Loss > 0 && s.rng[d.stream()].Float64() < s.f.Loss {
		return 0, true
	}
	return s.drawDelay(d), false
}

func (s *state) isPartitioned() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.partitioned
}

// await blocks until ok, called under the lock, reports true; it returns
// false if done is closed first. If it has to wait, it calls onWait once.
func (s *state) await(done <-chan struct{}, ok func() bool, onWait func()) bool {
	for waited := false; ; waited = true {
		s.mu.Lock()
		pass, changed := ok(), s.changed
		s.mu.Unlock()
		if pass {
			return true
		}
		if !waited && onWait != nil {
			onWait()
		}
		select {
		case <-changed:
		case <-done:
			return false
		}
	}
}

// backoff paces the retries of a failing accept or read as net/http's
// Server does: 5 ms, doubling to 1 s, back to the start after a success.
type backoff struct{ d time.Duration }

// wait sleeps the next step; false if done is closed first.
func (b *backoff) wait(done <-chan struct{}) bool {
	b.d = min(max(2*b.d, 5*time.Millisecond), time.Second)
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

func (b *backoff) reset() { b.d = 0 }
