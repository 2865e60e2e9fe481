package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	tcpBufSize = 32 << 10 // a reading pump's buffer
	tcpMaxHeld = 1 << 20  // bytes a direction holds before its reader stops
	// tcpMaxChunks bounds the chunks a direction holds, so that many tiny
	// reads do not outgrow the byte bound in per-chunk overhead.
	tcpMaxChunks = 1024
	tcpMaxConns  = 1024 // beyond this the proxy stops accepting until one ends
)

// TCP is a fault-injecting TCP proxy: each connection accepted on its
// address is forwarded to the target, one pump per direction, with the
// faults set at the time. Its methods are safe for concurrent use by
// multiple goroutines.
type TCP struct {
	ln     *net.TCPListener
	target string
	st     *state
	cfg    config
	slots  chan struct{} // a token per live connection: accept takes, serve gives back
	done   chan struct{} // closed by Close

	mu     sync.Mutex
	closed bool
	conns  map[*tcpConn]struct{}

	wg sync.WaitGroup // accept, and serve for each connection
}

// NewTCP listens on the TCP address listen ("127.0.0.1:0" if empty) and
// forwards every connection accepted there to target, dialed once per
// connection. A connection whose dial fails is closed.
func NewTCP(listen, target string) (*TCP, error) {
	return newTCP(listen, target, defaultConfig())
}

func newTCP(listen, target string, cfg config) (*TCP, error) {
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p := &TCP{
		ln:     ln.(*net.TCPListener),
		target: target,
		st:     newState(),
		cfg:    cfg,
		slots:  make(chan struct{}, tcpMaxConns),
		done:   make(chan struct{}),
		conns:  make(map[*tcpConn]struct{}),
	}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr returns the address the proxy listens on, for clients to dial.
func (p *TCP) Addr() string { return p.ln.Addr().String() }

// Set replaces the faults. Delay and Jitter apply to the chunks read from
// then on; Loss is ignored over TCP.
func (p *TCP) Set(f Faults) { p.st.set(f) }

// Stall stops forwarding in direction d, in addition to any direction
// already stalled, until Heal. Each connection keeps its sockets open and
// stops reading that side after at most one more chunk, so the kernel
// buffers fill and the sender eventually blocks; nothing is lost.
func (p *TCP) Stall(d Direction) { p.st.stall(d) }

// Partition stops forwarding both ways on every connection, as Stall(Both)
// does, and holds each connection accepted from then on without dialing
// the target, until Heal. A held connection ends at Cut or Close; the
// client sees it established, since the kernel accepts it first.
func (p *TCP) Partition() { p.st.partition() }

// Heal ends the partition and every stall: held connections dial the
// target and held bytes are forwarded. The faults set by Set stay.
func (p *TCP) Heal() { p.st.heal() }

// Cut closes every current connection, both its sockets, at once, with
// whatever it held: the client reads EOF or a reset, like a peer killed
// mid-write. The proxy goes on accepting.
func (p *TCP) Cut() {
	for _, c := range p.snapshot() {
		c.kill()
	}
}

// Close stops accepting, closes every connection and returns once every
// goroutine the proxy started has ended. It returns the listener's close
// error; later calls return nil.
func (p *TCP) Close() error {
	p.mu.Lock()
	first := !p.closed
	p.closed = true
	p.mu.Unlock()
	var err error
	if first {
		close(p.done)
		err = p.ln.Close()
	}
	// No connection is added once closed is set, so this is all of them.
	p.Cut()
	p.wg.Wait()
	return err
}

func (p *TCP) snapshot() []*tcpConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	conns := make([]*tcpConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	return conns
}

func (p *TCP) accept() {
	var b backoff
	for {
		select {
		case p.slots <- struct{}{}:
		case <-p.done:
			return
		}
		client, err := p.ln.AcceptTCP()
		if err != nil {
			<-p.slots
			if errors.Is(err, net.ErrClosed) || !b.wait(p.done) {
				return
			}
			continue
		}
		b.reset()
		c := p.track(client)
		if c == nil {
			<-p.slots
			return
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

// track registers a new connection, or closes it and returns nil if the
// proxy is closed.
func (p *TCP) track(client *net.TCPConn) *tcpConn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &tcpConn{client: client, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.kill()
		return nil
	}
	p.conns[c] = struct{}{}
	return c
}

// serve owns a connection: it dials the target, runs the four pumps and,
// when all have ended, closes both sockets and gives back the slot.
func (p *TCP) serve(c *tcpConn) {
	defer func() {
		c.kill()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		<-p.slots
	}()
	healed := func() bool { return !p.st.partitioned }
	if !p.st.await(c.done, healed, func() { p.cfg.trace(evHeldConn, Both) }) {
		return
	}
	var d net.Dialer
	server, err := d.DialContext(c.ctx, "tcp", p.target)
	if err != nil {
		return
	}
	if !c.attach(server.(*net.TCPConn)) {
		return
	}
	up := newPipe(Upstream, c.client, c.server)
	down := newPipe(Downstream, c.server, c.client)
	var wg sync.WaitGroup
	wg.Go(func() { p.read(c, up) })
	wg.Go(func() { p.write(c, up) })
	wg.Go(func() { p.read(c, down) })
	p.write(c, down)
	wg.Wait()
}

// read is a direction's reading pump: it reads src while the direction
// flows and the queue has room, and stamps each chunk with its release
// time. An EOF is queued like a chunk, so that it keeps its place.
func (p *TCP) read(c *tcpConn, pp *pipe) {
	buf := make([]byte, tcpBufSize)
	flowing := func() bool { return p.st.flowing(pp.dir) }
	held := func() { p.cfg.trace(evHeld, pp.dir) }
	for {
		if !p.st.await(c.done, flowing, held) {
			return
		}
		for pp.held.Load() > tcpMaxHeld-tcpBufSize {
			select {
			case <-pp.room:
			case <-c.done:
				return
			}
		}
		n, err := pp.src.Read(buf)
		if n > 0 {
			// The one allocation per chunk: buf is read into again while
			// the chunk waits.
			ch := chunk{data: bytes.Clone(buf[:n]), at: time.Now().Add(p.st.delay(pp.dir))}
			pp.held.Add(int64(n))
			if !pp.put(ch, c.done) {
				return
			}
		}
		if err == io.EOF {
			pp.put(chunk{eof: true, at: time.Now().Add(p.st.delay(pp.dir))}, c.done)
			return
		}
		if err != nil {
			c.kill()
			return
		}
	}
}

// write is a direction's writing pump: it takes the chunks in order and
// writes each once its release time has come and the direction flows, so
// a chunk is never written before the one read before it.
func (p *TCP) write(c *tcpConn, pp *pipe) {
	flowing := func() bool { return p.st.flowing(pp.dir) }
	held := func() { p.cfg.trace(evHeld, pp.dir) }
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var ch chunk
		select {
		case ch = <-pp.chunks:
		case <-c.done:
			return
		}
		if wait := time.Until(ch.at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-c.done:
				return
			}
		}
		if !p.st.await(c.done, flowing, held) {
			return
		}
		if ch.eof {
			if pp.dst.CloseWrite() != nil {
				c.kill()
			}
			return
		}
		if _, err := pp.dst.Write(ch.data); err != nil {
			c.kill()
			return
		}
		pp.held.Add(-int64(len(ch.data)))
		select {
		case pp.room <- struct{}{}:
		default:
		}
	}
}

// tcpConn is one proxied connection: the client's socket and, once
// dialed, the target's.
type tcpConn struct {
	client *net.TCPConn
	ctx    context.Context // the dial's; cancelled by kill
	cancel context.CancelFunc
	done   chan struct{} // closed by kill, once

	mu     sync.Mutex
	dead   bool
	server *net.TCPConn
}

// attach sets the target's socket, or closes it and reports false if the
// connection was killed during the dial.
func (c *tcpConn) attach(server *net.TCPConn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		server.Close()
		return false
	}
	c.server = server
	return true
}

// kill closes both sockets, which unblocks every pump's read and write,
// and done, which ends every pump's wait. It may be called many times.
func (c *tcpConn) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return
	}
	c.dead = true
	close(c.done)
	c.cancel()
	c.client.Close()
	if c.server != nil {
		c.server.Close()
	}
}

// pipe is one direction of a connection: the chunks read and not yet
// written, in order.
type pipe struct {
	dir    Direction
	src    *net.TCPConn
	dst    *net.TCPConn
	chunks chan chunk    // read → write; never closed, the pumps end on done
	held   atomic.Int64  // bytes read and not yet written
	room   chan struct{} // write → read, cap 1: held went down
}

// chunk is what one read returned, or the EOF, and when it may go.
type chunk struct {
	data []byte
	at   time.Time
	eof  bool
}

func newPipe(d Direction, src, dst *net.TCPConn) *pipe {
	return &pipe{
		dir:    d,
		src:    src,
		dst:    dst,
		chunks: make(chan chunk, tcpMaxChunks),
		room:   make(chan struct{}, 1),
	}
}

func (pp *pipe) put(ch chunk, done <-chan struct{}) bool {
	select {
	case pp.chunks <- ch:
		return true
	case <-done:
		return false
	}
}
