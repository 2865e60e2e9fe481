package core

import (
	"context"
	"fmt"
)

// Endpoint handles the messages sent or asked to it.
//
// By default an endpoint receives one message at a time, in arrival order,
// so it needs no locks of its own; [WithConcurrency] allows more.
type Endpoint interface {
	// Receive handles one message. For an ask, answer with c.Reply or
	// c.Fail, now or later from any goroutine; returning a non-nil error
	// without having answered fails the ask with it. For a send, a
	// returned error goes to OnError.
	Receive(c *Context, msg any) error
}

// Starter is implemented by an endpoint that wants to run code before its
// first message. OnStart runs exactly once, in the endpoint's inbox, before
// any message; self is the endpoint's own ref. Register does not wait for
// it: messages sent meanwhile queue behind it.
//
// An error returned by OnStart stops the endpoint before it handles any
// message. OnError gets the error, wrapped ("rpcenv: OnStart of <ref>:
// …", so errors.Is finds it; without OnError it is logged), and then:
//   - the messages that queued behind OnStart are not delivered: each
//     send is a dead letter and each ask fails, both with
//     ErrEndpointNotFound ("OnStart failed"), the ask's error naming the
//     endpoint;
//   - OnStop runs, so that what OnStart set up before it failed can be
//     released;
//   - the name is unregistered, as after [Env.Stop]: sends, asks and
//     lookups fail with ErrEndpointNotFound, and the name may be
//     registered again.
//
// Register has returned the ref by then: its caller learns of the failure
// through OnError, or when a message fails.
//
// Spark does otherwise: onStart's exception goes to onError and the
// endpoint stays, receiving messages. We stop it because an endpoint
// whose start failed would handle its messages half-initialised (a nil
// connection, a file not opened), failing each one far from the cause or,
// worse, answering wrongly, while its senders believe it works. A missing
// endpoint is an error they handle already, and its owner can register it
// again once the cause is fixed. An endpoint that can work without what
// OnStart could not get should handle that itself and return nil.
//
// A panic in OnStart is recovered, reported to OnError as a
// *[PanicError], and stops the endpoint in the same way.
type Starter interface{ OnStart(self *Ref) error }

// Stopper is implemented by an endpoint that wants to run code after its
// last message. OnStop runs exactly once, after every message the endpoint
// accepted has been handled, when the endpoint is stopped by [Env.Stop],
// by [Env.Shutdown], or after OnStart failed.
type Stopper interface{ OnStop() }

// ErrorHandler is implemented by an endpoint that wants to see the errors
// it produced outside an ask: errors returned by Receive for a send, errors
// from OnStart, and panics recovered from Receive, OnStart and OnStop
// (as *[PanicError]). Without it the env logs them.
type ErrorHandler interface{ OnError(err error) }

// NetworkObserver is implemented by an endpoint that wants to know about
// peer envs. Events are delivered through the endpoint's inbox, in order
// with its messages: OnConnected for a peer comes before any message that
// arrived over that connection. remote is the peer env's advertised URI,
// or for a client-mode peer the connection's remote address.
//
// An env's own Shutdown fires no OnDisconnected in its endpoints. An
// endpoint registered while a connection is already up gets no
// OnConnected for it.
type NetworkObserver interface {
	// OnConnected: the first connection to or from the peer env is up.
	OnConnected(remote string)
	// OnDisconnected: the last connection to the peer env is gone.
	OnDisconnected(remote string)
	// OnNetworkError: a connection to the peer failed with err
	// (a failed dial, a broken connection, a protocol violation).
	OnNetworkError(remote string, err error)
}

// Delegator is implemented by an endpoint that wraps another value, such
// as the endpoints rpcgen generates around a user's handler: the env looks
// for Starter, Stopper, ErrorHandler and NetworkObserver on Delegate()'s
// result instead of on the endpoint itself, so the wrapper passes through
// exactly the callbacks the wrapped value has.
type Delegator interface{ Delegate() any }

// SupportPackageIsVersion1 is referenced by code that rpcgen generates
// (const _ = core.SupportPackageIsVersion1), so that generated code that
// needs a newer core fails to compile instead of misbehaving.
const SupportPackageIsVersion1 = true

// Transport moves frames of bytes between envs for one URI scheme.
//
// A transport moves bytes and reports loss; it knows nothing of
// endpoints, asks, handshakes or authentication. The env runs its own
// handshake over the [Conn] a transport returns, cuts large messages into
// chunks, decides which frame goes out next (control frames first, then
// the lanes in turn), applies flow control, and fails in-flight asks when
// a Conn reports an error. A Transport value is shared by every env that
// lists it in [Config.Transports]; it must be safe for concurrent use.
//
// The conformance package checks every rule written here; a transport
// author should run it (conformance.Run) from one test.
type Transport interface {
	// Scheme is the URI scheme the transport serves, such as "tcp".
	Scheme() string
	// Listen starts accepting connections at addr. addr is the part of a
	// URI between "scheme://" and the first "/" after it, exactly as
	// written, with no unescaping: "127.0.0.1:0" for tcp://127.0.0.1:0,
	// "driver" for inproc://driver. A transport whose addresses may hold
	// a "/" (a Unix socket path) must define an encoding for it, such as
	// percent-encoding, and undo it itself. An address in use is an error
	// that names it; when the address has a port, the error should wrap
	// the OS's syscall.EADDRINUSE, which Config.PortRetries looks for.
	Listen(addr string, opts ConnOptions) (Listener, error)
	// Dial connects to the listener at addr (as in Listen). It returns
	// when the connection can carry frames, or with an error once ctx is
	// done.
	Dial(ctx context.Context, addr string, opts ConnOptions) (Conn, error)
}

// ConnOptions are the limits an env imposes on the connections of a
// transport.
type ConnOptions struct {
	// MaxFrameSize is the largest frame ReadFrame may return. A frame
	// that announces more must be rejected before its body is read or
	// allocated: ReadFrame then returns an error wrapping
	// [ErrMessageTooLarge], and the env closes the connection. The env
	// never writes a frame larger than this: messages above it cross as
	// chunks (docs/PROTOCOL.md), so the limit is small (a little over
	// 64 KiB) and a peer cannot make the env allocate more per frame,
	// authenticated or not. 0 means no limit.
	MaxFrameSize int
}

// Listener accepts connections for an env.
type Listener interface {
	// Accept waits for the next connection. After Close it returns an
	// error wrapping net.ErrClosed. Any other error (too many open files)
	// is not the end: the env logs it (at most once a second), waits
	// from 5 ms doubling up to 1 s while errors go on, and calls Accept
	// again.
	Accept() (Conn, error)
	// Addr is the address actually bound, in the form Listen takes
	// (the real port after ":0").
	Addr() string
	// Close stops accepting; connections already accepted stay open.
	Close() error
}

// Conn is one connection between two envs: a reliable, ordered stream of
// frames in each direction. Frame boundaries are kept: ReadFrame returns
// exactly the frames the other end wrote, in the order written, each
// whole, with no byte changed.
//
// Concurrency: the env calls WriteFrames from one goroutine at a time
// (the connection's writer) and ReadFrame from one goroutine at a time
// (its reader), concurrently with each other; Close and RemoteAddr may be
// called from any goroutine at any time.
//
// Memory: frames given to WriteFrames belong to the caller again when it
// returns, and the transport must not keep them or any part of them. The
// slice ReadFrame returns belongs to the transport and is valid until the
// next ReadFrame or Close.
type Conn interface {
	// WriteFrames writes frames, in order, after every frame written
	// before. It may return before the bytes reach the peer (once they
	// are in a kernel or library buffer), and it may block while the
	// peer does not read (backpressure): the env never calls it from a
	// goroutine that anything else waits on. Once Close has been called,
	// a blocked WriteFrames must return an error promptly, and every
	// later call must fail. A frame over the peer's limit, or a broken
	// connection, is an error; after an error the env closes the Conn.
	WriteFrames(frames [][]byte) error
	// ReadFrame returns the next frame received. When the peer closed
	// the connection cleanly after its last frame it returns io.EOF
	// (unwrapped). After Close it returns an error wrapping
	// net.ErrClosed, never another frame, even one already received. A
	// frame announcing more than ConnOptions.MaxFrameSize is an error
	// wrapping ErrMessageTooLarge, returned before the frame's body is
	// read; an empty frame or a torn one is an error too (wrapping
	// ErrProtocol or io.ErrUnexpectedEOF). The env closes the Conn after
	// any error: the transport need not.
	ReadFrame() ([]byte, error)
	// Close closes the connection in both directions: ReadFrame and
	// WriteFrames return at once with errors, and the peer's ReadFrame
	// ends (with io.EOF after the frames already written, or with an
	// error). Frames that WriteFrames returned for before Close should
	// reach the peer when the network allows, but Close never waits for
	// a peer that does not read for longer than about 250 ms. It is safe
	// to call more than once and from any goroutine.
	Close() error
	// RemoteAddr labels the other end, in the form Listen takes
	// ("127.0.0.1:53122"). On an accepted connection it labels a
	// client-mode peer (one without a listener) in events, Context.Sender
	// and logs, so two accepted connections open at the same time must
	// not share a label; on a dialed connection it may be the address
	// dialed.
	RemoteAddr() string
}

// A BufferedConn is a Conn that can tell whether ReadFrame would return
// without waiting. It is optional; the env uses it to save a wake-up per
// ask. When the env's read loop hands an ask or a reply to a goroutine
// (the endpoint's worker, the waiting asker) and nothing more is
// buffered, it yields its processor so that goroutine runs at once,
// instead of after the read loop's next system call. When frames are
// buffered it goes on reading, so a burst is still read in one go.
type BufferedConn interface {
	Conn
	// Buffered reports how much has been received and not yet returned by
	// ReadFrame, in the transport's own unit (bytes or frames). Zero means
	// the next ReadFrame may wait. It is called from the goroutine that
	// calls ReadFrame.
	Buffered() int
}

// A BoundConn is a Conn over TLS (TLS over TCP, QUIC) that exports its
// TLS session's channel binding. With Config.Secret set, the handshake's
// proofs of the secret cover it (docs/PROTOCOL.md, "The handshake"), so
// that a relay that terminates TLS between two envs, holding a TLS session
// with each, cannot pass one side's proof on to the other: both sides
// fail the handshake with ErrUnauthenticated. A transport whose Conns
// carry TLS should implement it, on both ends.
type BoundConn interface {
	Conn
	// ChannelBinding returns the TLS session's tls-exporter value (RFC
	// 9266): ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32),
	// once the TLS handshake is complete; nil, nil for a connection
	// without TLS.
	ChannelBinding() ([]byte, error)
}

// A StreamConn is a Conn that carries each of the env's streams
// (Ref.OpenStream) on a byte stream of its own, with the transport's own
// flow control, instead of as stream frames on the connection: the QUIC
// transport gives each rpcenv stream a QUIC stream. It is optional, but a
// property of the scheme, not of one connection: the env uses it whenever
// a Conn implements it, and both ends must agree (stream frames where the
// peer expects byte streams break the protocol), so every Conn a
// transport returns, dialed or accepted, implements it or none does. The
// opening message and the stream's abort reason still cross as frames on
// the Conn (docs/PROTOCOL.md, "Streams on QUIC").
//
// The env calls OpenStream and the ByteStream methods from any goroutine,
// and AcceptStream from one goroutine at a time.
type StreamConn interface {
	Conn
	// OpenStream opens a byte stream to the peer and labels it with id:
	// the peer's AcceptStream returns it with id. It returns once the
	// stream can be written, or with an error once ctx is done or the
	// connection is closed.
	OpenStream(ctx context.Context, id uint64) (ByteStream, error)
	// AcceptStream waits for the next byte stream the peer opened and
	// returns it with the id the peer gave it. A stream whose label does
	// not arrive in time is aborted by the transport and not returned.
	// After Close, or once the connection is gone, it returns an error
	// wrapping net.ErrClosed.
	AcceptStream() (id uint64, s ByteStream, err error)
}

// ByteStream is one byte stream of a StreamConn: reliable, ordered and
// flow-controlled each way, with a window per stream so that a reader
// that does not read stops only its own stream's writer. Read and Write
// may be called concurrently with each other and with the other methods.
type ByteStream interface {
	// Read reads what the peer wrote. It returns io.EOF (unwrapped) after
	// the peer's CloseWrite, and an error wrapping *ByteStreamError when
	// the peer aborted its side with a code (Abort).
	Read(p []byte) (int, error)
	// Write writes p, waiting while the peer's window is full. It fails
	// with an error wrapping *ByteStreamError when the peer stopped
	// reading with a code (StopReading).
	Write(p []byte) (int, error)
	// CloseWrite ends the writing side after what was written: the
	// peer's Read returns io.EOF once it has read it all.
	CloseWrite() error
	// StopReading tells the peer that nothing more is read: its Write
	// fails with code. A Read blocked here returns with an error.
	StopReading(code uint64)
	// Abort ends both directions at once with code: what was written and
	// not yet received is dropped, the peer's Read and Write fail with
	// code, and a Read or Write blocked here returns with an error.
	Abort(code uint64)
}

// ByteStreamError is how a ByteStream reports that the peer ended a
// direction of it with a code: Abort on its side (for Read) or
// StopReading (for Write).
type ByteStreamError struct{ Code uint64 }

func (e *ByteStreamError) Error() string {
	return fmt.Sprintf("the peer ended the stream with code %d", e.Code)
}
