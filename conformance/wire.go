package conformance

import (
	"context"
	"net"
	"sync"
	"sync/atomic"

	"github.com/rpcenv/rpcenv/core"
)

// wire wraps the transport under test: it can cut every connection, as a
// failed network would, keeps a copy of every frame written while
// recording, and can freeze the accepting side of connections, as a
// stopped process would (it then neither reads nor writes).
type wire struct {
	core.Transport
	mu     sync.Mutex
	conns  map[*wconn]struct{}
	record bool
	frames [][]byte

	// freezeAfter: accepted connections freeze once they have written
	// this many frames (negative: never).
	freezeAfter atomic.Int64
	// onRead, if set, sees every frame an accepted connection reads.
	onRead atomic.Pointer[func(frame []byte)]
	// alter, if set, stands between an accepted connection and its
	// reader: it gets each frame the connection reads and returns the
	// frames ReadFrame returns in its place, in order (none: the frame is
	// lost). It may keep frames to return later; it runs on the reading
	// goroutine.
	alter atomic.Pointer[func(frame []byte) [][]byte]
}

func newWire(t core.Transport) *wire {
	w := &wire{Transport: t, conns: map[*wconn]struct{}{}}
	w.freezeAfter.Store(-1)
	return w
}

// freeze makes the accepting side of every connection, open or to come,
// stop reading and writing once it has written n frames (0: at once).
// Frozen connections wake only when closed.
func (w *wire) freeze(n int64) { w.freezeAfter.Store(n) }

func (w *wire) Listen(addr string, opts core.ConnOptions) (core.Listener, error) {
	l, err := w.Transport.Listen(addr, opts)
	if err != nil {
		return nil, err
	}
	return &wlistener{Listener: l, w: w}, nil
}

func (w *wire) Dial(ctx context.Context, addr string, opts core.ConnOptions) (core.Conn, error) {
	c, err := w.Transport.Dial(ctx, addr, opts)
	if err != nil {
		return nil, err
	}
	return w.track(c, false), nil
}

// track wraps c. A core.StreamConn stays one, so that the suite runs
// streams over the transport's own byte streams.
func (w *wire) track(c core.Conn, accepted bool) core.Conn {
	wc := &wconn{Conn: c, w: w, accepted: accepted, closed: make(chan struct{})}
	w.mu.Lock()
	w.conns[wc] = struct{}{}
	w.mu.Unlock()
	if sc, ok := c.(core.StreamConn); ok {
		return &wstreamConn{wconn: wc, sc: sc}
	}
	return wc
}

// wstreamConn is a wconn over a core.StreamConn. A frozen connection
// opens and accepts no byte stream.
type wstreamConn struct {
	*wconn
	sc core.StreamConn
}

func (c *wstreamConn) OpenStream(ctx context.Context, id uint64) (core.ByteStream, error) {
	if c.frozen() {
		return nil, c.stall()
	}
	return c.sc.OpenStream(ctx, id)
}

func (c *wstreamConn) AcceptStream() (uint64, core.ByteStream, error) {
	if c.frozen() {
		return 0, nil, c.stall()
	}
	return c.sc.AcceptStream()
}

// ChannelBinding passes on the transport's TLS channel binding
// (core.BoundConn), so that the suite's secret cases cover it.
func (c *wconn) ChannelBinding() ([]byte, error) {
	if b, ok := c.Conn.(core.BoundConn); ok {
		return b.ChannelBinding()
	}
	return nil, nil
}

// transportEncrypts reports whether the open connections carry TLS (their
// core.BoundConn gives a channel binding): then rpcenv does not seal
// frames, the transport encrypts them below this wrapper.
func (w *wire) transportEncrypts() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for c := range w.conns {
		if cb, err := c.ChannelBinding(); err == nil && cb != nil {
			return true
		}
	}
	return false
}

// sever closes every open connection and returns how many it closed.
func (w *wire) sever() int {
	w.mu.Lock()
	all := make([]*wconn, 0, len(w.conns))
	for c := range w.conns {
		all = append(all, c)
	}
	w.mu.Unlock()
	for _, c := range all {
		c.Close()
	}
	return len(all)
}

func (w *wire) startRecording() {
	w.mu.Lock()
	w.record = true
	w.mu.Unlock()
}

func (w *wire) recorded() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]byte(nil), w.frames...)
}

type wlistener struct {
	core.Listener
	w *wire
}

func (l *wlistener) Accept() (core.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.w.track(c, true), nil
}

type wconn struct {
	core.Conn
	w        *wire
	accepted bool
	writes   atomic.Int64
	once     sync.Once
	closed   chan struct{}
	pending  [][]byte // frames alter returned, not yet read
}

func (c *wconn) frozen() bool {
	n := c.w.freezeAfter.Load()
	return c.accepted && n >= 0 && c.writes.Load() >= n
}

// stall blocks a frozen connection's caller until Close.
func (c *wconn) stall() error {
	<-c.closed
	return net.ErrClosed
}

func (c *wconn) ReadFrame() ([]byte, error) {
	if c.frozen() {
		return nil, c.stall()
	}
	for c.accepted && len(c.pending) == 0 {
		alter := c.w.alter.Load()
		if alter == nil {
			break
		}
		f, err := c.Conn.ReadFrame()
		if err != nil {
			return nil, err
		}
		c.pending = (*alter)(append([]byte(nil), f...))
	}
	if len(c.pending) > 0 {
		f := c.pending[0]
		c.pending = c.pending[1:]
		return f, nil
	}
	f, err := c.Conn.ReadFrame()
	if err == nil && c.accepted {
		if c.frozen() {
			return nil, c.stall() // froze while reading: the frame is never seen
		}
		if hook := c.w.onRead.Load(); hook != nil {
			(*hook)(f)
		}
	}
	return f, err
}

func (c *wconn) WriteFrames(frames [][]byte) error {
	if c.frozen() {
		return c.stall()
	}
	c.writes.Add(int64(len(frames)))
	c.w.mu.Lock()
	if c.w.record {
		for _, frame := range frames {
			c.w.frames = append(c.w.frames, append([]byte(nil), frame...))
		}
	}
	c.w.mu.Unlock()
	return c.Conn.WriteFrames(frames)
}

func (c *wconn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.w.mu.Lock()
		delete(c.w.conns, c)
		c.w.mu.Unlock()
	})
	return c.Conn.Close()
}

// cut closes the open connections of one side only: the accepted ends
// (accepted true) or the dialed ones. The other end learns of it only
// through the transport, as from a peer that closed its end; it returns
// how many it closed.
func (w *wire) cut(accepted bool) int {
	w.mu.Lock()
	var some []*wconn
	for c := range w.conns {
		if c.accepted == accepted {
			some = append(some, c)
		}
	}
	w.mu.Unlock()
	for _, c := range some {
		c.Close()
	}
	return len(some)
}
