package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultAskTimeout       = 120 * time.Second
	DefaultMaxMessageSize   = 128 << 20
	DefaultConnectTimeout   = 10 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultHeartbeat        = 2 * time.Second
	DefaultPeerTimeout      = 10 * time.Second
	// DefaultMaxWorkers is Config.MaxWorkers' default. Endpoint code that
	// only computes needs no more workers than cores; the cap is far above
	// that because a handler that waits (on an ask, a file, a database)
	// holds its worker, and a cap that blocked handlers reach stalls every
	// endpoint of the pool. 4096 goroutines cost at least 32 MiB of stack:
	// a bound on a runaway (thousands of endpoints blocked at once), not a
	// tuning knob.
	DefaultMaxWorkers = 4096
	// DefaultLookupTimeout is Config.LookupTimeout's default. A lookup
	// waits for the connection (at most Config.ConnectTimeout, 10s by
	// default) and one round trip answered by the peer env itself, never
	// by endpoint code that may be busy: 30s is that with a wide margin
	// for a slow network, and a quarter of the ask timeout, so that a
	// driver that is not there is reported well before an ask would be.
	// Spark's spark.rpc.lookupTimeout defaults to 120s (with
	// spark.network.timeout): its lookups are asks to an endpoint,
	// RpcEndpointVerifier, that waits for a thread of the shared
	// dispatcher pool like any other; ours are answered by the read loop.
	DefaultLookupTimeout = 30 * time.Second
)

// workerIdle is how long a dispatcher worker waits for another inbox
// before it exits.
const workerIdle = 2 * time.Second

// Config configures an Env. The zero value is a client-mode env with no
// transports, able to deliver messages between its own endpoints only.
type Config struct {
	// Name labels the env in logs and errors. Default: "rpcenv".
	Name string
	// Listen is the URI to listen on: "inproc://driver",
	// "tcp://127.0.0.1:0", "quic://0.0.0.0:7077". "" is client mode: no
	// listener, the env only dials out, and peers reach its endpoints
	// over the connections it opened.
	Listen string
	// Advertise is the URI peers should use when it differs from Listen
	// (bind 0.0.0.0, advertise a host name). Refs to this env's
	// endpoints carry it.
	Advertise string
	// PortRetries is how many more ports NewEnv tries when Listen's port
	// is in use (Spark's spark.port.maxRetries): port+1, port+2, … up to
	// PortRetries of them, never past 65535, keeping the first it binds;
	// Env.Address and this env's refs report the port it got. When all
	// are in use, NewEnv fails with an error naming every port tried and
	// wrapping the last one's error. 0 (the default) tries Listen's port
	// alone. It applies only when Listen names a nonzero port and the
	// transport's error wraps syscall.EADDRINUSE (tcp, quic); any other
	// failure to listen is returned at once.
	//
	// Advertise follows the port only when it names the same port as
	// Listen (bind 0.0.0.0:7077, advertise driver.local:7077: refs then
	// carry driver.local:7078). An Advertise with another port stands for
	// a mapping outside the env (a NAT, a container's published port) to
	// Listen's port exactly, which the env cannot move: if it had to take
	// another port, NewEnv fails rather than advertise an address that
	// leads elsewhere.
	PortRetries int
	// Transports are the transports this env may use, picked by URI
	// scheme. Two transports must not serve the same scheme.
	Transports []Transport
	// Secret, when set, makes every connection prove the same secret in
	// both directions before any message flows (an HMAC-SHA256 challenge
	// and response; the secret never crosses the wire). Peers without it,
	// or with another, are refused with ErrUnauthenticated. Over TLS (TCP
	// with TLS, QUIC) the proofs also cover the TLS session, so a relay
	// that terminates TLS is refused too. Without TLS, every frame after
	// the handshake is encrypted and authenticated with keys derived from
	// the secret (AES-256-GCM, docs/PROTOCOL.md, "Sealed frames"): an
	// altered, replayed, reordered or cut frame closes the connection
	// before anything of it is delivered.
	Secret []byte
	// InsecurePlaintext, with Secret set, sends the frames after the
	// handshake in plain text on connections without TLS instead of
	// encrypting them. This is unsafe: anyone on the path reads every
	// message and can alter, drop or inject frames undetected; only the
	// handshake stays authenticated. Use it only on a network you trust
	// completely, to save the encryption's CPU. Both ends must agree:
	// an env that encrypts refuses one that does not (ErrUnauthenticated).
	// It changes nothing over TLS.
	InsecurePlaintext bool
	// AskTimeout is the deadline for an Ask whose context has none.
	// 0 means DefaultAskTimeout (120s).
	AskTimeout time.Duration
	// LookupTimeout is the deadline for an Env.Lookup whose context has
	// none: connecting to the env named by the URI, and its answer. It
	// is separate from AskTimeout (Spark's spark.rpc.lookupTimeout)
	// because a lookup is answered by the peer env itself, never by an
	// endpoint that may be busy: it should be short enough that a missing
	// peer is reported soon, and longer than ConnectTimeout, so that a
	// peer that cannot be reached is reported as such by the connection
	// attempt. 0 means DefaultLookupTimeout (30s).
	LookupTimeout time.Duration
	// MaxMessageSize is the largest encoded message (the whole frame),
	// sent or received. 0 means DefaultMaxMessageSize (128 MiB). Messages
	// to endpoints of the same env are not encoded, so not measured.
	// Streams (Ref.OpenStream) are not messages: only their opening
	// message counts, and their bytes have no limit.
	MaxMessageSize int
	// Logger receives the env's log lines. nil means slog.Default().
	Logger *slog.Logger

	// ConnectTimeout bounds dialing a peer and the handshake that
	// follows. 0 means DefaultConnectTimeout (10s).
	ConnectTimeout time.Duration
	// HandshakeTimeout bounds the handshake of an accepted connection: a
	// peer that connects and says nothing is dropped after it.
	// 0 means DefaultHandshakeTimeout (10s).
	HandshakeTimeout time.Duration
	// HeartbeatInterval is how often the env checks each connection: it
	// sends a heartbeat frame on a connection that carried nothing out
	// since the last check. 0 means DefaultHeartbeat (2s); a negative
	// value turns heartbeats and PeerTimeout off.
	HeartbeatInterval time.Duration
	// PeerTimeout is how long a connection may bring nothing in (no
	// message, no heartbeat) before the env declares the peer dead: it
	// closes the connection, fails the asks in flight over it with
	// ErrDisconnected and fires OnDisconnected. A peer that was killed or
	// unplugged is detected within PeerTimeout plus one HeartbeatInterval.
	// 0 means DefaultPeerTimeout (10s). Both ends should use similar
	// settings: a peer whose HeartbeatInterval exceeds this env's
	// PeerTimeout will be dropped while idle.
	PeerTimeout time.Duration
	// MaxWorkers caps the goroutines that run the env's endpoint code
	// (Receive, the lifecycle and network calls) at once: the dispatcher's
	// pool, shared by every endpoint but those registered WithIsolation.
	// Below the cap, an endpoint with work and no idle worker gets a new
	// one, so a handler that blocks delays no other endpoint; at the cap,
	// inboxes with work wait, first come first served, for a worker to
	// finish a batch. 0 means DefaultMaxWorkers (4096); a negative value
	// removes the cap.
	//
	// A handler that blocks holds its worker: if MaxWorkers handlers wait
	// on asks to endpoints of this env, those endpoints get no worker
	// until the asks time out. Register endpoints that must answer however
	// busy the pool is (a heartbeat receiver, a coordinator) WithIsolation.
	MaxWorkers int
	// OutboundInterceptors wrap every Send, Ask and OpenStream made
	// through this env's refs, the first outermost (OutboundInterceptor).
	// They can set headers, which cross to the receiving endpoint.
	OutboundInterceptors []OutboundInterceptor
	// InboundInterceptors wrap every delivery of a message to this env's
	// endpoints, the first outermost (InboundInterceptor). Lifecycle and
	// network calls (OnStart, OnConnected, …) are not messages.
	InboundInterceptors []InboundInterceptor
	// OnDeadLetter, if set, is called for every message the env drops,
	// besides counting it (Env.DeadLetters) and logging it. The log has
	// at most one line a second, which says how many dead letters it
	// left out since the last; OnDeadLetter sees every one. It must not
	// block.
	OnDeadLetter func(DeadLetter)
}

// DeadLetter describes a message an env dropped: a send to an endpoint
// that does not exist or stopped, a send whose connection failed, or a
// message that could not be decoded.
type DeadLetter struct {
	Target string // URI of the endpoint it was for
	Type   string // its wire type name
	Sender string // the env it came from ("" when sent by this env)
	Reason error
}

// Env is an environment of endpoints: it owns them, routes messages to
// them, and owns the connections to other envs. All methods are safe for
// concurrent use by multiple goroutines.
//
// An env ends in two stages. [Env.Shutdown] is graceful first: endpoints
// handle what they had queued and run OnStop, then the connections
// deliver what is queued on them (the answers given) and close. When its
// context ends, or at once with [Env.Close], the hard stage closes every
// connection and drops what is still queued, so that no peer waits on
// this env any longer; only endpoint code that has not returned outlives
// it, and [Env.Done] tells when that ends.
type Env struct {
	name             string
	id               string
	addr             string // advertised URI; "" in client mode
	log              *slog.Logger
	transports       map[string]Transport
	secret           []byte
	plaintext        bool // Config.InsecurePlaintext
	askTimeout       time.Duration
	lookupTimeout    time.Duration
	maxMsg           int
	connectTimeout   time.Duration
	handshakeTimeout time.Duration
	heartbeat        time.Duration // <= 0: off
	peerTimeout      time.Duration
	onDeadLetter     func(DeadLetter)
	files            *FileServer

	outbound Invoker // the outbound interceptors' chain; nil without any
	inbound  Handler // the inbound interceptors' chain; nil without any

	ctx     context.Context // done when Shutdown starts
	cancel  context.CancelFunc
	pool    *pool          // the dispatcher's shared pool
	workers sync.WaitGroup // the workers of every pool, the isolated ones too

	endpoints sync.Map   // name -> *endpoint
	regMu     sync.Mutex // orders Register against Shutdown
	observers map[*endpoint]struct{}

	listener Listener
	peers    peerTable
	wg       sync.WaitGroup // accept loop, connection goroutines

	nextID      atomic.Uint64
	deadLetters atomic.Uint64
	connsUp     atomic.Uint64 // connections whose handshake completed (Env.Stats)
	connsLost   atomic.Uint64 // of those, the ones that ended before Shutdown
	streamBytes streamBytes
	deadLog     logLimiter
	refused     atomic.Uint64 // connections refused at the handshake
	refusedLog  logLimiter
	acceptLog   logLimiter
	stopping    atomic.Bool
	stopOnce    sync.Once
	stopped     []*endpoint   // the endpoints Shutdown stopped; set in stopOnce
	hard        chan struct{} // closed when the hard stage begins
	hardOnce    sync.Once
	done        chan struct{}
	stopErr     error // set before done is closed
}

// NewEnv creates an env and, unless cfg.Listen is "", starts listening.
func NewEnv(cfg Config) (*Env, error) {
	e := &Env{
		name:             cfg.Name,
		log:              cfg.Logger,
		transports:       map[string]Transport{},
		secret:           append([]byte(nil), cfg.Secret...),
		plaintext:        cfg.InsecurePlaintext,
		askTimeout:       cfg.AskTimeout,
		lookupTimeout:    cfg.LookupTimeout,
		maxMsg:           cfg.MaxMessageSize,
		connectTimeout:   cfg.ConnectTimeout,
		handshakeTimeout: cfg.HandshakeTimeout,
		heartbeat:        cfg.HeartbeatInterval,
		peerTimeout:      cfg.PeerTimeout,
		onDeadLetter:     cfg.OnDeadLetter,
		observers:        map[*endpoint]struct{}{},
		hard:             make(chan struct{}),
		done:             make(chan struct{}),
	}
	if e.name == "" {
		e.name = "rpcenv"
	}
	e.outbound = chainOutbound(cfg.OutboundInterceptors, e.invoke)
	e.inbound = chainInbound(cfg.InboundInterceptors, deliver)
	e.files = &FileServer{env: e, files: map[string]string{}, dirs: map[string]*os.Root{}}
	if e.log == nil {
		e.log = slog.Default()
	}
	e.log = e.log.With("env", e.name)
	switch {
	case cfg.AskTimeout < 0:
		return nil, fmt.Errorf("rpcenv: new env %q: Config.AskTimeout is negative (%v)", e.name, cfg.AskTimeout)
	case cfg.LookupTimeout < 0:
		return nil, fmt.Errorf("rpcenv: new env %q: Config.LookupTimeout is negative (%v)", e.name, cfg.LookupTimeout)
	case cfg.PortRetries < 0:
		return nil, fmt.Errorf("rpcenv: new env %q: Config.PortRetries is negative (%d)", e.name, cfg.PortRetries)
	case cfg.MaxMessageSize < 0:
		return nil, fmt.Errorf("rpcenv: new env %q: Config.MaxMessageSize is negative (%d)", e.name, cfg.MaxMessageSize)
	case cfg.ConnectTimeout < 0 || cfg.HandshakeTimeout < 0 || cfg.PeerTimeout < 0:
		return nil, fmt.Errorf("rpcenv: new env %q: Config.ConnectTimeout, HandshakeTimeout and PeerTimeout must not be negative", e.name)
	}
	if e.askTimeout == 0 {
		e.askTimeout = DefaultAskTimeout
	}
	if e.lookupTimeout == 0 {
		e.lookupTimeout = DefaultLookupTimeout
	}
	if e.maxMsg == 0 {
		e.maxMsg = DefaultMaxMessageSize
	}
	if e.connectTimeout == 0 {
		e.connectTimeout = DefaultConnectTimeout
	}
	if e.handshakeTimeout == 0 {
		e.handshakeTimeout = DefaultHandshakeTimeout
	}
	if e.heartbeat == 0 {
		e.heartbeat = DefaultHeartbeat
	}
	if e.peerTimeout == 0 {
		e.peerTimeout = DefaultPeerTimeout
	}
	for _, t := range cfg.Transports {
		if t == nil {
			return nil, fmt.Errorf("rpcenv: new env %q: Config.Transports holds a nil transport", e.name)
		}
		s := t.Scheme()
		if _, dup := e.transports[s]; dup {
			return nil, fmt.Errorf("rpcenv: new env %q: two transports serve scheme %q", e.name, s)
		}
		e.transports[s] = t
	}
	id := make([]byte, 16)
	rand.Read(id)
	e.id = hex.EncodeToString(id)
	e.ctx, e.cancel = context.WithCancel(context.Background())
	maxWorkers := cfg.MaxWorkers
	switch {
	case maxWorkers == 0:
		maxWorkers = DefaultMaxWorkers
	case maxWorkers < 0:
		maxWorkers = 0
	}
	e.pool = newPool(workerIdle, maxWorkers, &e.workers)
	e.peers.init()

	if cfg.Listen != "" {
		scheme, addr, name, err := parseURI(cfg.Listen)
		if err == nil && name != "" {
			err = errors.New("a listen URI has no endpoint path")
		}
		if err != nil {
			e.cancel()
			return nil, fmt.Errorf("rpcenv: new env %q: Config.Listen %q: %w", e.name, cfg.Listen, err)
		}
		t, err := e.transport(scheme)
		if err != nil {
			e.cancel()
			return nil, fmt.Errorf("rpcenv: new env %q: listen %s: %w", e.name, cfg.Listen, err)
		}
		l, err := e.listen(t, addr, cfg.PortRetries)
		if err != nil {
			e.cancel()
			return nil, fmt.Errorf("rpcenv: new env %q: listen %s: %w", e.name, cfg.Listen, err)
		}
		e.listener = l
		e.addr = scheme + "://" + l.Addr()
		if cfg.Advertise != "" {
			as, aa, an, err := parseURI(cfg.Advertise)
			if err == nil && (an != "" || aa == "") {
				err = errors.New("want scheme://host:port")
			}
			if err == nil && as != scheme {
				err = fmt.Errorf("scheme %q differs from Config.Listen's %q", as, scheme)
			}
			if err == nil {
				aa, err = advertised(aa, addr, l.Addr())
			}
			if err != nil {
				l.Close()
				e.cancel()
				return nil, fmt.Errorf("rpcenv: new env %q: Config.Advertise %q: %w", e.name, cfg.Advertise, err)
			}
			e.addr = as + "://" + aa
		}
		e.wg.Add(1)
		go e.acceptLoop(l)
	} else if cfg.Advertise != "" {
		e.cancel()
		return nil, fmt.Errorf("rpcenv: new env %q: Config.Advertise is set but Config.Listen is empty (client mode)", e.name)
	}
	return e, nil
}

// connOptions are the limits of this env's connections: no frame is
// larger than a chunk frame (messages above it cross in chunks), sealed
// when the env has a secret.
func (e *Env) connOptions() ConnOptions {
	if len(e.secret) > 0 {
		return ConnOptions{MaxFrameSize: maxFrame + sealOverhead}
	}
	return ConnOptions{MaxFrameSize: maxFrame}
}

func (e *Env) transport(scheme string) (Transport, error) {
	if t, ok := e.transports[scheme]; ok {
		return t, nil
	}
	known := make([]string, 0, len(e.transports))
	for s := range e.transports {
		known = append(known, s)
	}
	return nil, fmt.Errorf("%w %q (Config.Transports serves %v)", ErrUnknownScheme, scheme, known)
}

// Name returns Config.Name.
func (e *Env) Name() string { return e.name }

// Address returns the URI peers reach this env at: Config.Advertise, or
// the address actually bound ("tcp://127.0.0.1:41234" after
// "tcp://127.0.0.1:0"). It is "" for a client-mode env.
func (e *Env) Address() string { return e.addr }

// DeadLetters returns how many messages this env has dropped since it was
// created (see DeadLetter).
func (e *Env) DeadLetters() uint64 { return e.deadLetters.Load() }

// RefusedConnections returns how many connections this env has refused
// since it was created: accepted connections whose handshake failed
// (a wrong secret or protocol version, a peer that is not an rpcenv
// env, a handshake that timed out). Refusals are logged at most once a
// second, with the number left out since the last line.
func (e *Env) RefusedConnections() uint64 { return e.refused.Load() }

// Done returns a channel closed when Shutdown (or Close) has finished:
// every endpoint stopped (its OnStop returned), every connection closed,
// every goroutine of the env gone.
func (e *Env) Done() <-chan struct{} { return e.done }

// EndpointOption configures an endpoint at Register.
type EndpointOption func(*endpointOptions)

type endpointOptions struct {
	concurrency int
	inboxLimit  int
	borrow      bool
	isolated    bool
}

// DefaultInboxLimit is an endpoint's inbox limit unless [WithInboxLimit]
// sets another.
const DefaultInboxLimit = 1 << 20

// WithInboxLimit bounds the memory an endpoint's backlog may hold, in
// bytes (default [DefaultInboxLimit], 1 MiB). Messages and asks from a
// remote env count their encoded size: each connection may have at most
// max(n, 64 KiB) bytes waiting for the endpoint, plus one message, and
// its senders wait (backpressure: Ref.Send blocks, Ref.Ask waits within
// its deadline) while other endpoints on the same connection go on.
// Local messages, which are never encoded, count 128 bytes each, and a
// local Send or Ask that would go past n fails at once with
// [ErrInboxFull] instead of waiting, so that an endpoint that sends to
// itself cannot deadlock. Network events and lifecycle calls are not
// counted.
func WithInboxLimit(n int) EndpointOption {
	return func(o *endpointOptions) { o.inboxLimit = n }
}

// WithConcurrency lets the endpoint handle up to n messages at once. The
// default, 1, delivers one message at a time in arrival order, so the
// endpoint needs no locks; with n > 1 it must be safe for concurrent use.
// OnStart still runs alone before any message, OnStop alone after all.
func WithConcurrency(n int) EndpointOption {
	return func(o *endpointOptions) { o.concurrency = n }
}

// WithBorrowedBytes lets the endpoint borrow the large []byte fields of
// the messages it receives from other envs instead of owning them: such
// a field is valid only until Receive returns, and the env then reuses
// its memory for later messages. It saves an allocation and a copy of
// the payload per message, which for large payloads is most of the
// receiving side's cost (docs/BENCHMARKS.md, "(p2) to (p5) at 64 KiB").
//
// It applies to messages from other envs whose type has a generated
// codec (rpcgen) and whose encoded body is at least 8 KiB (and fills at
// least half of one of the env's pooled frames, which go up to 1 MiB),
// and to their []byte fields of at least 1 KiB and an eighth of the body
// ([cborgen.Reader.Share]); other fields, other messages and messages
// from the endpoint's own env are owned as usual. A handler that keeps such bytes past Receive must copy
// them first: storing them, handing them to another goroutine, replying
// later, or sending the message to an endpoint of the same env (which
// passes it by reference). Replies and sends to other envs made during
// Receive encode the message before they return, so they are safe. Stream
// opens (ReceiveStream) are not affected.
func WithBorrowedBytes() EndpointOption {
	return func(o *endpointOptions) { o.borrow = true }
}

// WithIsolation gives the endpoint workers of its own, outside the env's
// shared pool and its cap (Config.MaxWorkers): up to its concurrency
// (WithConcurrency), started when it has work and ended when idle, as the
// shared pool's are. Handlers that block elsewhere, however many, then
// never delay it. Use it for an endpoint that must answer promptly when
// the env is saturated, such as a heartbeat receiver or a coordinator;
// it is Spark's IsolatedRpcEndpoint.
func WithIsolation() EndpointOption {
	return func(o *endpointOptions) { o.isolated = true }
}

// Register adds ep under name and returns its ref. OnStart, if ep has
// one, runs before any message, in ep's inbox: Register does not wait for
// it. Names are unique in an env (ErrNameTaken) and may not contain '/'
// or white space. After Shutdown, Register returns ErrEnvStopped.
func (e *Env) Register(name string, ep Endpoint, opts ...EndpointOption) (*Ref, error) {
	o := endpointOptions{concurrency: 1, inboxLimit: DefaultInboxLimit}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case name == "" || strings.ContainsAny(name, "/ \t\r\n"):
		return nil, fmt.Errorf("rpcenv: register %q in %s: a name must be non-empty, without '/' or spaces", name, e.name)
	case ep == nil:
		return nil, fmt.Errorf("rpcenv: register %q in %s: nil Endpoint", name, e.name)
	case o.concurrency < 1:
		return nil, fmt.Errorf("rpcenv: register %q in %s: WithConcurrency(%d): want at least 1", name, e.name, o.concurrency)
	case o.inboxLimit < localMessageCost:
		return nil, fmt.Errorf("rpcenv: register %q in %s: WithInboxLimit(%d): want at least %d bytes", name, e.name, o.inboxLimit, localMessageCost)
	}
	hooks := any(ep)
	if d, ok := ep.(Delegator); ok {
		hooks = d.Delegate()
	}
	x := &endpoint{env: e, name: name, impl: ep, hooks: hooks, pool: e.pool, max: o.concurrency, limit: o.inboxLimit, borrow: o.borrow, done: make(chan struct{})}
	if o.isolated {
		x.pool = newPool(workerIdle, o.concurrency, &e.workers)
	}
	x.self = newRef(e, name, e.addr, e.id, e.name)
	x.self.ep = x
	x.sendCtx = &Context{ep: x, sender: e.addr}
	x.ctx = &sendContext{Context: e.ctx, c: x.sendCtx}
	x.observer, _ = hooks.(NetworkObserver)
	_, starts := hooks.(Starter)

	e.regMu.Lock()
	defer e.regMu.Unlock()
	if e.stopping.Load() {
		return nil, fmt.Errorf("rpcenv: register %q in %s: %w", name, e.name, ErrEnvStopped)
	}
	if _, taken := e.endpoints.LoadOrStore(name, x); taken {
		return nil, fmt.Errorf("rpcenv: register %q in %s: %w", name, e.name, ErrNameTaken)
	}
	if x.observer != nil {
		e.observers[x] = struct{}{}
	}
	if starts {
		x.mu.Lock()
		x.starting = true
		x.q.push(item{kind: itemStart})
		x.active = 1
		x.mu.Unlock()
		x.pool.run(x)
	}
	return x.self, nil
}

// Stop stops the endpoint ref points to, which must belong to this env.
// It returns at once: messages already queued are still handled, then
// OnStop runs. Messages sent after Stop are dead letters, asks fail with
// ErrEndpointNotFound, and the name is free to register again. Stopping a
// stopped endpoint is a no-op; Stop may be called from the endpoint's own
// Receive.
func (e *Env) Stop(ref *Ref) error {
	if ref == nil || !e.isLocal(ref) {
		return fmt.Errorf("rpcenv: stop %s: the ref does not belong to env %s", ref, e.name)
	}
	v, ok := e.endpoints.Load(ref.name)
	if !ok {
		return nil
	}
	x := v.(*endpoint)
	if ref.ep != nil && ref.ep != x {
		return nil // that endpoint stopped already; the name has a new owner
	}
	e.stopEndpoint(x)
	return nil
}

func (e *Env) stopEndpoint(x *endpoint) {
	e.endpoints.CompareAndDelete(x.name, x)
	e.regMu.Lock()
	delete(e.observers, x)
	e.regMu.Unlock()
	x.stop()
}

// failStart stops an endpoint whose OnStart failed, rejecting what queued
// up behind it.
func (e *Env) failStart(x *endpoint) {
	e.endpoints.CompareAndDelete(x.name, x)
	e.regMu.Lock()
	delete(e.observers, x)
	e.regMu.Unlock()
	x.mu.Lock()
	var dropped []item
	for x.q.n > 0 {
		dropped = append(dropped, x.q.pop())
	}
	x.stopping = true
	x.q.push(item{kind: itemStop})
	x.mu.Unlock()
	for _, it := range dropped {
		x.drop(it, fmt.Errorf("%w: OnStart failed", ErrEndpointNotFound)) // gives their credit back too
	}
}

// reject answers an item that will not be delivered: an ask fails, a
// send is a dead letter.
func (e *Env) reject(target string, it item, reason error) {
	if it.c.stream != nil {
		it.c.stream.fail(reason)
	}
	if it.c.ans != nil {
		it.c.ans.fail(it.c.ep, envError{reason})
		return
	}
	sender := it.c.sender
	if it.c.from == nil {
		sender = "" // sent by this env, which DeadLetter names ""
	}
	e.deadLetter(DeadLetter{Target: target, Type: typeName(it.msg), Sender: sender, Reason: reason})
}

func typeName(msg any) string {
	if msg == nil {
		return "nil"
	}
	if w, _, err := checkType(msg); err == nil {
		return w
	}
	return fmt.Sprintf("%T", msg)
}

func (e *Env) deadLetter(d DeadLetter) {
	e.deadLetters.Add(1)
	if e.onDeadLetter != nil {
		e.onDeadLetter(d)
	}
	ok, skipped := e.deadLog.allow()
	if !ok {
		return
	}
	level := slog.LevelWarn
	if e.stopping.Load() {
		level = slog.LevelDebug // racing our own shutdown is expected, not alarming
	}
	attrs := []any{"target", d.Target, "type", d.Type, "sender", d.Sender, "reason", d.Reason}
	if skipped > 0 {
		attrs = append(attrs, "not_logged_since_last", skipped)
	}
	e.log.Log(context.Background(), level, "rpcenv: dead letter", attrs...)
}

func (e *Env) localEndpoint(name string) *endpoint {
	if v, ok := e.endpoints.Load(name); ok {
		return v.(*endpoint)
	}
	return nil
}

// isLocal reports whether r points into this env.
func (e *Env) isLocal(r *Ref) bool {
	return r.envID == e.id || (r.addr != "" && r.addr == e.addr)
}

// postLocal posts it to the local endpoint r names. r's cached endpoint
// is tried first (no map lookup); once it has stopped, the name is looked
// up again, for it may have a new owner. A nil it.c means a send, which
// gets the endpoint's shared send Context; an ask's Context gets its
// endpoint filled in here. It fails with ErrEndpointNotFound (or
// ErrEnvStopped once Shutdown has begun), or with
// ErrInboxFull when the local messages waiting fill the inbox limit.
func (e *Env) postLocal(r *Ref, it item) error {
	x := e.endpointOf(r)
	for range 2 {
		if x == nil {
			return e.missing()
		}
		if it.c == nil {
			it.c = x.sendCtx
		} else {
			it.c.ep = x
		}
		ok, err := x.postLocalMessage(it)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if y := e.localEndpoint(r.name); y != x {
			x = y
			continue
		}
		return e.missing()
	}
	return e.missing()
}

// endpointOf returns the endpoint of this env that r points to, or nil.
func (e *Env) endpointOf(r *Ref) *endpoint {
	if x := r.ep; x != nil && x.env == e {
		return x
	}
	return e.localEndpoint(r.name)
}

// missing is why a local message found no endpoint: the env is
// shutting down (Shutdown stops every endpoint, so a message racing it
// gets ErrEnvStopped, as one sent after it does), or the name is not
// registered.
func (e *Env) missing() error {
	if e.stopping.Load() {
		return ErrEnvStopped
	}
	return ErrEndpointNotFound
}

// send is Ref.SendContext past the interceptors; hdr are the message's
// headers (checked), or nil. Waiting for credit ends when ctx is done.
func (e *Env) send(ctx context.Context, r *Ref, msg any, hdr map[string]string) error {
	if e.stopping.Load() {
		return fmt.Errorf("rpcenv: send %s: %w", r, ErrEnvStopped)
	}
	wire, mt, err := checkType(msg)
	if err != nil {
		return fmt.Errorf("rpcenv: send %s: %w", r, err)
	}
	if e.isLocal(r) {
		it := item{kind: itemMessage, msg: msg}
		if hdr != nil {
			it.c = &Context{sender: e.addr, meta: metaOf(hdr)} // the shared one has none
		}
		if err := e.postLocal(r, it); err != nil {
			e.deadLetter(DeadLetter{Target: r.String(), Type: typeName(msg), Reason: err})
			return fmt.Errorf("rpcenv: send %s: %w", r, err)
		}
		return nil
	}
	frame, err := encodeFrame(&header{kind: kindSend, to: r.name, typ: wire, mt: mt, headers: hdr}, msg, e.maxMsg)
	if err != nil {
		return fmt.Errorf("rpcenv: send %s: %w", r, err)
	}
	p, err := e.route(r)
	if err != nil {
		e.deadLetter(DeadLetter{Target: r.String(), Type: wire, Reason: err})
		return fmt.Errorf("rpcenv: send %s: %w", r, err)
	}
	if err := p.data(r.lane, r.name, frame, r.String(), wire, ctx.Done(), time.Time{}); err != nil {
		if err == errDone {
			err = fmt.Errorf("%w (waiting for the peer to take more: it is slow or stopped reading)", context.Cause(ctx))
		}
		e.deadLetter(DeadLetter{Target: r.String(), Type: wire, Reason: err})
		return fmt.Errorf("rpcenv: send %s: %w", r, err)
	}
	return nil
}

// ask is Ref.Ask past the interceptors; hdr are the ask's headers
// (checked), or nil. A local ask allocates the call (with its Context and
// channel); the deadline timer comes from a pool.
func (e *Env) ask(ctx context.Context, r *Ref, msg any, hdr map[string]string) (any, error) {
	if e.stopping.Load() {
		return nil, fmt.Errorf("rpcenv: ask %s: %w", r, ErrEnvStopped)
	}
	wire, mt, err := checkType(msg)
	if err != nil {
		return nil, fmt.Errorf("rpcenv: ask %s: %w", r, err)
	}
	w := e.newWait(ctx)
	if e.isLocal(r) {
		asker := askerOf(ctx)
		if asker != nil {
			if x := e.endpointOf(r); x != nil {
				if chain := deadlock(asker, x); chain != nil {
					return nil, deadlockError(r, chain)
				}
			}
			asker = asker.record()
		}
		c := new(call)
		c.deadline = w.deadline
		c.hctx = Context{sender: e.addr, ans: c, asker: asker, meta: metaOf(hdr)}
		if err := e.postLocal(r, item{kind: itemMessage, msg: msg, c: &c.hctx}); err != nil {
			return nil, fmt.Errorf("rpcenv: ask %s: %w", r, err)
		}
		return e.await(ctx, &w, r.String(), c, nil)
	}
	p, err := e.route(r)
	if err != nil {
		return nil, fmt.Errorf("rpcenv: ask %s: %w", r, err)
	}
	return e.remoteCall(ctx, &w, r.String(), p, r.lane, &header{kind: kindAsk, to: r.name, typ: wire, mt: mt, headers: hdr}, msg)
}

// remoteCall sends an ask or a lookup over p and waits for the answer.
func (e *Env) remoteCall(ctx context.Context, w *waiter, target string, p *peer, lane uint64, h *header, body any) (any, error) {
	if h.id == 0 { // an Open comes with its stream's id
		h.id = e.nextID.Add(1)
	}
	h.timeout = int64(time.Until(w.deadline))
	if h.timeout <= 0 {
		h.timeout = 1
	}
	frame, err := encodeFrame(h, body, e.maxMsg)
	if err != nil {
		return nil, fmt.Errorf("rpcenv: ask %s: %w", target, err)
	}
	c := &call{target: target}
	if err := p.addCall(h.id, c); err != nil {
		return nil, fmt.Errorf("rpcenv: ask %s: %w", target, err)
	}
	// An ask travels on its endpoint's lane, behind the sends to it (the
	// Send-then-Ask rule), and counts against its credit; a lookup is a
	// control frame. Waiting for credit or room ends with the ask's
	// deadline.
	if h.kind == kindLookup {
		err = p.control(frame)
	} else {
		var deadline time.Time
		if !w.fromCtx {
			deadline = w.deadline
		}
		err = p.data(lane, h.to, frame, "", "", ctx.Done(), deadline)
	}
	if err != nil { // an ask that fails is the asker's error, not a dead letter
		p.takeCall(h.id)
		if err == errDone {
			return nil, e.waitErr(ctx, w, target, " (waiting for the peer to take more: it is slow or stopped reading)")
		}
		return nil, fmt.Errorf("rpcenv: ask %s: %w", target, err)
	}
	return e.await(ctx, w, target, c, func() {
		if p.giveUpCall(h.id, h.kind == kindOpen) {
			p.cancelRemote(h.id)
		}
	})
}

// errLookupTimedOut is the cause of a lookup's own deadline
// (Config.LookupTimeout), which tells it apart from the caller's.
var errLookupTimedOut = errors.New("rpcenv: lookup timed out")

// Lookup returns a ref to the endpoint at uri ("tcp://host:port/name"),
// after checking with its env that the endpoint exists. It fails with
// ErrEndpointNotFound (naming the URI) if it does not, ErrUnknownScheme if
// no transport serves the URI's scheme, and as an Ask does if the env
// cannot be reached (ErrDisconnected, ErrUnauthenticated).
//
// The wait for the connection and the answer ends at ctx's deadline or,
// when ctx has none, after Config.LookupTimeout (not AskTimeout); the
// error then names the setting that ended it and wraps
// context.DeadlineExceeded, as an ask's timeout does. A lookup of an
// endpoint of this env answers at once.
func (e *Env) Lookup(ctx context.Context, uri string) (*Ref, error) {
	if e.stopping.Load() {
		return nil, fmt.Errorf("rpcenv: lookup %s: %w", uri, ErrEnvStopped)
	}
	scheme, addr, name, err := parseURI(uri)
	if err == nil && name == "" {
		err = errors.New("the URI names no endpoint (want scheme://address/name)")
	}
	if err != nil {
		return nil, fmt.Errorf("rpcenv: lookup %q: %w", uri, err)
	}
	envURI := scheme + "://" + addr
	if envURI == e.addr {
		if x := e.localEndpoint(name); x != nil {
			return x.self, nil
		}
		return nil, fmt.Errorf("rpcenv: lookup %s: %w", uri, ErrEndpointNotFound)
	}
	if _, err := e.transport(scheme); err != nil {
		return nil, fmt.Errorf("rpcenv: lookup %s: %w", uri, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, e.lookupTimeout, errLookupTimedOut)
		defer cancel()
	}
	p := e.peerFor(envURI)
	w := e.newWait(ctx) // the deadline is ctx's: ours, or the caller's
	v, err := e.remoteCall(ctx, &w, uri, p, 0, &header{kind: kindLookup, to: name}, nil)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && context.Cause(ctx) == errLookupTimedOut {
			return nil, fmt.Errorf("rpcenv: lookup %s: no answer within %v (deadline set by Config.LookupTimeout, as the caller's context had none): %w",
				uri, e.lookupTimeout, context.DeadlineExceeded)
		}
		return nil, err
	}
	ref, ok := v.(*Ref)
	if !ok || ref == nil || ref.name != name {
		return nil, fmt.Errorf("rpcenv: lookup %s: %w: the answer is not a ref to %q", uri, ErrProtocol, name)
	}
	return ref, nil
}

// Shutdown stops the env in two stages (docs/ARCHITECTURE.md, "Shutdown").
//
// The graceful stage runs first: the listener closes, every endpoint is
// stopped (it handles the messages already queued, then OnStop runs),
// then every connection writes what is queued on it (the answers to the
// asks the endpoints handled, however large) and a Goodbye, on which the
// peer closes it; Shutdown waits for that at most Config.PeerTimeout,
// then closes what is still open. Pending asks of this env fail with
// ErrEnvStopped at once; local asks being handled see their Context
// done.
//
// If ctx ends before that is over, the hard stage begins, as with
// [Env.Close]: every connection closes at once, so peers' asks being
// handled here fail on their side with ErrDisconnected and their
// handlers' c.Context() is canceled here; messages still queued are
// dropped (asks fail with ErrEnvStopped, sends are dead letters).
// Shutdown then returns ctx's error wrapped, once every goroutine of the
// env has ended but those still inside an endpoint's code (a Receive or
// OnStop that does not return); Done closes when they return.
//
// Peers see this env's connections close; its own endpoints see no
// OnDisconnected. Calling Shutdown again, or after Close, waits for the
// same shutdown.
func (e *Env) Shutdown(ctx context.Context) error {
	e.begin()
	select {
	case <-e.done:
		return e.stopErr
	case <-ctx.Done():
	}
	e.abort()
	select {
	case <-e.done:
		return e.stopErr
	default:
	}
	return fmt.Errorf("rpcenv: shutdown %s: %w (connections closed; endpoint code still running: Done closes when it returns)", e.name, ctx.Err())
}

// Close stops the env at once: it is [Env.Shutdown] with its hard stage
// from the start. Every connection closes, queued messages are dropped
// (asks fail, sends are dead letters), asks being handled have their
// Context canceled, and endpoints get OnStop once the message they are
// handling, if any, returns. Close returns once every goroutine of the
// env has ended but those inside an endpoint's code; Done closes when
// those return. It returns the error of closing the listener, if any
// (nil if Shutdown already ended).
func (e *Env) Close() error {
	e.begin()
	e.abort()
	select {
	case <-e.done:
		return e.stopErr
	default:
		return nil
	}
}

// begin starts the shutdown once: nothing more registers, the env's
// context ends (local asks waiting fail), every endpoint is told to
// stop, and the rest runs in shutdown.
func (e *Env) begin() {
	e.stopOnce.Do(func() {
		e.regMu.Lock()
		e.stopping.Store(true)
		e.regMu.Unlock()
		e.cancel()
		e.endpoints.Range(func(_, v any) bool {
			e.stopped = append(e.stopped, v.(*endpoint))
			return true
		})
		for _, x := range e.stopped {
			e.stopEndpoint(x)
		}
		go e.shutdown()
	})
}

// shutdown runs once, in its own goroutine, and closes done: the
// graceful stage, cut short if the hard stage begins, then what both
// stages end with.
func (e *Env) shutdown() {
	var errs []error
	if e.listener != nil {
		if err := e.listener.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close listener: %w", err))
		}
	}
	for _, x := range e.stopped {
		select {
		case <-x.done:
		case <-e.hard:
		}
	}
	e.peers.leave(e.hard, e.peerTimeout)
	e.peers.closeAll(fmt.Errorf("%w: env %s shut down", ErrEnvStopped, e.name))
	e.wg.Wait()
	for _, x := range e.stopped {
		<-x.done // only endpoint code still running holds this
	}
	e.pool.close()
	e.files.close()
	if len(errs) > 0 {
		e.stopErr = fmt.Errorf("rpcenv: shutdown %s: %w", e.name, errors.Join(errs...))
	}
	close(e.done)
}

// abort is the hard stage: it closes every connection, drops what waits
// in the inboxes, ends idle workers, and waits for the env's own
// goroutines (connections, accept loop), which never run endpoint code.
func (e *Env) abort() {
	e.hardOnce.Do(func() {
		close(e.hard)
		e.peers.closeAll(errAborted(e))
		for _, x := range e.stopped {
			x.abort()
		}
		e.pool.stopIdle()
	})
	e.wg.Wait()
}

// parseURI splits "scheme://addr/name"; name may be empty.
func parseURI(uri string) (scheme, addr, name string, err error) {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok || scheme == "" {
		return "", "", "", errors.New("want scheme://address[/name]")
	}
	addr, name, _ = strings.Cut(rest, "/")
	if addr == "" {
		return "", "", "", errors.New("the URI has no address")
	}
	if strings.Contains(name, "/") {
		return "", "", "", errors.New("an endpoint name cannot contain '/'")
	}
	return scheme, addr, name, nil
}
