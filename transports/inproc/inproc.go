// Package inproc is rpcenv's in-process transport: envs of one program
// reach each other by "inproc://name" with no sockets.
//
// A *Transport is a namespace: envs that list the same value in
// core.Config.Transports see each other's names, and envs of another
// namespace do not, so parallel tests never collide. Frames cross it
// exactly as they would cross TCP, encoded by the same codec and bound by
// the same size limit, so a test on inproc means what it would mean on a
// network transport. Connections can be cut with [Transport.Sever] to
// test what happens when a link breaks.
//
// WriteFrames copies each frame into the connection's queue, in buffers
// the package recycles by size class, and returns: the caller's memory is
// its own again at once, as after a write to a socket. Like TCP's socket
// buffers, a connection holds a bounded amount unread (256 KiB): a writer
// beyond it waits for the reader, or for either end to close.
package inproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
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
	toServer, toClient := newQueue(l.opts.MaxFrameSize), newQueue(opts.MaxFrameSize)
	client := &conn{t: t, in: toClient, out: toServer, remote: addr}
	server := &conn{t: t, in: toServer, out: toClient, remote: "~client-" + strconv.FormatUint(t.clients.Add(1), 10)}
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
	n := 0
	for _, c := range all {
		if c.sever() {
			n++
		}
	}
	return n
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
// writes to out, the other end's in.
type conn struct {
	t      *Transport
	in     *queue
	out    *queue
	remote string
	closed atomic.Bool // set by Close
	once   sync.Once   // Close or sever, whichever comes first, ends the connection
	last   *[]byte     // the buffer of the frame ReadFrame returned last, recycled at the next call
}

// WriteFrames copies frames into the other end's queue, waiting while it
// holds more than 256 KiB unread. A frame over the reader's limit is not
// copied: the reader's ReadFrame fails on it, as on TCP.
func (c *conn) WriteFrames(frames [][]byte) error {
	if err := c.out.push(frames); err != nil {
		return fmt.Errorf("inproc: write to %s: %w", c.remote, err)
	}
	return nil
}

func (c *conn) ReadFrame() ([]byte, error) {
	if c.last != nil {
		free(c.last) // valid until this call
		c.last = nil
	}
	if c.closed.Load() {
		return nil, c.closedErr()
	}
	e, err := c.in.pop()
	switch {
	case c.closed.Load(): // even with a frame: none is returned after Close
		if e.buf != nil {
			free(e.buf)
		}
		return nil, c.closedErr()
	case err == io.EOF:
		return nil, io.EOF
	case err != nil:
		return nil, fmt.Errorf("inproc: read from %s: %w", c.remote, err)
	case e.buf == nil:
		return nil, fmt.Errorf("inproc: read from %s: a frame of %d bytes, over the limit of %d: %w", c.remote, e.n, c.in.limit, core.ErrMessageTooLarge)
	}
	c.last = e.buf
	return (*e.buf)[:e.n], nil
}

func (c *conn) closedErr() error {
	return fmt.Errorf("inproc: read from %s: %w", c.remote, net.ErrClosed)
}

// Close ends our reading at once (frames still queued for us are dropped)
// and our writing after what we wrote: the other end reads it, then
// io.EOF.
func (c *conn) Close() error {
	c.closed.Store(true)
	c.once.Do(func() {
		c.in.shut(net.ErrClosed)
		c.out.finish()
		c.untrack()
	})
	return nil
}

// sever breaks the connection as a failed network would: reads and
// writes fail at once at both ends, without io.EOF. It reports whether
// the connection was still open.
func (c *conn) sever() bool {
	severed := false
	c.once.Do(func() {
		c.in.shut(errReset)
		c.out.shut(errReset)
		c.untrack()
		severed = true
	})
	return severed
}

func (c *conn) untrack() {
	c.t.mu.Lock()
	delete(c.t.conns, c)
	c.t.mu.Unlock()
}

func (c *conn) RemoteAddr() string { return c.remote }

var _ core.BufferedConn = (*conn)(nil)

// Buffered returns the number of frames written by the other end and not
// yet returned by ReadFrame (core.BufferedConn).
func (c *conn) Buffered() int { return c.in.buffered() }

// maxUnread is how many bytes of frames a connection holds unread before
// WriteFrames waits for the reader: backpressure, as TCP's socket
// buffers give.
const maxUnread = 256 << 10

var errReset = errors.New("connection reset by peer")

// entry is a queued frame: its n bytes in buf, or, when buf is nil, a
// frame over the reader's limit that was not copied.
type entry struct {
	buf *[]byte
	n   int
}

// queue carries frames one way. One goroutine pushes at a time (the
// writer's), one pops (the reader's); either end may close it.
type queue struct {
	limit   int // the reader's MaxFrameSize; 0 means none
	mu      sync.Mutex
	space   sync.Cond // signaled when the queue drains below maxUnread/2, or on close
	frames  []entry
	head    int           // frames[:head] were popped
	bytes   int           // in frames[head:]
	waiters int           // pushers waiting on space
	eof     bool          // the writer closed: pop drains, then io.EOF
	down    error         // the reader closed (net.ErrClosed) or the link was severed (errReset): pop fails with it, push with errReset
	ready   chan struct{} // capacity 1: wakes the reader
}

func newQueue(limit int) *queue {
	q := &queue{limit: limit, ready: make(chan struct{}, 1)}
	q.space.L = &q.mu
	return q
}

func (q *queue) buffered() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.frames) - q.head
}

// push copies frames in, one at a time, each once fewer than maxUnread
// bytes wait (a frame is accepted then however large it is).
func (q *queue) push(frames [][]byte) error {
	for _, f := range frames {
		if len(f) == 0 {
			return fmt.Errorf("an empty frame: %w", core.ErrProtocol)
		}
	}
	for _, f := range frames {
		e := entry{n: len(f)}
		if q.limit <= 0 || len(f) <= q.limit {
			e.buf = alloc(len(f))
			copy(*e.buf, f)
		}
		q.mu.Lock()
		for q.bytes > maxUnread && q.down == nil && !q.eof {
			q.waiters++
			q.space.Wait()
			q.waiters--
		}
		var err error
		switch {
		case q.down != nil:
			err = errReset // the reader went away
		case q.eof:
			err = net.ErrClosed // we closed
		}
		if err != nil {
			q.mu.Unlock()
			if e.buf != nil {
				free(e.buf)
			}
			return err
		}
		q.frames = append(q.frames, e)
		if e.buf != nil {
			q.bytes += e.n
		}
		q.mu.Unlock()
		q.wake()
	}
	return nil
}

func (q *queue) pop() (entry, error) {
	for {
		q.mu.Lock()
		switch {
		case q.down != nil:
			err := q.down
			q.mu.Unlock()
			return entry{}, err
		case q.head < len(q.frames):
			e := q.frames[q.head]
			q.frames[q.head] = entry{}
			q.head++
			if q.head == len(q.frames) {
				q.frames, q.head = q.frames[:0], 0 // reuse the storage
			}
			if e.buf != nil {
				q.bytes -= e.n
			}
			signal := q.waiters > 0 && q.bytes <= maxUnread/2
			q.mu.Unlock()
			if signal {
				q.space.Broadcast()
			}
			return e, nil
		case q.eof:
			q.mu.Unlock()
			return entry{}, io.EOF
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

// shut fails the queue with err: frames still queued are dropped, a
// waiting pusher and the reader return at once.
func (q *queue) shut(err error) {
	q.mu.Lock()
	if q.down == nil {
		q.down = err
	}
	for _, e := range q.frames[q.head:] {
		if e.buf != nil {
			free(e.buf)
		}
	}
	q.frames, q.head, q.bytes = nil, 0, 0
	q.mu.Unlock()
	q.space.Broadcast()
	q.wake()
}

// finish ends the queue after the frames in it: the reader gets them,
// then io.EOF; a waiting pusher returns at once.
func (q *queue) finish() {
	q.mu.Lock()
	q.eof = true
	q.mu.Unlock()
	q.space.Broadcast()
	q.wake()
}

// Frame buffers are recycled by size class: classes of 2^k and 1.5 * 2^k
// bytes from 256 B to 128 KiB (a frame the env cuts at a little over
// 64 KiB takes a 96 KiB buffer). Larger frames get a buffer of their own.
var (
	classes = func() []int {
		var c []int
		for n := 256; n <= 128<<10; n *= 2 {
			c = append(c, n, n+n/2)
		}
		return c[:len(c)-1]
	}()
	pools = make([]sync.Pool, len(classes))
)

// alloc returns a buffer of n bytes.
func alloc(n int) *[]byte {
	i := sort.SearchInts(classes, n)
	if i == len(classes) {
		b := make([]byte, n)
		return &b
	}
	if p, ok := pools[i].Get().(*[]byte); ok {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n, classes[i])
	return &b
}

// free recycles a buffer from alloc; nothing may use it after.
func free(p *[]byte) {
	if i := sort.SearchInts(classes, cap(*p)); i < len(classes) && classes[i] == cap(*p) {
		pools[i].Put(p)
	}
}
