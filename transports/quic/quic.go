// Package quic is rpcenv's QUIC transport, for "quic://host:port" URIs,
// built on github.com/quic-go/quic-go.
//
// # Streams
//
// One QUIC connection joins two envs and carries frames both ways. A frame
// is a 4-byte big-endian length and that many bytes, as on TCP, but frames
// travel on unidirectional QUIC streams so that independent flows do not
// wait for each other:
//
//   - The first two frames a side writes (the env's handshake) share the
//     connection's first stream, and the receiver reads no other stream
//     until that one ends, so nothing overtakes the handshake.
//   - After that, each frame of lane 0 (asks, replies, control frames) goes
//     on a new stream of its own: an ask never waits behind a large
//     unrelated message.
//   - Frames of a non-zero lane (the sends to one endpoint) go, in order, on
//     one long-lived stream per lane, opened at first use. Lanes share
//     laneStreams streams (lane modulo 64), which bounds the streams a
//     connection keeps open.
//   - Close FINs every stream, then opens a last stream whose first frame
//     has length 0 (goodbye); the receiver delivers every frame of the
//     earlier streams, then reports io.EOF and closes the connection, so
//     frames written before Close are not lost.
//
// The receiver reads each stream in a goroutine of its own and hands frames
// to ReadFrame through a bounded channel, so a slow env slows the peer down
// through QUIC flow control. A frame announcing more than the env's
// MaxMessageSize is refused before its body is read, and buffers grow as
// bytes arrive, not as lengths announce.
//
// # Security
//
// QUIC always runs TLS 1.3. With the zero Options, New makes an ephemeral
// self-signed certificate for the listening side and dials without
// verifying the peer's certificate: the link is encrypted, but the peer is
// NOT authenticated, and an active attacker in the path can impersonate
// it. New logs this once at Warn. Set core.Config.Secret (both envs prove
// the secret in the env's handshake) or a verified Options.TLS (see
// SelfSignedTLS) to authenticate peers.
//
// 0-RTT is not used, and connection migration is not supported: a
// connection is bound to the addresses it was made between, and a peer
// whose address changes reconnects.
//
// The transport knows nothing of endpoints: the env (package core) runs
// its handshake, authentication, heartbeats and reconnects over it.
package quic

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/rpcenv/rpcenv/core"
)

// ALPN is the TLS application protocol the transport negotiates; a peer
// that does not offer it is refused during the QUIC handshake.
const ALPN = "rpcenv/1"

// Options configure a Transport. The zero value works on loopback and
// between processes, with the defaults below.
type Options struct {
	// TLS, when set, is the TLS configuration of both sides, and should
	// verify the peer: Certificates (or GetCertificate) for the listening
	// side, RootCAs (and ServerName, which defaults to the dialed host)
	// for the dialing side, ClientAuth and ClientCAs for mutual TLS. The
	// transport uses a clone with NextProtos set to ALPN. When nil, the
	// transport uses an ephemeral self-signed certificate and does not
	// verify peers (see the package doc).
	TLS *tls.Config
	// Logger receives the transport's own log lines (the warning about an
	// unverified TLS setup). nil means slog.Default().
	Logger *slog.Logger
	// IdleTimeout closes a connection on which nothing arrived for this
	// long (QUIC's max_idle_timeout; the smaller of both sides' values
	// applies). It bounds how long an ask to a vanished peer can wait,
	// whatever core.Config.PeerTimeout says. 0 means 30 s.
	IdleTimeout time.Duration
	// KeepAlive is how often a connection sends a QUIC PING when it has
	// nothing else to send, so that an idle but healthy connection is not
	// closed by IdleTimeout. 0 means 10 s (or IdleTimeout/2 if smaller);
	// a negative value turns keep-alives off.
	KeepAlive time.Duration
	// HandshakeTimeout bounds a QUIC/TLS handshake that makes no progress:
	// a peer that opens a connection and goes silent is dropped after it.
	// 0 means 5 s.
	HandshakeTimeout time.Duration
	// MaxIncomingStreams caps the streams a peer may have open towards
	// this side at once: the flood cap. Each ask and each reply in flight
	// uses one, each lane in use one more. A peer at the cap waits for
	// streams to finish before it opens more. 0 means 1000.
	MaxIncomingStreams int64
}

// Transport is the QUIC transport. It is safe for concurrent use by
// multiple goroutines and by multiple envs.
type Transport struct {
	opts      Options
	server    *tls.Config
	client    *tls.Config
	verified  bool // Options.TLS was given
	quicConf  *quicgo.Config
	noCertErr bool // the TLS config has no certificate for listening
}

// New returns a QUIC transport with opts. With a nil opts.TLS it makes an
// ephemeral self-signed certificate and logs, once, that peers will not
// be verified.
func New(opts Options) *Transport {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 30 * time.Second
	}
	if opts.KeepAlive == 0 {
		opts.KeepAlive = min(10*time.Second, opts.IdleTimeout/2)
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = 5 * time.Second
	}
	if opts.MaxIncomingStreams <= 0 {
		opts.MaxIncomingStreams = 1000
	}
	t := &Transport{opts: opts}
	if opts.TLS != nil {
		t.verified = true
		t.server = opts.TLS.Clone()
		t.server.NextProtos = []string{ALPN}
		t.server.MinVersion = tls.VersionTLS13
		t.client = t.server
		t.noCertErr = t.server.Certificates == nil && t.server.GetCertificate == nil && t.server.GetConfigForClient == nil
	} else {
		cert, err := selfSigned(nil)
		if err != nil {
			// crypto/rand and ECDSA do not fail on a working system; a
			// listener will report the missing certificate.
			opts.Logger.Error("quic: cannot make a self-signed certificate", "err", err)
			t.noCertErr = true
		}
		t.server = &tls.Config{Certificates: cert, NextProtos: []string{ALPN}, MinVersion: tls.VersionTLS13}
		t.client = &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPN}, MinVersion: tls.VersionTLS13}
		opts.Logger.Warn("quic: no Options.TLS: connections are encrypted but peers are not authenticated " +
			"(self-signed certificate, peer certificates not verified); set core.Config.Secret or a verified Options.TLS")
	}
	keepAlive := opts.KeepAlive
	if keepAlive < 0 {
		keepAlive = 0
	}
	t.quicConf = &quicgo.Config{
		HandshakeIdleTimeout:  opts.HandshakeTimeout,
		MaxIdleTimeout:        opts.IdleTimeout,
		KeepAlivePeriod:       keepAlive,
		MaxIncomingUniStreams: opts.MaxIncomingStreams,
		MaxIncomingStreams:    -1, // the transport uses unidirectional streams only
	}
	return t
}

// Scheme returns "quic".
func (t *Transport) Scheme() string { return "quic" }

// Listen listens on the UDP address addr ("127.0.0.1:7077", "0.0.0.0:0").
func (t *Transport) Listen(addr string, opts core.ConnOptions) (core.Listener, error) {
	if t.noCertErr {
		return nil, fmt.Errorf("quic: listen quic://%s: no certificate for the listening side (Options.TLS)", addr)
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("quic: listen quic://%s: %w", addr, err)
	}
	uc, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("quic: listen quic://%s: %w", addr, err)
	}
	tr := &quicgo.Transport{Conn: uc}
	l, err := tr.Listen(t.server, t.quicConf)
	if err != nil {
		tr.Close()
		uc.Close()
		return nil, fmt.Errorf("quic: listen quic://%s: %w", addr, err)
	}
	return &listener{t: t, tr: tr, uc: uc, l: l, opts: opts}, nil
}

// Dial connects to addr and runs the QUIC handshake.
func (t *Transport) Dial(ctx context.Context, addr string, opts core.ConnOptions) (core.Conn, error) {
	cfg := t.client
	if t.verified && cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	dctx, cancel := context.WithCancelCause(ctx)
	var probe sync.WaitGroup
	probe.Go(func() { probeRefused(dctx, addr, cancel) })
	qc, err := quicgo.DialAddr(dctx, addr, cfg, t.quicConf)
	cancel(nil)
	probe.Wait()
	if err != nil {
		if cause := context.Cause(dctx); errors.Is(cause, syscall.ECONNREFUSED) {
			err = cause
		}
		return nil, fmt.Errorf("quic: dial quic://%s: %w", addr, err)
	}
	return newConn(qc, opts), nil
}

// probeRefused sends one byte from a connected UDP socket to addr, so
// that the ICMP "port unreachable" of an address nobody listens on fails
// the dial (by canceling it with ECONNREFUSED) at once, as a TCP RST
// would, instead of after HandshakeTimeout: quic-go's own socket is not
// connected and does not see ICMP errors. A QUIC server drops the byte (a
// packet too small to be an Initial). It returns when ctx is done.
func probeRefused(ctx context.Context, addr string, cancel context.CancelCauseFunc) {
	uc, err := net.Dial("udp", addr)
	if err != nil {
		return
	}
	defer uc.Close()
	stop := context.AfterFunc(ctx, func() { uc.SetReadDeadline(time.Now()) })
	defer stop()
	if _, err := uc.Write([]byte{0}); err != nil {
		return
	}
	var buf [1]byte
	if _, err := uc.Read(buf[:]); errors.Is(err, syscall.ECONNREFUSED) {
		cancel(err)
	}
}

// listener owns its UDP socket, and closes it once it is closed and every
// connection it accepted is closed: the port is then free, and a dial to
// it is refused at once (see probeRefused).
type listener struct {
	t    *Transport
	tr   *quicgo.Transport
	uc   *net.UDPConn
	l    *quicgo.Listener
	opts core.ConnOptions

	mu     sync.Mutex
	open   int  // accepted connections not yet closed
	closed bool // Close was called
}

// Accept returns the next connection whose QUIC handshake completed; a
// peer that never completes it is dropped by quic-go after
// Options.HandshakeTimeout, without reaching Accept.
func (l *listener) Accept() (core.Conn, error) {
	qc, err := l.l.Accept(context.Background())
	if err != nil {
		if errors.Is(err, quicgo.ErrServerClosed) {
			return nil, fmt.Errorf("quic: accept on quic://%s: %w", l.Addr(), net.ErrClosed)
		}
		return nil, fmt.Errorf("quic: accept on quic://%s: %w", l.Addr(), err)
	}
	l.mu.Lock()
	l.open++
	l.mu.Unlock()
	c := newConn(qc, l.opts)
	c.onClose = l.release
	return c, nil
}

func (l *listener) Addr() string { return l.l.Addr().String() }

func (l *listener) Close() error {
	err := l.l.Close()
	l.mu.Lock()
	last := !l.closed && l.open == 0
	l.closed = true
	l.mu.Unlock()
	if last {
		l.shut()
	}
	return err
}

// release is called when an accepted connection has closed.
func (l *listener) release() {
	l.mu.Lock()
	l.open--
	last := l.closed && l.open == 0
	l.mu.Unlock()
	if last {
		l.shut()
	}
}

func (l *listener) shut() {
	l.tr.Close()
	l.uc.Close()
}

const (
	// orderedFrames is how many frames a side writes on the connection's
	// first stream: the env's handshake is at most two frames each way,
	// and its last frame must not be overtaken by what follows it.
	orderedFrames = 2
	// laneStreams is how many long-lived streams carry non-zero lanes.
	laneStreams = 64
	// queuedFrames bounds the frames read and not yet taken by ReadFrame.
	queuedFrames = 64
	// closeFlush bounds how long Close waits for the peer to take the
	// frames written before it.
	closeFlush = 250 * time.Millisecond
)

// Application error codes of CONNECTION_CLOSE.
const (
	codeNone     quicgo.ApplicationErrorCode = 0
	codeProtocol quicgo.ApplicationErrorCode = 1
	codeTooLarge quicgo.ApplicationErrorCode = 2
)

// conn is one QUIC connection. Its goroutines (the accept loop, a reader
// per incoming stream, a writer per outgoing stream that carries several
// frames) exit when the connection closes; Close waits for them.
type conn struct {
	qc      *quicgo.Conn
	opts    core.ConnOptions // the frame limits
	remote  string
	onClose func() // set by the listener; called once, at the end of Close

	// Writing.
	wctx    context.Context // canceled by Close: aborts waits to open a stream
	wcancel context.CancelFunc
	closing atomic.Bool
	openMu  sync.Mutex // held while opening a stream: stream ids follow its order
	mu      sync.Mutex // guards written, first, lanes, and the fields so marked
	written int
	first   *sendStream
	lanes   map[uint64]*sendStream

	// Reading.
	frames   chan []byte   // frames read, for ReadFrame
	done     chan struct{} // closed by fail
	err      error         // why done was closed; set before
	failOnce sync.Once
	hsDone   chan struct{} // closed when the first incoming stream ends
	active   int           // stream readers running; guarded by mu
	bye      bool          // the peer's goodbye arrived; guarded by mu
	byeCh    chan struct{} // closed when bye is set
	eof      chan struct{} // closed when bye and no reader runs: frames holds the rest
	rest     sync.WaitGroup
	once     sync.Once
	// Closing.
	closeOnce sync.Once
	failed    atomic.Bool // failClose closed the connection for a violation
	ended     bool        // Close waits for rest: no goroutine may start; guarded by mu
}

// sendStream is one outgoing stream that carries several frames, in the
// order of their WriteFrame calls. WriteFrame queues a frame and returns;
// the stream's writer goroutine takes the whole queue at each turn and
// writes the small frames of it in one Write, so that a burst of sends
// costs a few full packets, not one packet each.
type sendStream struct {
	mu      sync.Mutex
	cond    sync.Cond // signaled when the queue shrinks or the writer exits
	s       *quicgo.SendStream
	n       int           // frames written (the first stream only)
	closed  bool          // finish was called: the writer FINs and exits
	started bool          // the writer runs, or ran
	exited  chan struct{} // closed by the writer when it exits
	wake    chan struct{} // capacity 1: the queue has something, or closed was set
	queue   []queued
	queued  int    // bytes in queue
	spare   []byte // a written run's memory, for the next run
	err     error  // a write failed
}

// queued is a run of small frames, already length-prefixed, or one big
// frame, written from the caller's slice.
type queued struct {
	small []byte
	big   []byte
}

const (
	// bigFrame: frames over this size are written from the caller's
	// slice, not copied.
	bigFrame = 32 << 10
	// maxQueue bounds the bytes queued on one stream: WriteFrame waits
	// while the queue is over it, which slows a sender down to what the
	// peer takes.
	maxQueue = 1 << 20
)

func newSendStream() *sendStream {
	ss := &sendStream{wake: make(chan struct{}, 1), exited: make(chan struct{})}
	ss.cond.L = &ss.mu
	return ss
}

// write queues frame after every frame queued before it, and starts the
// writer at the first frame. It takes ownership of frame.
func (ss *sendStream) write(c *conn, frame []byte) error {
	ss.mu.Lock()
	for ss.err == nil && !ss.closed && ss.queued > maxQueue {
		ss.cond.Wait()
	}
	switch {
	case ss.err != nil:
		err := ss.err
		ss.mu.Unlock()
		core.ReleaseFrame(frame)
		return c.writeErr(err)
	case ss.closed || c.closing.Load():
		ss.mu.Unlock()
		core.ReleaseFrame(frame)
		return c.closedErr()
	}
	if !ss.started {
		s, err := c.open()
		if err != nil {
			ss.mu.Unlock()
			core.ReleaseFrame(frame)
			return err
		}
		c.mu.Lock()
		if c.ended { // Close is waiting for the goroutines: start none
			c.mu.Unlock()
			s.CancelWrite(0)
			core.ReleaseFrame(frame)
			ss.mu.Unlock()
			return c.closedErr()
		}
		c.rest.Add(1)
		c.mu.Unlock()
		ss.s, ss.started = s, true
		go ss.writeLoop(c)
	}
	if len(frame) > bigFrame {
		ss.queue = append(ss.queue, queued{big: frame})
	} else {
		if n := len(ss.queue); n > 0 && ss.queue[n-1].small != nil {
			ss.queue[n-1].small = appendFramed(ss.queue[n-1].small, frame)
		} else {
			ss.queue = append(ss.queue, queued{small: appendFramed(ss.spare, frame)})
			ss.spare = nil
		}
		core.ReleaseFrame(frame)
	}
	ss.queued += 4 + len(frame)
	ss.mu.Unlock()
	select {
	case ss.wake <- struct{}{}:
	default:
	}
	return nil
}

// writeLoop writes what is queued until finish (then it FINs the stream)
// or until a write fails, which the connection's end causes.
func (ss *sendStream) writeLoop(c *conn) {
	defer c.rest.Done()
	defer close(ss.exited)
	var batch []queued
	for {
		select {
		case <-ss.wake:
		case <-c.qc.Context().Done():
			ss.stop(c.qc.Context().Err())
			return
		}
		for {
			ss.mu.Lock()
			batch, ss.queue = ss.queue, batch[:0]
			closed := ss.closed
			ss.mu.Unlock()
			if len(batch) == 0 {
				if closed {
					ss.s.Close()
					ss.stop(nil)
					return
				}
				break
			}
			n := 0
			var err error
			var spare []byte
			for i, q := range batch {
				if q.big != nil {
					n += 4 + len(q.big)
					if err == nil {
						err = writeFramed(ss.s, q.big)
					}
					core.ReleaseFrame(q.big)
				} else {
					n += len(q.small)
					if err == nil {
						_, err = ss.s.Write(q.small)
					}
					if cap(q.small) <= maxQueue {
						spare = q.small[:0]
					}
				}
				batch[i] = queued{}
			}
			if err != nil {
				ss.s.CancelWrite(0)
				ss.stop(err)
				return
			}
			ss.mu.Lock()
			ss.queued -= n
			if spare != nil {
				ss.spare = spare
			}
			ss.mu.Unlock()
			ss.cond.Broadcast()
		}
	}
}

// stop ends the stream after an error (nil after its FIN): later writes
// fail, waiting ones wake up.
func (ss *sendStream) stop(err error) {
	ss.mu.Lock()
	if err == nil {
		err = net.ErrClosed
	}
	if ss.err == nil {
		ss.err = err
	}
	for _, q := range ss.queue {
		if q.big != nil {
			core.ReleaseFrame(q.big)
		}
	}
	ss.queue, ss.queued = nil, 0
	ss.mu.Unlock()
	ss.cond.Broadcast()
}

// finish has the writer FIN the stream after what is queued; later
// writes fail. wait waits for the FIN (or for the writer's failure).
func (ss *sendStream) finish(wait bool) {
	ss.mu.Lock()
	ss.closed = true
	started := ss.started
	ss.mu.Unlock()
	ss.cond.Broadcast()
	if !started {
		return
	}
	select {
	case ss.wake <- struct{}{}:
	default:
	}
	if wait {
		<-ss.exited
	}
}

func appendFramed(b, frame []byte) []byte {
	n := len(frame)
	b = append(b, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	return append(b, frame...)
}

func newConn(qc *quicgo.Conn, opts core.ConnOptions) *conn {
	c := &conn{
		qc:     qc,
		opts:   opts,
		remote: qc.RemoteAddr().String(),
		lanes:  map[uint64]*sendStream{},
		frames: make(chan []byte, queuedFrames),
		done:   make(chan struct{}),
		hsDone: make(chan struct{}),
		byeCh:  make(chan struct{}),
		eof:    make(chan struct{}),
		first:  newSendStream(),
	}
	c.wctx, c.wcancel = context.WithCancel(qc.Context())
	c.rest.Add(1)
	go c.acceptLoop()
	return c
}

// WriteFrame writes frame on the stream its lane maps to (see the package
// doc). It returns once the frame is handed to QUIC, which may wait for
// the peer's flow control.
func (c *conn) WriteFrame(lane uint64, frame []byte) error {
	if len(frame) > math.MaxUint32 {
		return fmt.Errorf("quic: write to %s: frame of %d bytes: %w", c.remote, len(frame), core.ErrMessageTooLarge)
	}
	if len(frame) == 0 {
		return fmt.Errorf("quic: write to %s: empty frame", c.remote)
	}
	if c.closing.Load() {
		return c.closedErr()
	}
	c.mu.Lock()
	var ss *sendStream
	if c.written < orderedFrames {
		c.written++
		ss = c.first
	} else if lane != 0 {
		slot := lane % laneStreams
		if ss = c.lanes[slot]; ss == nil {
			ss = newSendStream()
			c.lanes[slot] = ss
		}
	}
	c.mu.Unlock()
	if ss == nil {
		return c.writeAlone(frame)
	}
	err := ss.write(c, frame)
	if err == nil && ss == c.first {
		ss.mu.Lock()
		ss.n++
		last := ss.n == orderedFrames
		ss.mu.Unlock()
		if last {
			ss.finish(false)
		}
	}
	return err
}

// writeAlone writes frame on a new stream of its own.
func (c *conn) writeAlone(frame []byte) error {
	s, err := c.open()
	if err != nil {
		return err
	}
	if len(frame) <= bigFrame {
		// A small frame alone on its stream (an ask, a reply) is sent
		// before the bulk of other streams: urgency 2, where the default
		// is 3 (RFC 9218; lower is sooner).
		s.SetPriority(2, false)
	}
	err = writeFramed(s, frame)
	core.ReleaseFrame(frame)
	if err != nil {
		s.CancelWrite(0)
		return c.writeErr(err)
	}
	s.Close()
	return nil
}

// open opens a stream, waiting while the peer's stream limit is reached,
// until Close.
func (c *conn) open() (*quicgo.SendStream, error) {
	c.openMu.Lock()
	defer c.openMu.Unlock()
	if c.closing.Load() {
		return nil, c.closedErr()
	}
	s, err := c.qc.OpenUniStreamSync(c.wctx)
	if err != nil {
		return nil, c.writeErr(err)
	}
	return s, nil
}

// writeFramed writes the length and the frame; small frames go in one
// Write, through a pooled buffer.
func writeFramed(s *quicgo.SendStream, frame []byte) error {
	if len(frame) <= bigFrame {
		bp := framedPool.Get().(*[]byte)
		*bp = appendFramed((*bp)[:0], frame)
		_, err := s.Write(*bp)
		framedPool.Put(bp)
		return err
	}
	var hdr [4]byte
	putLen(hdr[:], len(frame))
	if _, err := s.Write(hdr[:]); err != nil {
		return err
	}
	_, err := s.Write(frame)
	return err
}

var framedPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func putLen(b []byte, n int) {
	b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
}

func (c *conn) closedErr() error {
	return fmt.Errorf("quic: write to %s: %w", c.remote, net.ErrClosed)
}

func (c *conn) writeErr(err error) error {
	if c.closing.Load() {
		return c.closedErr()
	}
	return fmt.Errorf("quic: write to %s: %w", c.remote, err)
}

// acceptLoop accepts the peer's streams, in stream id order, and starts a
// reader for each, until the connection closes.
func (c *conn) acceptLoop() {
	defer c.rest.Done()
	first := true
	for {
		s, err := c.qc.AcceptUniStream(context.Background())
		if err != nil {
			c.fail(c.connErr(err))
			return
		}
		c.mu.Lock()
		if c.bye { // nothing may follow the goodbye
			c.mu.Unlock()
			s.CancelRead(0)
			continue
		}
		c.active++
		c.mu.Unlock()
		c.rest.Add(1)
		go c.readStream(s, first)
		first = false
	}
}

// connErr turns the error that closed the QUIC connection into ReadFrame's.
func (c *conn) connErr(err error) error {
	var ae *quicgo.ApplicationError
	if errors.As(err, &ae) && ae.Remote && ae.ErrorCode == codeNone {
		return fmt.Errorf("quic: read from %s: connection closed by peer: %w", c.remote, io.EOF)
	}
	return fmt.Errorf("quic: read from %s: %w", c.remote, err)
}

// readStream reads the frames of one stream and hands them to ReadFrame.
// Streams other than the first wait until the first has ended.
func (c *conn) readStream(s *quicgo.ReceiveStream, first bool) {
	defer c.rest.Done()
	if first {
		defer c.hsOnce()
	} else {
		select {
		case <-c.hsDone:
		case <-c.done:
			c.readerDone(false)
			return
		}
	}
	var hdr [4]byte
	for n := 0; ; n++ {
		// The first stream carries the peer's first frames, its
		// handshake among them (the others wait for it to end).
		limit := c.opts.MaxFrameSize
		if first {
			limit = c.opts.FrameLimit(n)
		}
		if limit <= 0 || limit > math.MaxUint32 {
			limit = math.MaxUint32
		}
		frame, err := readFrame(s, limit, &hdr)
		switch {
		case err == nil && len(frame) == 0 && n == 0:
			c.readerDone(true) // goodbye
			return
		case err == nil && len(frame) == 0:
			c.failClose(codeProtocol, fmt.Errorf("quic: read from %s: empty frame: %w", c.remote, core.ErrProtocol))
		case err == io.EOF:
			c.readerDone(false)
			return
		case errors.Is(err, core.ErrMessageTooLarge):
			c.failClose(codeTooLarge, fmt.Errorf("quic: read from %s: %w", c.remote, err))
		case err != nil:
			if c.qc.Context().Err() != nil {
				c.fail(c.connErr(context.Cause(c.qc.Context())))
			} else {
				c.failClose(codeProtocol, fmt.Errorf("quic: read from %s: %w: %w", c.remote, core.ErrProtocol, err))
			}
		}
		if err != nil || len(frame) == 0 {
			s.CancelRead(0)
			c.readerDone(false)
			return
		}
		select {
		case c.frames <- frame:
		case <-c.done:
			s.CancelRead(0)
			c.readerDone(false)
			return
		}
	}
}

func (c *conn) hsOnce() {
	c.once.Do(func() { close(c.hsDone) })
}

// readerDone ends a reader; bye says it read the peer's goodbye. The last
// reader after the goodbye closes eof.
func (c *conn) readerDone(bye bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active--
	if bye && !c.bye {
		c.bye = true
		close(c.byeCh)
	}
	if c.bye && c.active == 0 {
		select {
		case <-c.eof:
		default:
			close(c.eof)
		}
	}
}

// ReadFrame returns the next frame any stream delivered. After the peer's
// goodbye it returns the frames still queued, then io.EOF.
func (c *conn) ReadFrame() ([]byte, error) {
	select {
	case f := <-c.frames:
		return f, nil
	case <-c.done:
		return nil, c.err
	case <-c.eof:
		select {
		case f := <-c.frames:
			return f, nil
		default:
			return nil, fmt.Errorf("quic: read from %s: connection closed by peer: %w", c.remote, io.EOF)
		}
	}
}

var _ core.BufferedConn = (*conn)(nil)

// Buffered returns the number of frames received and not yet returned by
// ReadFrame (core.BufferedConn).
func (c *conn) Buffered() int { return len(c.frames) }

// fail records err as ReadFrame's error, once, and closes the connection.
func (c *conn) fail(err error) {
	c.failOnce.Do(func() {
		c.err = err
		close(c.done)
	})
}

// failClose fails the connection for a peer's protocol violation.
func (c *conn) failClose(code quicgo.ApplicationErrorCode, err error) {
	c.fail(err)
	c.failed.Store(true)
	c.closing.Store(true)
	c.wcancel()
	c.qc.CloseWithError(code, err.Error())
}

// Close says goodbye to the peer after the frames written so far, waits
// (at most closeFlush) for the peer to take them, closes the connection
// and waits for the connection's goroutines.
func (c *conn) Close() error {
	c.closeOnce.Do(c.close)
	return nil
}

func (c *conn) close() {
	c.closing.Store(true)
	c.fail(fmt.Errorf("quic: read from %s: %w", c.remote, net.ErrClosed))
	c.wcancel()
	c.mu.Lock()
	peerBye := c.bye
	c.mu.Unlock()
	if !peerBye && c.qc.Context().Err() == nil && !c.failed.Load() {
		flushed := make(chan struct{})
		go func() { // ends by itself, or when CloseWithError fails its writes
			defer close(flushed)
			c.goodbye()
		}()
		timer := time.NewTimer(closeFlush)
		select {
		case <-flushed:
			select {
			case <-c.qc.Context().Done(): // the peer took everything and closed
			case <-c.byeCh: // the peer is closing too
			case <-timer.C:
			}
		case <-timer.C:
		}
		timer.Stop()
		c.qc.CloseWithError(codeNone, "")
		<-flushed
	}
	c.qc.CloseWithError(codeNone, "")
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
	c.rest.Wait()
	if c.onClose != nil {
		c.onClose()
	}
}

// goodbye FINs every stream that carries several frames, once its write
// in progress is done, then writes the goodbye on a last stream.
func (c *conn) goodbye() {
	c.mu.Lock()
	all := []*sendStream{c.first}
	for _, ss := range c.lanes {
		all = append(all, ss)
	}
	c.mu.Unlock()
	for _, ss := range all {
		ss.finish(false)
	}
	for _, ss := range all {
		ss.finish(true)
	}
	c.openMu.Lock()
	s, err := c.qc.OpenUniStreamSync(c.qc.Context())
	c.openMu.Unlock()
	if err != nil {
		return
	}
	s.Write(make([]byte, 4))
	s.Close()
}

func (c *conn) RemoteAddr() string { return c.remote }
