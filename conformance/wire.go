package conformance

import (
	"context"
	"sync"

	"github.com/rpcenv/rpcenv/core"
)

// wire wraps the transport under test: it can cut every connection, as a
// failed network would, and keeps a copy of every frame written while
// recording.
type wire struct {
	core.Transport
	mu     sync.Mutex
	conns  map[*wconn]struct{}
	record bool
	frames [][]byte
}

func newWire(t core.Transport) *wire {
	return &wire{Transport: t, conns: map[*wconn]struct{}{}}
}

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
	return w.track(c), nil
}

func (w *wire) track(c core.Conn) *wconn {
	wc := &wconn{Conn: c, w: w}
	w.mu.Lock()
	w.conns[wc] = struct{}{}
	w.mu.Unlock()
	return wc
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
	return l.w.track(c), nil
}

type wconn struct {
	core.Conn
	w    *wire
	once sync.Once
}

func (c *wconn) WriteFrame(lane uint64, frame []byte) error {
	c.w.mu.Lock()
	if c.w.record {
		c.w.frames = append(c.w.frames, append([]byte(nil), frame...))
	}
	c.w.mu.Unlock()
	return c.Conn.WriteFrame(lane, frame)
}

func (c *wconn) Close() error {
	c.once.Do(func() {
		c.w.mu.Lock()
		delete(c.w.conns, c)
		c.w.mu.Unlock()
	})
	return c.Conn.Close()
}
