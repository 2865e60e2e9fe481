// Package inproc is rpcenv's in-process transport: envs of one program
// reach each other by "inproc://name" with no sockets.
//
// A *Transport is a namespace: envs that list the same value in
// core.Config.Transports see each other's names, and envs of another
// namespace do not, so parallel tests never collide. Frames cross it
// exactly as they would cross TCP, encoded by the same codec and bound by
// the same size limit, so a test on inproc means what it would mean on a
// network transport. Connections can be cut with [Transport.Sever] to
// test what happens when a link breaks. Like TCP's socket buffers, a
// connection holds a bounded amount unread (256 KiB): a writer beyond it
// waits for the reader.
package inproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/rpcenv/rpcenv/core"
)

// Transport is a namespace of in-process listeners. It is safe for
// concurrent use by multiple goroutines.
type Transport struct {
	mu        sync.Mutex
	listeners map[string]*listener
	conns     map[*conn]struct{}
	clients   atomic.Uint64
}

// New returns an empty namespace.
func New() *Transport {
	return &Transport{listeners: map[string]*listener{}, conns: map[*conn]struct{}{}}
}

// Scheme returns "inproc".
func (t *Transport) Scheme() string { return "inproc" }

// Listen registers addr (a name, "driver") in the namespace.
func (t *Transport) Listen(addr string, opts core.ConnOptions) (core.Listener, error) {
	if addr == "" {
		return nil, errors.New("inproc: listen: empty name")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, taken := t.listeners[addr]; taken {
		return nil, fmt.Errorf("inproc: listen inproc://%s: address already in use in this namespace", addr)
	}
	l := &listener{t: t, addr: addr, opts: opts, accept: make(chan *conn), closed: make(chan struct{})}
	t.listeners[addr] = l
	return l, nil
}

// Dial connects to the listener named addr.
func (t *Transport) Dial(ctx context.Context, addr string, opts core.ConnOptions) (core.Conn, error) {
	t.mu.Lock()
	l := t.listeners[addr]
	t.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("inproc: dial inproc://%s: connection refused (no env listens on that name in this namespace)", addr)
	}
	a, b := newQueue(), newQueue()
	client := &conn{t: t, in: a, out: b, remote: addr, opts: opts}
	server := &conn{t: t, in: b, out: a, remote: "~client-" + strconv.FormatUint(t.clients.Add(1), 10), opts: l.opts}
	t.track(client, server)
	select {
	case l.accept <- server:
		return client, nil
	case <-l.closed:
	case <-ctx.Done():
		client.Close()
		server.Close()
		return nil, fmt.Errorf("inproc: dial inproc://%s: %w", addr, ctx.Err())
	}
	client.Close()
	server.Close()
	return nil, fmt.Errorf("inproc: dial inproc://%s: connection refused (listener closed)", addr)
}

func (t *Transport) track(cs ...*conn) {
	t.mu.Lock()
	for _, c := range cs {
		t.conns[c] = struct{}{}
	}
	t.mu.Unlock()
}

// Sever breaks every open connection of the namespace, as a failed
// network would: both ends see their connection fail. Listeners stay
// open, so envs can connect again. It returns how many connection ends
// it closed.
func (t *Transport) Sever() int {
	t.mu.Lock()
	all := make([]*conn, 0, len(t.conns))
	for c := range t.conns {
		all = append(all, c)
	}
	t.mu.Unlock()
	for _, c := range all {
		c.Close()
	}
	return len(all)
}

type listener struct {
	t         *Transport
	addr      string
	opts      core.ConnOptions
	accept    chan *conn // unbuffered: a dial completes only when accepted
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *listener) Accept() (core.Conn, error) {
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.closed:
		return nil, fmt.Errorf("inproc: accept on inproc://%s: %w", l.addr, net.ErrClosed)
	}
}

func (l *listener) Addr() string { return l.addr }

func (l *listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.closed)
		l.t.mu.Lock()
		if l.t.listeners[l.addr] == l {
			delete(l.t.listeners, l.addr)
		}
		l.t.mu.Unlock()
	})
	return nil
}

// conn is one end of an in-process connection: it reads from in and
// writes to the other end's in.
type conn struct {
	t      *Transport
	in     *queue
	out    *queue
	remote string
	opts   core.ConnOptions // the frame limits
	nread  int              // frames ReadFrame returned
	once   sync.Once
	last   []byte // the frame ReadFrame returned last, released at the next call
}

func (c *conn) WriteFrame(lane uint64, frame []byte) error {
	if err := c.out.push(frame); err != nil {
		return fmt.Errorf("inproc: write to %s: %w", c.remote, err)
	}
	return nil
}

func (c *conn) ReadFrame() ([]byte, error) {
	if c.last != nil {
		core.ReleaseFrame(c.last) // valid until this call: now the env may reuse it
		c.last = nil
	}
	f, err := c.in.pop()
	if err != nil {
		return nil, err
	}
	if limit := c.opts.FrameLimit(c.nread); limit > 0 && len(f) > limit {
		return nil, fmt.Errorf("inproc: read from %s: frame of %d bytes: %w (limit %d)", c.remote, len(f), core.ErrMessageTooLarge, limit)
	}
	c.nread++
	c.last = f
	return f, nil
}

func (c *conn) Close() error {
	c.once.Do(func() {
		c.in.shut()    // our reader stops at once
		c.out.finish() // the other end reads what we sent, then EOF
		c.t.mu.Lock()
		delete(c.t.conns, c)
		c.t.mu.Unlock()
	})
	return nil
}

func (c *conn) RemoteAddr() string { return c.remote }

// queue carries frames one way. One goroutine pops; any may push.
type queue struct {
	mu      sync.Mutex
	space   sync.Cond // signaled when a full queue drains, or on close
	frames  [][]byte
	head    int           // frames[:head] were popped
	bytes   int           // in frames[head:]
	waiters int           // pushers waiting on space
	eof     bool          // the writer closed: pop drains, then io.EOF
	down    bool          // the reader closed: everything fails
	ready   chan struct{} // capacity 1: wakes the reader
}

// maxUnread is how many bytes of frames a connection holds unread before
// WriteFrame waits for the reader: backpressure, as TCP's MaxQueued. It is
// small, so that frames come back to the env's free lists (core.ReleaseFrame)
// instead of piling up while a fast sender runs ahead.
const maxUnread = 256 << 10

func newQueue() *queue {
	q := &queue{ready: make(chan struct{}, 1)}
	q.space.L = &q.mu
	return q
}

var errReset = errors.New("connection reset by peer")

var _ core.BufferedConn = (*conn)(nil)

// Buffered returns the number of frames written by the other end and not
// yet returned by ReadFrame (core.BufferedConn).
func (c *conn) Buffered() int { return c.in.buffered() }

func (q *queue) buffered() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.frames) - q.head
}

func (q *queue) push(f []byte) error {
	q.mu.Lock()
	if q.down {
		q.mu.Unlock()
		return errReset
	}
	for q.bytes > maxUnread && !q.down && !q.eof {
		q.waiters++
		q.space.Wait()
		q.waiters--
	}
	if q.down {
		q.mu.Unlock()
		return errReset
	}
	if q.eof {
		q.mu.Unlock()
		return net.ErrClosed
	}
	q.frames = append(q.frames, f)
	q.bytes += len(f)
	q.mu.Unlock()
	q.wake()
	return nil
}

func (q *queue) pop() ([]byte, error) {
	for {
		q.mu.Lock()
		switch {
		case q.down:
			q.mu.Unlock()
			return nil, net.ErrClosed
		case q.head < len(q.frames):
			f := q.frames[q.head]
			q.frames[q.head] = nil
			q.head++
			if q.head == len(q.frames) {
				q.frames, q.head = q.frames[:0], 0 // reuse the storage
			}
			q.bytes -= len(f)
			signal := q.waiters > 0 && q.bytes <= maxUnread/2
			q.mu.Unlock()
			if signal {
				q.space.Broadcast()
			}
			return f, nil
		case q.eof:
			q.mu.Unlock()
			return nil, io.EOF
		}
		q.mu.Unlock()
		<-q.ready
	}
}

func (q *queue) wake() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *queue) shut() {
	q.mu.Lock()
	q.down = true
	q.frames, q.head, q.bytes = nil, 0, 0
	q.mu.Unlock()
	q.space.Broadcast()
	q.wake()
}

func (q *queue) finish() {
	q.mu.Lock()
	q.eof = true
	q.mu.Unlock()
	q.space.Broadcast()
	q.wake()
}
