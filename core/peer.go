package core

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

type peerState uint8

const (
	peerConnecting peerState = iota // dialing and handshaking: frames wait in the outbox
	peerUp                          // the writer writes the outbox
	peerClosed                      // gone for good: a new message makes a new peer
)

// peer is one connection to another env, with its outbox. It carries
// messages both ways for every endpoint of both envs.
type peer struct {
	env      *Env
	scheme   string
	dialAddr string // URI dialed; "" for an accepted connection
	out      *outbox

	// Set once the handshake is done, before state becomes peerUp.
	conn       Conn
	remoteID   string
	remoteName string
	remoteAddr string // the peer's advertised URI; "" for a client-mode peer
	connAddr   string // scheme://conn.RemoteAddr()

	mu        sync.Mutex
	state     peerState
	calls     map[uint64]*call      // our asks in flight over this peer
	inCalls   map[uint64]*inCall    // the peer's asks being handled here
	windows   map[string]*window    // flow control of the peer's messages to our endpoints
	streams   map[streamKey]*Stream // streams open over this connection (streamconn.go)
	accepted  int                   // streams in streams that the peer opened
	abandoned map[uint64]struct{}   // opens given up on, not yet answered (giveUpCall)
	closeErr  error                 // why it closed, wrapping ErrDisconnected or ErrEnvStopped
	counted   bool                  // counted in peerTable.live (it came up)
	closed    chan struct{}         // closed by close: releases everything waiting on the peer
	ready     chan struct{}         // closed by up: conn is set and carries traffic

	// Liveness (liveness.go): frames counted each way, and what the last
	// check saw. sent and recvd are atomic; the rest belong to the timer.
	sent, recvd         atomic.Uint64
	bytesIn, bytesOut   atomic.Uint64 // frame bytes each way (Env.Stats)
	heard               atomic.Int64  // Unix ns of the last check that saw frames come in, or of the handshake
	lastSent, lastRecvd uint64
	quiet               time.Duration // how long nothing came in
	beat                *time.Timer

	// sendCtxs holds the Context of the sends from this peer to each
	// endpoint: it is immutable, so one serves them all. Only the read
	// loop touches it.
	sendCtxs map[*endpoint]*Context
}

func (e *Env) newPeer(scheme, dialAddr string) *peer {
	p := &peer{env: e, scheme: scheme, dialAddr: dialAddr, calls: map[uint64]*call{}, inCalls: map[uint64]*inCall{}, closed: make(chan struct{}), ready: make(chan struct{})}
	p.out = newOutbox(p)
	return p
}

// sendContext returns the shared Context for sends from p to x.
func (p *peer) sendContext(x *endpoint) *Context {
	if c := p.sendCtxs[x]; c != nil {
		return c
	}
	if p.sendCtxs == nil || len(p.sendCtxs) >= 1024 {
		p.sendCtxs = map[*endpoint]*Context{} // bounded: endpoints come and go
	}
	c := &Context{ep: x, sender: p.label(), from: p}
	p.sendCtxs[x] = c
	return c
}

// label names the peer in events, Context.Sender and logs.
func (p *peer) label() string {
	if p.remoteAddr != "" {
		return p.remoteAddr
	}
	if p.connAddr != "" {
		return p.connAddr
	}
	return p.dialAddr
}

// control queues a control frame (outbox.go): it never waits.
func (p *peer) control(frame []byte) error {
	return p.out.control(frame)
}

// data queues a send or an ask for endpoint to on lane, waiting for
// credit and room until done is closed or the deadline passes (it then
// returns errDone), or the peer closes. target and typ describe a send, for dead letters.
func (p *peer) data(lane uint64, to string, frame []byte, target, typ string, done <-chan struct{}, deadline time.Time) error {
	err := p.out.queue(lane, to, outFrame{b: frame, target: target, typ: typ}, done, deadline)
	if err != nil {
		releaseFrame(frame)
	}
	return err
}

// reply queues the answer to the peer's ask id: ahead of data when it is
// one frame, else on a lane of its own, waiting for room until the peer
// closes.
func (p *peer) reply(id uint64, frame []byte) error {
	if len(frame) <= maxFrame {
		return p.control(frame)
	}
	key := id << 2 // a multiple of 4: endpoint lanes are odd, stream lanes 2 more than a multiple of 4
	if key == 0 {
		key = 4
	}
	return p.data(key, "", frame, "", "", nil, time.Time{})
}

func (p *peer) addCall(id uint64, c *call) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == peerClosed {
		return p.closeErr
	}
	p.calls[id] = c
	return nil
}

func (p *peer) takeCall(id uint64) *call {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.calls[id]
	delete(p.calls, id)
	return c
}

// maxAbandoned bounds the opens a peer remembers having given up on.
const maxAbandoned = 4096

// giveUpCall forgets ask id, which its asker gave up on; it reports
// whether the ask was still in flight. An open is remembered
// (abandoned), so that a Reply that comes anyway aborts the stream the
// peer accepted: its Cancel may overtake the Open, which travels behind
// other data.
func (p *peer) giveUpCall(id uint64, open bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.calls[id]; !ok {
		return false
	}
	delete(p.calls, id)
	if open && p.state != peerClosed && len(p.abandoned) < maxAbandoned {
		if p.abandoned == nil {
			p.abandoned = map[uint64]struct{}{}
		}
		p.abandoned[id] = struct{}{}
	}
	return true
}

// takeAnswered is takeCall for a Reply or Fail: when no ask waits for it,
// it also reports whether it answers an open given up on (giveUpCall).
func (p *peer) takeAnswered(id uint64) (c *call, abandonedOpen bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c = p.calls[id]; c != nil {
		delete(p.calls, id)
		return c, false
	}
	if _, ok := p.abandoned[id]; ok {
		delete(p.abandoned, id)
		return nil, true
	}
	return nil, false
}

// addInCall records an ask of the peer's being handled. It returns false
// when the ask is not to be handled: with an error when the peer reused
// an id in flight, with nil when p has closed.
func (p *peer) addInCall(ic *inCall) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, dup := p.inCalls[ic.id]; dup {
		return false, fmt.Errorf("%w: ask id %d reused while in flight", ErrProtocol, ic.id)
	}
	if p.state == peerClosed {
		return false, nil
	}
	p.inCalls[ic.id] = ic
	return true, nil
}

func (p *peer) takeInCall(id uint64) {
	p.mu.Lock()
	delete(p.inCalls, id)
	p.mu.Unlock()
}

// cancelRemote tells the peer this env gave up on ask id (best effort).
func (p *peer) cancelRemote(id uint64) {
	frame, err := encodeFrame(&header{kind: kindCancel, id: id}, nil, p.env.maxMsg)
	if err == nil {
		p.control(frame)
	}
}

// sendFail answers the peer's ask id with err. from is the URI of the
// endpoint that failed, or "" when the env itself answers.
func (p *peer) sendFail(id uint64, from string, err error) {
	msg := errorText(err)
	frame, ferr := encodeFrame(&header{kind: kindFail, id: id, to: from, code: codeOf(err), message: msg}, nil, max(p.env.maxMsg, 8192))
	if ferr == nil {
		p.control(frame)
	}
}

// isUp reports whether p carries traffic now.
func (p *peer) isUp() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state == peerUp
}

// up makes a handshaken connection carry traffic: it starts the writer,
// which writes what queued meanwhile in order, and the heartbeats. It
// returns false if the peer was closed meanwhile.
func (p *peer) up() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == peerClosed {
		return false
	}
	p.state = peerUp
	close(p.ready)
	p.env.wg.Add(1)
	go p.out.run(p.conn)
	p.out.signal()
	if e := p.env; e.heartbeat > 0 {
		p.beat = time.AfterFunc(e.heartbeat, p.check)
	}
	return true
}

// close shuts the peer down for cause: queued sends become dead letters,
// asks in flight fail with cause, asks from the peer are canceled. The
// first cause wins; later calls do nothing. It never waits for the
// network: closing the Conn releases the writer.
func (p *peer) close(cause error) {
	p.mu.Lock()
	if p.state == peerClosed {
		p.mu.Unlock()
		return
	}
	wasUp := p.state == peerUp
	p.state = peerClosed
	p.closeErr = cause
	calls, inCalls, streams := p.calls, p.inCalls, p.streams
	p.calls, p.inCalls, p.windows, p.streams, p.accepted, p.abandoned = map[uint64]*call{}, map[uint64]*inCall{}, nil, nil, 0, nil
	conn, beat := p.conn, p.beat
	close(p.closed)
	p.mu.Unlock()

	left := p.out.close(cause)
	if beat != nil {
		beat.Stop()
	}
	e := p.env
	e.peers.remove(p, wasUp)
	for _, f := range left {
		if f.target != "" {
			e.deadLetter(DeadLetter{Target: f.target, Type: f.typ, Reason: cause})
		}
	}
	for _, c := range calls {
		c.deliver(nil, fmt.Errorf("rpcenv: ask %s: %w", c.target, cause))
	}
	for _, c := range inCalls {
		c.end()
	}
	failStreams(streams, cause)
	// Last: a transport's Close may take a moment (a graceful close on a
	// peer that does not answer), and nothing above needs to wait for it.
	if conn != nil {
		conn.Close()
	}
}

// closedFromStart marks a peer that is never connected (the env is shutting down,
// or its address is in backoff) as closed for cause, before anyone holds
// it: every message to it fails with cause.
func (p *peer) closedFromStart(cause error) {
	p.state, p.closeErr = peerClosed, cause
	close(p.closed)
	p.out.close(cause)
}

// awaitReady waits until p carries traffic, p closes (its error), or ctx
// ends (ctx's error).
func (p *peer) awaitReady(ctx context.Context) error {
	select {
	case <-p.ready:
		return nil // even if ctx ended too
	default:
	}
	select {
	case <-p.ready:
		return nil
	case <-p.closed:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.closeErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gone reports whether the peer is closed, without a lock (for the
// message path).
func (p *peer) gone() bool {
	select {
	case <-p.closed:
		return true
	default:
		return false
	}
}

func (p *peer) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state == peerClosed
}
