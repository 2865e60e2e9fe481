package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

type peerState uint8

const (
	peerConnecting peerState = iota // dialing and handshaking: frames queue up
	peerUp                          // frames go straight to the connection
	peerClosed                      // gone for good: a new message makes a new peer
)

// queued is a frame waiting for its connection to come up.
type queued struct {
	lane   uint64
	frame  []byte
	target string // for dead letters ("" for asks and replies, whose calls fail instead)
	typ    string
}

// peer is one connection to another env, and the outbox in front of it.
// It carries messages both ways for every endpoint of both envs.
type peer struct {
	env      *Env
	scheme   string
	dialAddr string // URI dialed; "" for an accepted connection

	// Set once the handshake is done, before state becomes peerUp.
	conn       Conn
	remoteID   string
	remoteName string
	remoteAddr string // the peer's advertised URI; "" for a client-mode peer
	connAddr   string // scheme://conn.RemoteAddr()

	mu       sync.Mutex
	state    peerState
	queue    []queued
	calls    map[uint64]*call   // our asks in flight over this peer
	inCalls  map[uint64]*inCall // the peer's asks being handled here
	closeErr error              // why it closed, wrapping ErrDisconnected or ErrEnvStopped
	counted  bool               // counted in peerTable.live (it came up)

	// Heartbeats: frames counted each way, and what the last check saw.
	// sent and recvd are atomic; the rest belong to the beat timer.
	sent, recvd         atomic.Uint64
	lastSent, lastRecvd uint64
	quiet               time.Duration // how long nothing came in
	beat                *time.Timer

	// sendCtxs holds the Context of the sends from this peer to each
	// endpoint: it is immutable, so one serves them all. Only the read
	// loop touches it.
	sendCtxs map[*endpoint]*Context
}

// sendContext returns the shared Context for sends from p to x.
func (p *peer) sendContext(x *endpoint) *Context {
	if c := p.sendCtxs[x]; c != nil {
		return c
	}
	if p.sendCtxs == nil || len(p.sendCtxs) >= 1024 {
		p.sendCtxs = map[*endpoint]*Context{} // bounded: endpoints come and go
	}
	c := &Context{ep: x, sender: p.label()}
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

// write sends frame on lane, or queues it while the connection is being
// set up. target and typ describe a send, for dead letters.
func (p *peer) write(lane uint64, frame []byte, target, typ string) error {
	p.mu.Lock()
	switch p.state {
	case peerConnecting:
		p.queue = append(p.queue, queued{lane, frame, target, typ})
		p.mu.Unlock()
		return nil
	case peerClosed:
		err := p.closeErr
		p.mu.Unlock()
		return err
	}
	conn := p.conn
	p.mu.Unlock()
	p.sent.Add(1)
	if err := conn.WriteFrame(lane, frame); err != nil {
		err = fmt.Errorf("%w: write to %s: %v", ErrDisconnected, p.label(), err)
		p.close(err)
		return err
	}
	return nil
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

func (p *peer) takeInCall(id uint64) {
	p.mu.Lock()
	delete(p.inCalls, id)
	p.mu.Unlock()
}

// cancelRemote tells the peer this env gave up on ask id (best effort).
func (p *peer) cancelRemote(id uint64) {
	frame, err := encodeFrame(&header{kind: kindCancel, id: id}, nil, p.env.maxMsg)
	if err == nil {
		p.write(0, frame, "", "")
	}
}

// sendFail answers the peer's ask id with err. from is the URI of the
// endpoint that failed, or "" when the env itself answers.
func (p *peer) sendFail(id uint64, from string, err error) {
	msg := err.Error()
	if len(msg) > 4096 {
		msg = msg[:4096] + "..."
	}
	frame, ferr := encodeFrame(&header{kind: kindFail, id: id, to: from, code: codeOf(err), message: msg}, nil, max(p.env.maxMsg, 8192))
	if ferr == nil {
		p.write(0, frame, "", "")
	}
}

// up makes a handshaken connection carry traffic: it flushes the queue in
// order and registers the peer. It returns false if the peer was closed
// meanwhile.
func (p *peer) up() bool {
	p.mu.Lock()
	if p.state == peerClosed {
		p.mu.Unlock()
		return false
	}
	for i, q := range p.queue {
		if err := p.conn.WriteFrame(q.lane, q.frame); err != nil {
			p.queue = p.queue[i:]
			p.mu.Unlock()
			p.close(fmt.Errorf("%w: write to %s: %v", ErrDisconnected, p.label(), err))
			return false
		}
	}
	p.queue = nil
	p.state = peerUp
	if e := p.env; e.heartbeat > 0 {
		p.beat = time.AfterFunc(e.heartbeat, p.check)
	}
	p.mu.Unlock()
	return true
}

// check runs every HeartbeatInterval while the peer is up: it declares
// the peer dead after PeerTimeout without a frame in, and sends a
// heartbeat when nothing went out since the last check.
func (p *peer) check() {
	e := p.env
	if r := p.recvd.Load(); r != p.lastRecvd {
		p.lastRecvd, p.quiet = r, 0
	} else {
		p.quiet += e.heartbeat
	}
	if p.quiet >= e.peerTimeout {
		p.close(fmt.Errorf("%w: nothing from %s for %v (Config.PeerTimeout)", ErrDisconnected, p.label(), p.quiet))
		return
	}
	if p.sent.Load() == p.lastSent {
		if frame, err := encodeFrame(&header{kind: kindBeat}, nil, e.maxMsg); err == nil {
			p.write(0, frame, "", "")
		}
	}
	p.lastSent = p.sent.Load()
	p.mu.Lock()
	if p.state == peerUp {
		p.beat.Reset(e.heartbeat)
	}
	p.mu.Unlock()
}

// close shuts the peer down for cause: queued sends become dead letters,
// asks in flight fail with cause, asks from the peer are canceled. The
// first cause wins; later calls do nothing.
func (p *peer) close(cause error) {
	p.mu.Lock()
	if p.state == peerClosed {
		p.mu.Unlock()
		return
	}
	wasUp := p.state == peerUp
	p.state = peerClosed
	p.closeErr = cause
	queue, calls, inCalls := p.queue, p.calls, p.inCalls
	p.queue, p.calls, p.inCalls = nil, map[uint64]*call{}, map[uint64]*inCall{}
	conn, beat := p.conn, p.beat
	p.mu.Unlock()

	if beat != nil {
		beat.Stop()
	}
	if conn != nil {
		conn.Close()
	}
	e := p.env
	e.peers.remove(p, wasUp)
	for _, q := range queue {
		if q.target != "" {
			e.deadLetter(DeadLetter{Target: q.target, Type: q.typ, Reason: cause})
		}
	}
	for _, c := range calls {
		c.deliver(nil, fmt.Errorf("rpcenv: ask %s: %w", c.target, cause))
	}
	for _, c := range inCalls {
		c.end()
	}
}

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

func (e *Env) newPeer(scheme, dialAddr string) *peer {
	return &peer{env: e, scheme: scheme, dialAddr: dialAddr, calls: map[uint64]*call{}, inCalls: map[uint64]*inCall{}}
}

// route returns the peer to reach r over, dialing r's env if needed.
func (e *Env) route(r *Ref) (*peer, error) {
	if p := r.route.Load(); p != nil {
		p.mu.Lock()
		alive := p.state != peerClosed
		p.mu.Unlock()
		if alive {
			return p, nil
		}
	}
	t := &e.peers
	t.mu.Lock()
	p := t.byID[r.envID]
	t.mu.Unlock()
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
	if p := t.byAddr[uri]; p != nil {
		return p
	}
	scheme, addr, _, _ := parseURI(uri)
	p := e.newPeer(scheme, uri)
	if t.closed {
		p.state = peerClosed
		p.closeErr = fmt.Errorf("%w: env %s shut down", ErrEnvStopped, e.name)
		return p
	}
	if f := t.failed[uri]; f != nil {
		if wait := time.Until(f.until); wait > 0 {
			p.state = peerClosed
			p.closeErr = fmt.Errorf("%w (after %d failed attempts, the next in %v)", f.err, f.n, wait.Round(time.Millisecond))
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
	t.live[p.remoteID]++
	return t.live[p.remoteID] == 1, true
}

func (p *peer) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state == peerClosed
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
	if last && wasUp && !e.stopping.Load() {
		e.broadcast(item{kind: itemDisconnected, ev: &netEvent{remote: p.label()}})
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

// dial connects p, runs the handshake, then reads from the connection
// until it breaks. It owns p's connection.
func (e *Env) dial(p *peer, addr string) {
	defer e.wg.Done()
	t, err := e.transport(p.scheme)
	var conn Conn
	if err == nil {
		ctx, cancel := context.WithTimeout(e.ctx, e.connectTimeout)
		conn, err = t.Dial(ctx, addr, e.connOptions())
		if err == nil {
			err = e.handshake(ctx, p, conn, true)
		}
		cancel()
	}
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		if e.stopping.Load() {
			err = fmt.Errorf("%w: env %s shut down", ErrEnvStopped, e.name)
		} else if !errors.Is(err, ErrUnauthenticated) && !errors.Is(err, ErrDisconnected) {
			err = fmt.Errorf("%w: %v", ErrDisconnected, err)
		}
		err = fmt.Errorf("connect to %s: %w", p.dialAddr, err)
		e.peers.recordFailure(p.dialAddr, err)
		p.close(err)
		if !e.stopping.Load() {
			e.log.Warn("rpcenv: connect failed", "peer", p.dialAddr, "err", err)
			e.broadcast(item{kind: itemNetworkError, ev: &netEvent{remote: p.dialAddr, err: err}})
		}
		return
	}
	e.serve(p)
}

// acceptLoop accepts connections until the listener closes.
func (e *Env) acceptLoop(l Listener) {
	defer e.wg.Done()
	for {
		conn, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && !e.stopping.Load() {
				e.log.Error("rpcenv: accept failed; no longer accepting connections", "listen", e.addr, "err", err)
			}
			return
		}
		e.peers.mu.Lock()
		closed := e.peers.closed
		if !closed {
			e.wg.Add(1)
		}
		e.peers.mu.Unlock()
		if closed {
			conn.Close()
			return
		}
		go e.accept(conn)
	}
}

// accept runs the handshake of an accepted connection, then serves it.
func (e *Env) accept(conn Conn) {
	defer e.wg.Done()
	p := e.newPeer("", "")
	if scheme, _, _, err := parseURI(e.addr); err == nil {
		p.scheme = scheme
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.handshakeTimeout)
	err := e.handshake(ctx, p, conn, false)
	cancel()
	if err != nil {
		conn.Close()
		if !e.stopping.Load() {
			e.log.Warn("rpcenv: refused connection", "from", p.scheme+"://"+conn.RemoteAddr(), "err", err)
		}
		return
	}
	e.serve(p)
}

// serve makes p live, then reads frames until the connection breaks.
func (e *Env) serve(p *peer) {
	first, ok := e.peers.registerUp(p)
	if !ok {
		p.close(fmt.Errorf("%w: env %s shut down", ErrEnvStopped, e.name))
		return
	}
	if first {
		e.broadcast(item{kind: itemConnected, ev: &netEvent{remote: p.label()}})
	}
	if !p.up() {
		return
	}
	var env envelope
	names := names{}
	bc, buffered := p.conn.(BufferedConn)
	for {
		frame, err := p.conn.ReadFrame()
		if err != nil {
			if errors.Is(err, ErrMessageTooLarge) {
				e.log.Warn("rpcenv: peer sent a frame over the limit; closing the connection", "peer", p.label(), "err", err)
			}
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: %s closed the connection", ErrDisconnected, p.label())
			} else {
				err = fmt.Errorf("%w: read from %s: %v", ErrDisconnected, p.label(), err)
			}
			p.close(err)
			return
		}
		p.recvd.Add(1)
		if err := decodeEnvelopeNames(frame, &env, names); err != nil {
			e.protocolError(p, err)
			return
		}
		if err := e.handle(p, &env); err != nil {
			e.protocolError(p, err)
			return
		}
		if (env.Kind == kindReply || env.Kind == kindAsk) && buffered && bc.Buffered() == 0 {
			// The worker or asker this frame woke (if it woke one) is
			// runnable on this P: let it run now (BufferedConn).
			runtime.Gosched()
		}
	}
}

func (e *Env) protocolError(p *peer, err error) {
	err = fmt.Errorf("%w: %s: %v", ErrDisconnected, p.label(), err)
	e.log.Warn("rpcenv: closing connection after a protocol violation", "peer", p.label(), "err", err)
	p.close(err)
	e.broadcast(item{kind: itemNetworkError, ev: &netEvent{remote: p.label(), err: err}})
}

// handle acts on one frame from p. An error means p broke the protocol.
func (e *Env) handle(p *peer, env *envelope) error {
	switch env.Kind {
	case kindSend:
		x := e.localEndpoint(env.To)
		if x == nil {
			e.deadLetter(DeadLetter{Target: e.uriOf(env.To), Type: env.Type, Sender: p.label(), Reason: ErrEndpointNotFound})
			return nil
		}
		msg, mt, err := decodeBody(env.Type, env.Body)
		if err != nil {
			e.deadLetter(DeadLetter{Target: e.uriOf(env.To), Type: env.Type, Sender: p.label(), Reason: err})
			return nil
		}
		e.bind(msg, mt)
		if !x.post(item{kind: itemMessage, msg: msg, c: p.sendContext(x)}) {
			e.deadLetter(DeadLetter{Target: e.uriOf(env.To), Type: env.Type, Sender: p.label(), Reason: ErrEndpointNotFound})
		}
	case kindAsk:
		ic := &inCall{p: p, id: env.ID}
		ic.deadline = timeNow().Add(durationOf(env.Timeout))
		x := e.localEndpoint(env.To)
		if x == nil {
			p.sendFail(env.ID, "", fmt.Errorf("%w: %s", ErrEndpointNotFound, e.uriOf(env.To)))
			return nil
		}
		msg, mt, err := decodeBody(env.Type, env.Body)
		if err != nil {
			p.sendFail(env.ID, "", fmt.Errorf("%s: %w", e.uriOf(env.To), err))
			return nil
		}
		e.bind(msg, mt)
		p.mu.Lock()
		if _, dup := p.inCalls[env.ID]; dup {
			p.mu.Unlock()
			return fmt.Errorf("%w: ask id %d reused while in flight", ErrProtocol, env.ID)
		}
		if p.state == peerClosed {
			p.mu.Unlock()
			return nil
		}
		p.inCalls[env.ID] = ic
		p.mu.Unlock()
		ic.hctx = Context{ep: x, sender: p.label(), ans: ic}
		if !x.post(item{kind: itemMessage, msg: msg, c: &ic.hctx}) {
			ic.fail(x, envError{fmt.Errorf("%w: %s", ErrEndpointNotFound, e.uriOf(env.To))})
		}
	case kindReply:
		c := p.takeCall(env.ID)
		if c == nil {
			return nil // a late reply: the asker gave up
		}
		msg, mt, err := decodeBody(env.Type, env.Body)
		if err != nil {
			c.deliver(nil, fmt.Errorf("rpcenv: ask %s: reply: %w", c.target, err))
			return nil
		}
		e.bind(msg, mt)
		c.deliver(msg, nil)
	case kindFail:
		c := p.takeCall(env.ID)
		if c == nil {
			return nil
		}
		if env.To != "" {
			c.deliver(nil, &RemoteError{Endpoint: env.To, Message: env.Message, Code: env.Code})
		} else if s := sentinelOf(env.Code); s != nil {
			c.deliver(nil, fmt.Errorf("rpcenv: ask %s: %w (%s)", c.target, s, env.Message))
		} else {
			c.deliver(nil, fmt.Errorf("rpcenv: ask %s: %s", c.target, env.Message))
		}
	case kindCancel:
		p.mu.Lock()
		ic := p.inCalls[env.ID]
		delete(p.inCalls, env.ID) // a reply after this is dropped by the asker
		p.mu.Unlock()
		if ic != nil {
			ic.end()
		}
	case kindBeat:
		// counted above; nothing else to do
	case kindLookup:
		x := e.localEndpoint(env.To)
		if x == nil {
			p.sendFail(env.ID, "", fmt.Errorf("%w: %s", ErrEndpointNotFound, e.uriOf(env.To)))
			return nil
		}
		frame, err := encodeFrame(&header{kind: kindReply, id: env.ID, typ: "*rpcenv.ref"}, x.self, e.maxMsg)
		if err != nil {
			return err
		}
		p.write(0, frame, "", "")
	default:
		return fmt.Errorf("%w: unexpected frame kind %d after the handshake", ErrProtocol, env.Kind)
	}
	return nil
}

// bind makes the refs inside a received message usable from this env.
func (e *Env) bind(msg any, mt *msgType) {
	if mt != nil && mt.hasRefs {
		bindRefs(reflect.ValueOf(msg), e, 0)
	}
}

// uriOf names one of this env's endpoints in messages.
func (e *Env) uriOf(name string) string {
	if e.addr == "" {
		return "client://" + e.name + "." + e.id[:8] + "/" + name
	}
	return e.addr + "/" + name
}
