// Package tcp is rpcenv's TCP transport, for "tcp://host:port" URIs,
// optionally inside TLS 1.3.
//
// A connection carries frames in the format of internal/framing: each a
// 4-byte big-endian length and that many bytes (docs/PROTOCOL.md).
// WriteFrames writes a batch from the caller's goroutine, in one writev
// system call on plain TCP (the frames go from the caller's memory, the
// lengths from a reused buffer), or gathered into 64 KiB writes inside
// TLS; there is no writer goroutine and no queue: the kernel's socket
// buffer is the only one, and a peer that stops reading blocks the
// writer, which is the env's backpressure. Reads go through a buffered
// reader (Options.ReadBuffer); a frame announcing more than the env's
// MaxFrameSize is refused before its body is read.
//
// The transport knows nothing of endpoints: the env (package core) runs
// its handshake, authentication, heartbeats and reconnects over it.
package tcp

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/internal/framing"
)

// Options configure a Transport. The zero value is plain TCP with the
// defaults below.
type Options struct {
	// TLS, when set, puts every connection inside TLS (version 1.3 at
	// least; an older MinVersion is raised). The same config serves both
	// sides: Certificates (or GetCertificate) for the listening side,
	// RootCAs (and ServerName, which defaults to the dialed host) for the
	// dialing side, ClientAuth and ClientCAs for mutual TLS.
	TLS *tls.Config
	// KeepAlive configures the kernel's TCP keep-alive probes. The zero
	// value uses Go's defaults (15 s idle, 15 s interval). rpcenv's own
	// heartbeats (core.Config.HeartbeatInterval) detect a dead peer
	// whatever this is.
	KeepAlive net.KeepAliveConfig
	// ReadBuffer is the size of a connection's read buffer. 0 means 64 KiB.
	// Frames that fit in it are returned from it without a copy.
	ReadBuffer int
}

// Transport is the TCP transport. It is safe for concurrent use by
// multiple goroutines and by multiple envs.
type Transport struct {
	opts Options
}

// New returns a TCP transport with opts.
func New(opts Options) *Transport {
	if opts.ReadBuffer <= 0 {
		opts.ReadBuffer = 64 << 10
	}
	if opts.TLS != nil {
		opts.TLS = opts.TLS.Clone()
		if opts.TLS.MinVersion < tls.VersionTLS13 {
			opts.TLS.MinVersion = tls.VersionTLS13
		}
	}
	return &Transport{opts: opts}
}

// Scheme returns "tcp".
func (t *Transport) Scheme() string { return "tcp" }

// Listen listens on addr ("127.0.0.1:7077", "0.0.0.0:0").
func (t *Transport) Listen(addr string, opts core.ConnOptions) (core.Listener, error) {
	if t.opts.TLS != nil && t.opts.TLS.Certificates == nil && t.opts.TLS.GetCertificate == nil && t.opts.TLS.GetConfigForClient == nil {
		return nil, fmt.Errorf("tcp: listen tcp://%s: Options.TLS has no certificate for the listening side", addr)
	}
	lc := net.ListenConfig{KeepAliveConfig: t.keepAlive()}
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcp: listen tcp://%s: %w", addr, err)
	}
	return &listener{t: t, l: l, opts: opts, closed: make(chan struct{})}, nil
}

func (t *Transport) keepAlive() net.KeepAliveConfig {
	ka := t.opts.KeepAlive
	if ka == (net.KeepAliveConfig{}) {
		ka.Enable = true
	}
	return ka
}

// Dial connects to addr, and runs the TLS handshake when TLS is on.
func (t *Transport) Dial(ctx context.Context, addr string, opts core.ConnOptions) (core.Conn, error) {
	d := net.Dialer{KeepAliveConfig: t.keepAlive()}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcp: dial tcp://%s: %w", addr, err)
	}
	if t.opts.TLS != nil {
		cfg := t.opts.TLS
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("tcp: dial tcp://%s: TLS handshake: %w", addr, err)
		}
		return t.newConn(tc, c, opts), nil
	}
	return t.newConn(c, c, opts), nil
}

type listener struct {
	t      *Transport
	l      net.Listener
	opts   core.ConnOptions
	closed chan struct{} // closed by Close: ends Accept's back-off
	once   sync.Once
}

// Accept returns the next connection. With TLS, the server's side of the
// TLS handshake runs in a goroutine of the connection, started here: a
// silent client cannot stall Accept, the env's handshake deadline (its
// Close) ends it, and the dialer's Dial returns without waiting for the
// env's first read. Other errors (too many open files) are returned: the
// env waits them out and calls Accept again (core.Listener).
func (l *listener) Accept() (core.Conn, error) {
	c, err := l.l.Accept()
	if err != nil {
		select {
		case <-l.closed:
			err = net.ErrClosed
		default: // the env waits out other errors (out of descriptors) and calls again
		}
		return nil, fmt.Errorf("tcp: accept on tcp://%s: %w", l.Addr(), err)
	}
	if l.t.opts.TLS != nil {
		tc := tls.Server(c, l.t.opts.TLS)
		cn := l.t.newConn(tc, c, l.opts)
		cn.handshook = make(chan struct{})
		go func() { // ends with the handshake, at the latest when Close closes c
			defer close(cn.handshook)
			tc.Handshake() // its error is ReadFrame's and WriteFrames' too
		}()
		return cn, nil
	}
	return l.t.newConn(c, c, l.opts), nil
}

func (l *listener) Addr() string { return l.l.Addr().String() }

func (l *listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.l.Close()
}

// conn is one TCP connection. WriteFrames runs in the env's writer
// goroutine, ReadFrame in its reader, each one at a time; Close in any.
type conn struct {
	c      net.Conn // what frames are read from and written to: raw, or a *tls.Conn over raw
	raw    net.Conn // the TCP connection
	r      *framing.Reader
	w      *framing.Writer
	remote string
	closed atomic.Bool // set first thing by Close
	once   sync.Once
	// handshook is closed when the server side's TLS handshake goroutine
	// has ended (nil on the dialing side, and without TLS).
	handshook chan struct{}
}

// closeNotifyWait bounds how long Close spends sending TLS's close_notify
// to a peer that does not read.
const closeNotifyWait = 250 * time.Millisecond

func (t *Transport) newConn(c, raw net.Conn, opts core.ConnOptions) *conn {
	return &conn{
		c:      c,
		raw:    raw,
		r:      framing.NewReader(c, t.opts.ReadBuffer, opts.MaxFrameSize),
		w:      framing.NewWriter(c),
		remote: raw.RemoteAddr().String(),
	}
}

// WriteFrames writes frames in one system call on plain TCP (see the
// package doc). It blocks while the kernel's socket buffer is full, until
// the peer reads or Close is called.
func (c *conn) WriteFrames(frames [][]byte) error {
	if c.closed.Load() {
		return c.closedErr("write to")
	}
	if err := c.w.WriteFrames(frames); err != nil {
		if c.closed.Load() {
			return c.closedErr("write to")
		}
		return fmt.Errorf("tcp: write to %s: %w", c.remote, err)
	}
	return nil
}

// ReadFrame returns the next frame; see core.Conn.
func (c *conn) ReadFrame() ([]byte, error) {
	if c.closed.Load() {
		return nil, c.closedErr("read from")
	}
	f, err := c.r.ReadFrame()
	switch {
	case c.closed.Load(): // even with a frame: none is returned after Close
		return nil, c.closedErr("read from")
	case err == io.EOF:
		return nil, io.EOF
	case err != nil:
		return nil, fmt.Errorf("tcp: read from %s: %w", c.remote, err)
	}
	return f, nil
}

var _ core.BufferedConn = (*conn)(nil)

// Buffered returns the number of bytes in the read buffer, received and
// not yet returned by ReadFrame (core.BufferedConn). Bytes the kernel (or
// TLS) holds beyond the read buffer are not counted.
func (c *conn) Buffered() int { return c.r.Buffered() }

func (c *conn) closedErr(op string) error {
	return fmt.Errorf("tcp: %s %s: %w", op, c.remote, net.ErrClosed)
}

// Close closes the connection at once: a blocked ReadFrame or WriteFrames
// returns, and the kernel sends what WriteFrames handed it, then a FIN.
// (The kernel sends a reset instead when frames from the peer are still
// unread: the peer then reads what arrived before it, then an error.)
// Inside TLS it first sends close_notify, waiting at most 250 ms for a
// peer that does not read.
func (c *conn) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		if c.c == c.raw {
			c.raw.Close()
			return
		}
		// tls.Conn.Close sends close_notify, unless a Write is in
		// progress, with a deadline of its own (5 s): closing raw bounds
		// it. Until then ReadFrame must not wait.
		c.raw.SetReadDeadline(time.Now())
		stop := time.AfterFunc(closeNotifyWait, func() { c.raw.Close() })
		c.c.Close()
		stop.Stop()
		if c.handshook != nil {
			<-c.handshook
		}
	})
	return nil
}

func (c *conn) RemoteAddr() string { return c.remote }

// ChannelBinding returns the TLS session's tls-exporter value (RFC 9266)
// once its handshake is complete, or nil without TLS (core.BoundConn).
func (c *conn) ChannelBinding() ([]byte, error) {
	tc, ok := c.c.(*tls.Conn)
	if !ok {
		return nil, nil
	}
	if err := tc.Handshake(); err != nil { // a no-op once done
		return nil, fmt.Errorf("tcp: TLS with %s: %w", c.remote, err)
	}
	st := tc.ConnectionState()
	return st.ExportKeyingMaterial(exporterLabel, nil, 32)
}

// exporterLabel is RFC 9266's label for the tls-exporter channel binding.
const exporterLabel = "EXPORTER-Channel-Binding"
