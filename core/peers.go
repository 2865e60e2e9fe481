package core

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// peerTable finds the connection for a ref or an address.
type peerTable struct {
	mu     sync.Mutex
	byAddr map[string]*peer // by URI dialed or advertised
	byID   map[string]*peer // by env id, newest connection first
	live   map[string]int   // connections up per env id, for network events
	all    map[*peer]struct{}
	failed map[string]*failure // by URI: recent failed connects, for backoff
	closed bool
}

// failure is a run of failed connects to one address. Until the backoff
// has passed, messages to that address fail at once with the last cause
// instead of dialing again: a dead peer is not hammered.
type failure struct {
	n     int
	until time.Time
	err   error
}

// Reconnect backoff: after the n-th failed connect in a row to an address,
// wait min(backoffBase << (n-1), backoffMax) before dialing it again.
const (
	backoffBase = 100 * time.Millisecond
	backoffMax  = 5 * time.Second
)

func backoff(n int) time.Duration {
	if n > 10 {
		return backoffMax
	}
	return min(backoffBase<<(n-1), backoffMax)
}

func (t *peerTable) init() {
	t.byAddr = map[string]*peer{}
	t.byID = map[string]*peer{}
	t.live = map[string]int{}
	t.all = map[*peer]struct{}{}
	t.failed = map[string]*failure{}
}

// route returns the peer to reach r over, dialing r's env if needed.
func (e *Env) route(r *Ref) (*peer, error) {
	if p := r.route.Load(); p != nil && !p.gone() {
		return p, nil
	}
	t := &e.peers
	t.mu.Lock()
	p := t.byID[r.envID]
	t.mu.Unlock()
	if p != nil && p.gone() {
		p = nil // closed, and not yet removed from the table: connect anew
	}
	if p == nil {
		if r.addr == "" {
			return nil, fmt.Errorf("%w: no connection to client-mode env %s.%s (it is reached only over a connection it opened)", ErrDisconnected, r.envName, r.envID[:min(8, len(r.envID))])
		}
		scheme, _, _, err := parseURI(r.addr)
		if err != nil {
			return nil, fmt.Errorf("bad address %q in ref: %w", r.addr, err)
		}
		if _, err := e.transport(scheme); err != nil {
			return nil, err
		}
		p = e.peerFor(r.addr)
	}
	r.route.Store(p)
	return p, nil
}

// peerFor returns the peer for the env at uri, starting a connection if
// there is none.
func (e *Env) peerFor(uri string) *peer {
	t := &e.peers
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.byAddr[uri]; p != nil && !p.gone() {
		return p
	}
	scheme, addr, _, _ := parseURI(uri)
	p := e.newPeer(scheme, uri)
	if t.closed {
		p.closedFromStart(fmt.Errorf("%w: env %s shut down", ErrEnvStopped, e.name))
		return p
	}
	if f := t.failed[uri]; f != nil {
		if wait := time.Until(f.until); wait > 0 {
			p.closedFromStart(fmt.Errorf("%w (after %d failed attempts, the next in %v)", f.err, f.n, wait.Round(time.Millisecond)))
			return p
		}
	}
	t.byAddr[uri] = p
	t.all[p] = struct{}{}
	e.wg.Add(1)
	go e.dial(p, addr)
	return p
}

func (t *peerTable) recordFailure(uri string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.failed[uri]
	if f == nil {
		if len(t.failed) >= 4096 {
			clear(t.failed) // bounded: addresses come and go
		}
		f = &failure{}
		t.failed[uri] = f
	}
	f.n++
	f.until = time.Now().Add(backoff(f.n))
	f.err = err
}

// registerUp records a peer whose handshake succeeded and reports whether
// it is the first connection to that env.
func (t *peerTable) registerUp(p *peer) (first bool, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false, false
	}
	t.all[p] = struct{}{}
	if p.dialAddr != "" {
		delete(t.failed, p.dialAddr)
	}
	t.byID[p.remoteID] = p
	if p.remoteAddr != "" {
		if old := t.byAddr[p.remoteAddr]; old == nil || old.isClosed() {
			t.byAddr[p.remoteAddr] = p
		}
	}
	p.counted = true
	p.heard.Store(time.Now().UnixNano())
	p.env.connsUp.Add(1)
	t.live[p.remoteID]++
	return t.live[p.remoteID] == 1, true
}

// remove forgets p, and fires OnDisconnected when it was the last
// connection to its env (never while this env shuts down).
func (t *peerTable) remove(p *peer, wasUp bool) {
	t.mu.Lock()
	delete(t.all, p)
	if p.dialAddr != "" && t.byAddr[p.dialAddr] == p {
		delete(t.byAddr, p.dialAddr)
	}
	if p.remoteAddr != "" && t.byAddr[p.remoteAddr] == p {
		delete(t.byAddr, p.remoteAddr)
	}
	last := false
	if p.counted {
		p.counted = false
		if t.byID[p.remoteID] == p {
			delete(t.byID, p.remoteID)
			for q := range t.all { // another connection to the same env takes over
				if q.remoteID == p.remoteID && q.counted {
					t.byID[q.remoteID] = q
				}
			}
		}
		t.live[p.remoteID]--
		if t.live[p.remoteID] == 0 {
			delete(t.live, p.remoteID)
			last = true
		}
	}
	t.mu.Unlock()
	e := p.env
	if wasUp && !e.stopping.Load() {
		e.connsLost.Add(1)
	}
	if last && wasUp && !e.stopping.Load() {
		e.broadcast(item{kind: itemDisconnected, ev: &netEvent{remote: p.label()}})
	}
}

// errGoodbye is what handling a Goodbye returns to the read loop, which
// then closes the connection.
var errGoodbye = errors.New("the peer said goodbye")

// leave is Shutdown's graceful end of every connection that is up, once
// the endpoints have stopped: each writes what is queued on it (the
// answers to the asks the endpoints handled), then a Goodbye, after
// which the peer closes the connection, having read all of it. leave
// waits for that until stop is closed or limit has passed (a peer that
// reads nothing may still send heartbeats); closeAll does the rest.
func (t *peerTable) leave(stop <-chan struct{}, limit time.Duration) {
	t.mu.Lock()
	up := make([]*peer, 0, len(t.all))
	for p := range t.all {
		up = append(up, p)
	}
	t.mu.Unlock()
	up = slices.DeleteFunc(up, func(p *peer) bool { return !p.isUp() })
	if len(up) == 0 {
		return
	}
	expired := make(chan struct{})
	timer := time.AfterFunc(limit, func() { close(expired) })
	defer timer.Stop()
	over := func() bool {
		select {
		case <-stop:
			return true
		case <-expired:
			return true
		default:
			return false
		}
	}
	// Control frames go out before data: the Goodbye is queued once the
	// lanes are empty, so that nothing is written after it.
	for _, p := range up {
		if over() {
			return
		}
		p.out.flush(stop, expired)
	}
	for _, p := range up {
		if frame, err := encodeFrame(&header{kind: kindGoodbye}, nil, maxFrame); err == nil {
			p.control(frame)
		}
	}
	for _, p := range up {
		select {
		case <-p.closed:
		case <-stop:
			return
		case <-expired:
			return
		}
	}
}

// closeAll closes every connection, for Shutdown.
func (t *peerTable) closeAll(cause error) {
	t.mu.Lock()
	t.closed = true
	all := make([]*peer, 0, len(t.all))
	for p := range t.all {
		all = append(all, p)
	}
	t.mu.Unlock()
	for _, p := range all {
		p.close(cause)
	}
}

// broadcast posts a network event to every NetworkObserver endpoint.
func (e *Env) broadcast(it item) {
	e.regMu.Lock()
	obs := make([]*endpoint, 0, len(e.observers))
	for x := range e.observers {
		obs = append(obs, x)
	}
	e.regMu.Unlock()
	for _, x := range obs {
		x.post(it)
	}
}
