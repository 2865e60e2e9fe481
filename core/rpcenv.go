package core

import "context"

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
// any message; self is the endpoint's own ref. A returned error goes to
// OnError and stops the endpoint (OnStop still runs).
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
// A transport knows nothing of endpoints, asks or authentication: the env
// runs its handshake over the [Conn] a transport returns, keeps one outbox
// per peer, and fails in-flight asks when a Conn reports an error. A
// Transport value is shared by every env that lists it in
// [Config.Transports]; it must be safe for concurrent use.
type Transport interface {
	// Scheme is the URI scheme the transport serves, such as "tcp".
	Scheme() string
	// Listen starts accepting connections at addr, the part of a URI
	// between "scheme://" and the endpoint path ("127.0.0.1:0",
	// "driver"). An address in use is an error that names it.
	Listen(addr string, opts ConnOptions) (Listener, error)
	// Dial connects to the listener at addr. It returns when the
	// connection can carry frames, or when ctx is done.
	Dial(ctx context.Context, addr string, opts ConnOptions) (Conn, error)
}

// ConnOptions are the limits an env imposes on the connections of a
// transport.
type ConnOptions struct {
	// MaxFrameSize is the largest frame ReadFrame may return. A frame
	// that announces more must be rejected before its body is read or
	// allocated: ReadFrame then returns an error wrapping
	// [ErrMessageTooLarge], and the env closes the connection.
	MaxFrameSize int
	// HandshakeFrames and HandshakeFrameSize bound what a peer can make
	// the env hold before it has authenticated: each of the first
	// HandshakeFrames frames ReadFrame returns (the peer's handshake) may
	// be at most HandshakeFrameSize bytes, and a larger one is rejected
	// as a frame over MaxFrameSize is. Zero means no separate limit.
	// [ConnOptions.FrameLimit] applies both fields.
	HandshakeFrames    int
	HandshakeFrameSize int
}

// FrameLimit returns the largest size allowed for the frame ReadFrame
// returns after n others: HandshakeFrameSize for the first
// HandshakeFrames, MaxFrameSize after them. 0 means no limit.
func (o ConnOptions) FrameLimit(n int) int {
	if n < o.HandshakeFrames && o.HandshakeFrameSize > 0 && (o.MaxFrameSize <= 0 || o.HandshakeFrameSize < o.MaxFrameSize) {
		return o.HandshakeFrameSize
	}
	return o.MaxFrameSize
}

// Listener accepts connections for an env.
type Listener interface {
	// Accept waits for the next connection. After Close it returns an
	// error (net.ErrClosed or one wrapping it).
	Accept() (Conn, error)
	// Addr is the address actually bound, in the form Listen takes
	// (the real port after ":0").
	Addr() string
	// Close stops accepting; connections already accepted stay open.
	Close() error
}

// Conn is one connection between two envs, carrying frames both ways.
type Conn interface {
	// WriteFrame sends one frame. Frames written with the same non-zero
	// lane arrive in the order written; lane 0 asks for no ordering with
	// any other frame, which lets a multi-stream transport (QUIC) send it
	// on a stream of its own. One exception: the first two frames each
	// side writes (the env's handshake, on lane 0) must arrive before
	// anything that side writes after them. A transport with a single ordered stream
	// may ignore lanes. WriteFrame takes ownership of frame: the caller
	// never touches it again. It may return before the bytes are on the
	// wire, and must be safe for concurrent use.
	WriteFrame(lane uint64, frame []byte) error
	// ReadFrame returns the next frame received, in the order of each
	// lane. The slice is valid until the next call. It is called from one
	// goroutine at a time. After the connection breaks or is closed it
	// returns an error.
	ReadFrame() ([]byte, error)
	// Close closes the connection and unblocks ReadFrame. It is safe to
	// call more than once.
	Close() error
	// RemoteAddr labels the other end, in the form Listen takes
	// ("127.0.0.1:53122"). Used in logs and for client-mode peers.
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
