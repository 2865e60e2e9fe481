// Package quic is rpcenv's QUIC transport, for "quic://host:port" URIs,
// built on github.com/quic-go/quic-go.
//
// # The frame stream
//
// One QUIC connection joins two envs, and carries their messages on ONE
// bidirectional stream, in the format of internal/framing (a 4-byte
// big-endian length and that many bytes), exactly as TCP does. The env
// cuts large messages into chunks and interleaves them with asks and
// control frames itself, so a large message cannot hold the connection;
// one ordered stream keeps what arrives, and in which order (a send then
// an ask to the same endpoint), the same on every transport. What QUIC
// brings is the rest: TLS 1.3 always, loss recovery and congestion
// control over UDP, and liveness (keep-alive and idle timeout).
//
// The dialer opens the stream and writes the 8-byte preamble "rpcenv/2"
// on it before any frame: quic-go announces a stream to the listener only
// once bytes arrive on it, and the preamble says the stream is rpcenv's.
// The listener waits for it (at most Options.HandshakeTimeout) in a
// goroutine per connection, so a slow or silent client never holds
// Accept, which returns only connections whose stream is up.
//
// # Streams
//
// Each rpcenv stream (core.Ref.OpenStream) is a QUIC stream of its own:
// a connection is a core.StreamConn. The side that opened the rpcenv
// stream opens the QUIC stream once the stream is accepted, and labels
// it with the stream's 8-byte ID; the env pairs them (docs/PROTOCOL.md,
// "Streams on QUIC"). A stream's bytes, its end and its flow control are
// QUIC's: a lost packet delays only its own stream, and a reader that
// does not read stops only its own writer. Each stream's receive window
// is 256 KiB, and the connection's is large enough for the frame stream
// and core.MaxStreamsPerConn stalled streams at once, so that streams
// cannot take the credit the frame stream needs. Either side may have
// 2 × core.MaxStreamsPerConn byte streams open at once (QUIC frees a
// slot only once the peer has seen the stream fully closed); a stream
// whose label does not come within Options.HandshakeTimeout is aborted.
//
// Close FINs the stream after the frames written, and waits (at most
// 250 ms) for the peer to end its side too, which it does once it has read
// them; then it closes the connection (CONNECTION_CLOSE, which discards
// whatever the peer has not read yet). A frame announcing more than the
// env's MaxFrameSize is refused before its body is read; the connection
// is then closed with an error code.
//
// # Closed ports, closed listeners and restarts
//
// A dial to an address where no listener is open fails within about one
// round trip, with an error wrapping syscall.ECONNREFUSED, instead of
// after HandshakeTimeout:
//
//   - Nothing listens on the UDP port (the process is gone, or its
//     listener and connections are closed): the ICMP "port unreachable"
//     the kernel answers with fails the dial. quic-go's own socket is not
//     connected and never sees ICMP errors, so a dial sends a one-byte
//     probe from a connected socket of its own, and sends it again every
//     50 ms until the handshake is done: a port that closes during the
//     dial (a server shutting down) fails it within about one round trip
//     too. A QUIC server drops the byte (it is not a QUIC packet). Where
//     a firewall drops ICMP, the dial waits for HandshakeTimeout.
//   - The listener is closed but the UDP socket is still open, because
//     connections it accepted are (a listener keeps its socket until its
//     last connection closes): the socket answers every new connection
//     attempt with a CONNECTION_CLOSE carrying QUIC's CONNECTION_REFUSED,
//     without a TLS handshake. (quic-go alone would drop the attempt
//     silently once its listener is closed.) Connections whose handshake
//     had completed but which were not accepted yet are closed too.
//
// A listening process that is killed and restarts on the same address is
// noticed by the envs that had dialed it within about one round trip of
// their next message, through QUIC's stateless reset (RFC 9000, section
// 10.3): the restarted process answers a packet of a connection it does
// not know with a reset that only a holder of the old process's
// stateless reset key can make, and the dialer then drops the
// connection: ReadFrame fails with an error wrapping
// *quicgo.StatelessResetError, and the env reports ErrDisconnected and
// connects anew. For that, the restarted process must
//
//   - listen on the same IP address and UDP port, and
//   - use the same key: the same Options.StatelessResetKey or, when that
//     is not set, the same private key in Options.TLS.Certificates[0],
//     from which the key is derived.
//
// With neither (the zero Options: an ephemeral self-signed certificate),
// each Transport value has a random key, and a restarted process is only
// noticed through IdleTimeout or the env's PeerTimeout; a listener made
// again by the same Transport value in the same process keeps the key.
// The other side learns of the restart from its next packet to the
// restarted process that is larger than 42 bytes (quic-go does not answer
// smaller ones, lest a reset be answered by a reset): a message, an ask,
// a reply, or the env's next heartbeat, which core pads for this (QUIC's
// own keep-alives are too small). The message that drew the reset is lost
// with the old connection: a send
// becomes a dead letter, an ask fails at once with ErrDisconnected, and
// the next message goes over a new connection. While nothing listens on
// the port, nothing answers (quic-go does not see ICMP errors): only the
// timeouts apply.
//
// This works in one direction: it tells the dialing side that the
// listening side restarted. Each dial uses a UDP socket of its own, on a
// port chosen by the kernel: a restarted dialer neither has its old port
// nor could prove a reset for those connections, so the listening side
// notices it only through its timeouts. Dialing from the listener's socket would fix
// this, but a Transport is shared by envs and does not know which env
// dials: two envs' connections would then share one address (which the
// accepting side uses to tell client-mode peers apart), and one env's
// connections would hold another's port open after it shut down.
//
// # Security
//
// QUIC always runs TLS 1.3. With the zero Options, New makes an ephemeral
// self-signed certificate for the listening side and dials without
// verifying the peer's certificate: the link is encrypted, but the peer is
// NOT authenticated, and an active attacker in the path can impersonate
// it. New logs this once at Warn. Set core.Config.Secret (both envs prove
// the secret in the env's handshake, in proofs bound to the TLS session,
// so that such an attacker cannot relay them) or a verified Options.TLS
// (see SelfSignedTLS) to authenticate peers.
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
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/internal/framing"
)

// ALPN is the TLS application protocol the transport negotiates; a peer
// that does not offer it is refused during the QUIC handshake. Version 2
// is one stream per connection; version 1 used a stream per ask.
const ALPN = "rpcenv/2"

// preamble is what the dialer writes on the stream before any frame.
const preamble = "rpcenv/2"

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
	// unverified TLS setup, problems with the stateless reset key). nil
	// means slog.Default().
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
	// HandshakeTimeout bounds a QUIC/TLS handshake that makes no progress,
	// and then the wait for the dialer's stream: a peer that opens a
	// connection and goes silent is dropped after it. 0 means 5 s.
	HandshakeTimeout time.Duration
	// StatelessResetKey is the secret from which the listening side makes
	// its stateless reset tokens: 32 bytes, kept secret, and the same
	// after a restart (with the same listening address), so that peers
	// that had dialed the old process learn of the restart within about
	// one round trip (see the package doc). Anyone who has it can end
	// this listener's connections. When nil, the key is derived
	// (HKDF-SHA256) from the private key of Options.TLS.Certificates[0],
	// so a stable certificate gives a stable key; without a certificate
	// there, it is random for each Transport. Servers that share a
	// certificate share the derived key: give each its own key if one of
	// them could be sent another's packets (RFC 9000, section 10.3.2). A
	// length other than 32 is an error, returned by Listen.
	StatelessResetKey []byte
}

// Transport is the QUIC transport. It is safe for concurrent use by
// multiple goroutines and by multiple envs.
type Transport struct {
	opts       Options
	server     *tls.Config
	client     *tls.Config
	verified   bool // Options.TLS was given
	listenConf *quicgo.Config
	dialConf   *quicgo.Config
	noCertErr  bool // the TLS config has no certificate for listening
	resetKey   *quicgo.StatelessResetKey
	keyErr     error // Options.StatelessResetKey is unusable; Listen returns it
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
	t.resetKey, t.keyErr = resetKey(opts)
	if t.keyErr != nil {
		opts.Logger.Error("quic: bad Options.StatelessResetKey; Listen will fail", "err", t.keyErr)
	}
	keepAlive := max(opts.KeepAlive, 0)
	t.listenConf = &quicgo.Config{
		HandshakeIdleTimeout:  opts.HandshakeTimeout,
		MaxIdleTimeout:        opts.IdleTimeout,
		KeepAlivePeriod:       keepAlive,
		MaxIncomingStreams:    1 + maxByteStreams, // the dialer's frame stream, and its byte streams
		MaxIncomingUniStreams: -1,                 // none
		// Fixed windows (no auto-tuning): a connection's window holds
		// every stream's, so that byte streams whose readers stall cannot
		// use up the connection's credit and stop its frame stream.
		InitialStreamReceiveWindow:     streamWindow,
		MaxStreamReceiveWindow:         streamWindow,
		InitialConnectionReceiveWindow: connWindow,
		MaxConnectionReceiveWindow:     connWindow,
	}
	t.dialConf = t.listenConf.Clone()
	t.dialConf.MaxIncomingStreams = maxByteStreams // the listener's byte streams
	return t
}

// Scheme returns "quic".
func (t *Transport) Scheme() string { return "quic" }

// Listen listens on the UDP address addr ("127.0.0.1:7077", "0.0.0.0:0").
func (t *Transport) Listen(addr string, opts core.ConnOptions) (core.Listener, error) {
	if t.noCertErr {
		return nil, fmt.Errorf("quic: listen quic://%s: no certificate for the listening side (Options.TLS)", addr)
	}
	if t.keyErr != nil {
		return nil, fmt.Errorf("quic: listen quic://%s: %w", addr, t.keyErr)
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("quic: listen quic://%s: %w", addr, err)
	}
	uc, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("quic: listen quic://%s: %w", addr, err)
	}
	tr := &quicgo.Transport{Conn: udpConn{uc}, StatelessResetKey: t.resetKey}
	ql, err := tr.Listen(t.server, t.listenConf)
	if err != nil {
		tr.Close()
		uc.Close()
		return nil, fmt.Errorf("quic: listen quic://%s: %w", addr, err)
	}
	l := &listener{
		t: t, tr: tr, uc: uc, ql: ql, opts: opts,
		addr:  ql.Addr().String(),
		ready: make(chan *conn),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Go(l.acceptLoop)
	return l, nil
}

// Dial connects to addr, runs the QUIC handshake, opens the connection's
// stream and writes the preamble on it.
func (t *Transport) Dial(ctx context.Context, addr string, opts core.ConnOptions) (core.Conn, error) {
	cfg := t.client
	if t.verified && cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	dctx, cancel := context.WithCancelCause(ctx)
	var probe sync.WaitGroup
	probe.Go(func() { probeRefused(dctx, addr, cancel) })
	qc, err := t.dial(dctx, addr, cfg)
	cancel(nil)
	probe.Wait()
	if err != nil {
		var te *quicgo.TransportError
		if cause := context.Cause(dctx); errors.Is(cause, syscall.ECONNREFUSED) {
			err = cause
		} else if errors.As(err, &te) && te.Remote && te.ErrorCode == quicgo.ConnectionRefused {
			err = fmt.Errorf("%w: the listener is closed (%w)", syscall.ECONNREFUSED, err)
		}
		return nil, fmt.Errorf("quic: dial quic://%s: %w", addr, err)
	}
	s, err := qc.OpenStreamSync(ctx)
	if err == nil {
		_, err = s.Write([]byte(preamble))
	}
	if err != nil {
		qc.CloseWithError(codeNone, "")
		return nil, fmt.Errorf("quic: dial quic://%s: open the stream: %w", addr, err)
	}
	return newConn(qc, s, opts, t.opts.HandshakeTimeout), nil
}

// dial connects to addr from a UDP socket of its own, on a port the
// kernel chooses, which is closed when the connection ends.
func (t *Transport) dial(ctx context.Context, addr string, cfg *tls.Config) (*quicgo.Conn, error) {
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		return nil, err
	}
	tr := &quicgo.Transport{Conn: udpConn{uc}}
	qc, err := tr.Dial(ctx, ra, cfg, t.dialConf)
	if err != nil {
		tr.Close()
		uc.Close()
		return nil, err
	}
	context.AfterFunc(qc.Context(), func() {
		tr.Close()
		uc.Close()
	})
	return qc, nil
}

// probeInterval is how often probeRefused sends its byte again.
const probeInterval = 50 * time.Millisecond

// probeRefused sends one byte from a connected UDP socket to addr, and
// again every probeInterval, so that the ICMP "port unreachable" of an
// address nobody listens on, or no longer listens on, fails the dial (by
// canceling it with ECONNREFUSED) within about one round trip, as a TCP
// RST would, instead of after HandshakeTimeout: quic-go's own socket is
// not connected and does not see ICMP errors. A QUIC server drops the
// byte (it is not a QUIC packet). It returns when ctx is done.
func probeRefused(ctx context.Context, addr string, cancel context.CancelCauseFunc) {
	uc, err := net.Dial("udp", addr)
	if err != nil {
		return
	}
	defer uc.Close()
	// Ends a Read when the dial ends. The loop checks ctx after setting
	// each deadline of its own, so that it cannot replace this one.
	stop := context.AfterFunc(ctx, func() { uc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var buf [1]byte
	for ctx.Err() == nil {
		_, err := uc.Write([]byte{0})
		if err == nil {
			uc.SetReadDeadline(time.Now().Add(probeInterval))
			if ctx.Err() != nil {
				return
			}
			// Read until the deadline: a datagram coming back (no QUIC
			// server sends one) must not make the probe send faster.
			for err == nil {
				_, err = uc.Read(buf[:])
			}
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			cancel(err)
			return
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return // the socket failed: the dial goes on without the probe
		}
	}
}

// listener owns its UDP socket, and closes it once it is closed and every
// connection it made is closed: the port is then free, and a dial to it
// is refused at once (see probeRefused). Between the two, the socket
// refuses new connections itself (see refuse). Its goroutines (the accept
// loop, one per connection waiting for its stream) end when Close cancels
// ctx; Close waits for them.
type listener struct {
	t     *Transport
	tr    *quicgo.Transport
	uc    *net.UDPConn
	ql    *quicgo.Listener
	opts  core.ConnOptions
	addr  string
	ready chan *conn // unbuffered: connections whose stream is up, for Accept

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	open     int  // connections made and not yet closed
	closed   bool // Close has returned from waiting for the goroutines
	shutOnce sync.Once
}

// acceptLoop takes the connections whose QUIC handshake completed (a peer
// that never completes it is dropped by quic-go after HandshakeTimeout)
// and waits for each one's stream in a goroutine of its own.
func (l *listener) acceptLoop() {
	for {
		qc, err := l.ql.Accept(l.ctx)
		if err != nil {
			return // Close
		}
		l.wg.Go(func() { l.setup(qc) })
	}
}

// setup waits for the dialer's stream and its preamble, then hands the
// connection to Accept.
func (l *listener) setup(qc *quicgo.Conn) {
	ctx, cancel := context.WithTimeout(l.ctx, l.t.opts.HandshakeTimeout)
	defer cancel()
	s, err := qc.AcceptStream(ctx)
	if err == nil {
		// The timeout, or Close, ends the read too.
		stop := context.AfterFunc(ctx, func() { s.SetReadDeadline(time.Now()) })
		var got [len(preamble)]byte
		if _, err = io.ReadFull(s, got[:]); err == nil && string(got[:]) != preamble {
			err = fmt.Errorf("the stream starts with %q, not the preamble %q", got[:], preamble)
		}
		if !stop() && err == nil {
			err = ctx.Err() // the deadline may be set: the stream is unusable
		}
	}
	if err != nil {
		if l.ctx.Err() != nil {
			qc.CloseWithError(codeNone, "listener closed")
		} else {
			qc.CloseWithError(codeProtocol, "no rpcenv stream")
		}
		return
	}
	c := newConn(qc, s, l.opts, l.t.opts.HandshakeTimeout)
	c.onClose = l.release
	l.mu.Lock()
	l.open++
	l.mu.Unlock()
	select {
	case l.ready <- c:
	case <-l.ctx.Done():
		c.abort(codeNone)
	}
}

// Accept returns the next connection whose stream is up.
func (l *listener) Accept() (core.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.ctx.Done():
		return nil, fmt.Errorf("quic: accept on quic://%s: %w", l.addr, net.ErrClosed)
	}
}

func (l *listener) Addr() string { return l.addr }

// Close stops accepting; connections already accepted stay open, and
// keep the UDP socket until the last one closes. Meanwhile the socket
// refuses new connections (see refuse).
func (l *listener) Close() error {
	l.cancel()
	err := l.ql.Close()
	l.wg.Wait()
	// quic-go's queue may hold connections whose handshake completed
	// after the accept loop's last Accept: their dialers would wait for
	// the stream's first frame until a timeout.
	for {
		qc, aerr := l.ql.Accept(context.Background()) // the queue, then ErrServerClosed
		if aerr != nil {
			break
		}
		qc.CloseWithError(codeNone, "listener closed")
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return err
	}
	l.closed = true
	last := l.open == 0
	if !last {
		// Under mu: release cannot shut the transport before this.
		l.refuse()
	}
	l.mu.Unlock()
	if last {
		l.shut()
	}
	return err
}

// errClosedListener is why a closed listener refuses a connection.
var errClosedListener = errors.New("quic: the listener is closed")

// refuse makes the transport answer every new connection attempt with a
// CONNECTION_CLOSE(CONNECTION_REFUSED), sent from the client's Initial
// keys before any TLS: with no listener, quic-go would drop the attempt,
// and the dialer would wait for its handshake timeout. The refusing
// listener ends with the transport, in shut.
func (l *listener) refuse() {
	conf := l.t.listenConf.Clone()
	conf.GetConfigForClient = func(*quicgo.ClientInfo) (*quicgo.Config, error) { return nil, errClosedListener }
	if _, err := l.tr.Listen(l.t.server, conf); err != nil {
		l.t.opts.Logger.Debug("quic: a closed listener cannot refuse new connections; they will time out", "listen", l.addr, "err", err)
	}
}

// release is called when a connection of the listener has closed.
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
	l.shutOnce.Do(func() {
		l.tr.Close()
		l.uc.Close()
	})
}

// Stream limits and flow-control windows (see "Streams" in the package
// doc).
const (
	// streamWindow is the receive window of each QUIC stream: what a
	// stream buffers, at most, for a reader that does not read.
	streamWindow = 256 << 10
	// maxByteStreams is how many byte streams a peer may open at once:
	// twice the env's stream limit, because QUIC lets a new stream be
	// opened only once the peer has seen an old one fully closed, which
	// may lag the env's own count by a round trip.
	maxByteStreams = 2 * core.MaxStreamsPerConn
	// connWindow is the connection's receive window: room for every
	// stream the env accepts and the frame stream, each with a full
	// window.
	connWindow = (core.MaxStreamsPerConn + 1) * streamWindow
)

const (
	// closeWait bounds how long Close waits for the peer to end its side
	// of the stream before it closes the connection.
	closeWait = 250 * time.Millisecond
	// readBuffer is the size of a connection's read buffer.
	readBuffer = 64 << 10
)

// Application error codes of CONNECTION_CLOSE.
const (
	codeNone     quicgo.ApplicationErrorCode = 0
	codeProtocol quicgo.ApplicationErrorCode = 1
	codeTooLarge quicgo.ApplicationErrorCode = 2
)

// conn is one QUIC connection and its frame stream. WriteFrames runs in
// the env's writer goroutine, ReadFrame in its reader, AcceptStream in a
// goroutine of the env's, Close in any; the connection starts no
// goroutine of its own.
type conn struct {
	qc        *quicgo.Conn
	s         *quicgo.Stream
	remote    string
	labelWait time.Duration // how long AcceptStream waits for a byte stream's label
	onClose   func()        // set by the listener; called once, at the end of Close

	closed atomic.Bool // set first thing by Close
	// broken holds the error code Close sends at once, without the
	// graceful end: the peer violated the protocol, or the stream
	// already failed.
	broken atomic.Uint64
	once   sync.Once

	wmu sync.Mutex // held by WriteFrames, and by Close to FIN the stream
	w   *framing.Writer
	rmu sync.Mutex // held by ReadFrame, and by Close to wait for the peer's FIN
	r   *framing.Reader
}

const notBroken = ^uint64(0)

func newConn(qc *quicgo.Conn, s *quicgo.Stream, opts core.ConnOptions, labelWait time.Duration) *conn {
	c := &conn{
		qc:        qc,
		s:         s,
		remote:    qc.RemoteAddr().String(),
		labelWait: labelWait,
		w:         framing.NewWriter(s),
		r:         framing.NewReader(s, readBuffer, opts.MaxFrameSize),
	}
	c.broken.Store(notBroken)
	return c
}

// WriteFrames writes frames on the stream, in 64 KiB writes. It blocks
// while QUIC's flow control has no credit, until the peer reads or Close
// is called.
func (c *conn) WriteFrames(frames [][]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed.Load() {
		return c.closedErr("write to")
	}
	if err := c.w.WriteFrames(frames); err != nil {
		if c.closed.Load() {
			return c.closedErr("write to")
		}
		c.broken.CompareAndSwap(notBroken, uint64(codeNone))
		return fmt.Errorf("quic: write to %s: %w", c.remote, c.cause(err))
	}
	return nil
}

// ReadFrame returns the next frame; see core.Conn.
func (c *conn) ReadFrame() ([]byte, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.closed.Load() {
		return nil, c.closedErr("read from")
	}
	f, err := c.r.ReadFrame()
	switch {
	case c.closed.Load(): // even with a frame: none is returned after Close
		return nil, c.closedErr("read from")
	case err == io.EOF:
		return nil, io.EOF
	case errors.Is(err, core.ErrMessageTooLarge):
		c.broken.Store(uint64(codeTooLarge))
	case errors.Is(err, core.ErrProtocol), errors.Is(err, io.ErrUnexpectedEOF):
		c.broken.Store(uint64(codeProtocol))
	case err != nil:
		c.broken.Store(uint64(codeNone))
	}
	if err != nil {
		return nil, fmt.Errorf("quic: read from %s: %w", c.remote, c.cause(err))
	}
	return f, nil
}

// cause names the reason a stream operation failed: the connection's end
// (the peer closed it, the idle timeout) when that is what happened.
func (c *conn) cause(err error) error {
	var ae *quicgo.ApplicationError
	var sr *quicgo.StatelessResetError
	switch {
	case errors.As(err, &ae) && ae.Remote && ae.ErrorCode == codeNone:
		return fmt.Errorf("connection closed by the peer before the end of the stream: %w", err)
	case errors.As(err, &sr):
		return fmt.Errorf("the peer no longer knows the connection, as after a restart: %w", err)
	}
	return err
}

var _ core.BufferedConn = (*conn)(nil)

// Buffered returns the number of bytes in the read buffer, received and
// not yet returned by ReadFrame (core.BufferedConn). Bytes QUIC holds
// beyond the read buffer are not counted.
func (c *conn) Buffered() int { return c.r.Buffered() }

func (c *conn) closedErr(op string) error {
	return fmt.Errorf("quic: %s %s: %w", op, c.remote, net.ErrClosed)
}

// Close ends a blocked ReadFrame and WriteFrames at once, FINs the stream
// after the frames written, waits at most 250 ms for the peer's FIN (the
// peer has read everything), then closes the connection.
func (c *conn) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		now := time.Now()
		c.s.SetReadDeadline(now)
		c.s.SetWriteDeadline(now) // a frame cut short here reaches the peer torn
		if code := c.broken.Load(); code != notBroken {
			c.abort(quicgo.ApplicationErrorCode(code))
			return
		}
		c.wmu.Lock()
		c.s.Close() // FIN
		c.wmu.Unlock()
		c.rmu.Lock()
		c.s.SetReadDeadline(now.Add(closeWait))
		var sink [512]byte
		for {
			if _, err := c.s.Read(sink[:]); err != nil {
				break // the peer's FIN, its CONNECTION_CLOSE, or closeWait
			}
		}
		c.rmu.Unlock()
		c.abort(codeNone)
	})
	return nil
}

// abort closes the connection with code, at once.
func (c *conn) abort(code quicgo.ApplicationErrorCode) {
	c.closed.Store(true)
	c.qc.CloseWithError(code, "")
	if c.onClose != nil {
		c.onClose()
	}
}

func (c *conn) RemoteAddr() string { return c.remote }

// ChannelBinding returns the QUIC connection's TLS tls-exporter value (RFC
// 9266), for the handshake's proofs of the secret (core.BoundConn).
func (c *conn) ChannelBinding() ([]byte, error) {
	st := c.qc.ConnectionState().TLS
	return st.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
}
