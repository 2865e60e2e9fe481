package harness

import (
	"context"
	"errors"
	"fmt"
	rpcotel "github.com/rpcenv/rpcenv/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"log/slog"
	"sync"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/inproc"
	"github.com/rpcenv/rpcenv/transports/quic"
	"github.com/rpcenv/rpcenv/transports/tcp"
)

// echoConcurrency is the number of handler goroutines of the rpcenv echo
// endpoint (core.WithConcurrency): how many asks it may answer at once.
const echoConcurrency = 1

// rpcgen runs from the main module: bench is a module of its own, without
// the generator's dependencies.
//
//go:generate go -C ../.. run ./cmd/rpcgen bench/harness

// Payload is the message of the rpcenv and net/rpc systems: the request
// or reply bytes inside a struct, as an application would send them. Its
// codec is generated (rpcgen_gen.go), as an application's would be.
//
//rpcgen:message
type Payload struct{ Data []byte }

// discard drops the log lines of envs and transports.
var discard = slog.New(slog.DiscardHandler)

// rpcenvSystem is rpcenv between a listening env and a client-mode env,
// over the transport that transport makes, with secret as both envs'
// Config.Secret when not nil.
type rpcenvSystem struct {
	name      string
	transport func() (t core.Transport, listen string)
	secret    []byte
	// otel instruments both envs with rpcotel: a span per call and per
	// delivery (all sampled, none exported) and the RPC duration
	// histograms (aggregated, never collected).
	otel bool
}

// benchSecret is the secret of the rpcenv-tcp-sealed system.
var benchSecret = []byte("0123456789abcdef0123456789abcdef")

func inprocTransport() (core.Transport, string) { return inproc.New(), "inproc://bench" }
func tcpTransport() (core.Transport, string)    { return tcp.New(tcp.Options{}), "tcp://127.0.0.1:0" }
func quicTransport() (core.Transport, string) {
	return quic.New(quic.Options{Logger: discard}), "quic://127.0.0.1:0"
}

// tlsTransport is TCP with TLS 1.3 and a fresh self-signed certificate
// that both sides present and trust.
func tlsTransport() (core.Transport, string) {
	cfg, err := quic.SelfSignedTLS("127.0.0.1")
	if err != nil {
		panic(fmt.Sprintf("bench: a TLS certificate: %v", err))
	}
	return tcp.New(tcp.Options{TLS: cfg}), "tcp://127.0.0.1:0"
}

func (s rpcenvSystem) Name() string { return s.name }
func (s rpcenvSystem) Group() Group { return GroupRPCEnv }

// rpcenvPair is a listening env and a client-mode env holding refs to
// its endpoints, over one connection (opened by the first Lookup).
type rpcenvPair struct {
	name           string // the system's
	server, client *core.Env
	ref            *core.Ref                   // to the endpoint of open
	stop           chan struct{}               // closed by Close
	shutdown       func(context.Context) error // the OpenTelemetry providers', or nil
	once           sync.Once
	err            error
}

// open starts both envs and adds ep under name (see add).
func (s rpcenvSystem) open(name string, ep core.Endpoint, opts ...core.EndpointOption) (*rpcenvPair, error) {
	tr, listen := s.transport()
	p := &rpcenvPair{name: s.name, stop: make(chan struct{})}
	var err error
	serverCfg := core.Config{Name: "server", Listen: listen, Transports: []core.Transport{tr}, Logger: discard, AskTimeout: Timeout, Secret: s.secret}
	clientCfg := core.Config{Name: "client", Transports: []core.Transport{tr}, Logger: discard, AskTimeout: Timeout, Secret: s.secret}
	if s.otel {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		p.shutdown = func(ctx context.Context) error { return errors.Join(tp.Shutdown(ctx), mp.Shutdown(ctx)) }
		for _, cfg := range []*core.Config{&serverCfg, &clientCfg} {
			rpcotel.Instrument(cfg, rpcotel.WithTracerProvider(tp), rpcotel.WithMeterProvider(mp))
		}
	}
	p.server, err = core.NewEnv(serverCfg)
	if err != nil {
		return nil, fmt.Errorf("%s: server env: %w", s.name, err)
	}
	p.client, err = core.NewEnv(clientCfg)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("%s: client env: %w", s.name, err)
	}
	if p.ref, err = p.add(name, ep, opts...); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// add registers ep in the server under name and returns the client's
// ref to it. The first add opens the connection; later ones share it.
func (p *rpcenvPair) add(name string, ep core.Endpoint, opts ...core.EndpointOption) (*core.Ref, error) {
	if _, err := p.server.Register(name, ep, opts...); err != nil {
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	ref, err := p.client.Lookup(ctx, p.server.Address()+"/"+name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	return ref, nil
}

// Close shuts down the client env, then the server env.
func (p *rpcenvPair) Close() error {
	p.once.Do(func() {
		close(p.stop)
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		var errs []error
		for _, e := range []*core.Env{p.client, p.server} {
			if e != nil {
				errs = append(errs, e.Shutdown(ctx))
			}
		}
		if p.shutdown != nil {
			errs = append(errs, p.shutdown(ctx))
		}
		p.err = errors.Join(errs...)
	})
	return p.err
}

// echo replies to every ask with the message it got.
type echo struct{}

func (echo) Receive(c *core.Context, msg any) error { return c.Reply(msg) }

// rpcenvAsker asks the echo endpoint with Ref.Ask.
type rpcenvAsker struct {
	*rpcenvPair
	callers []AskFunc
}

func (s rpcenvSystem) NewAsker(callers int) (Asker, error) {
	p, err := s.open("echo", echo{}, core.WithConcurrency(echoConcurrency), core.WithBorrowedBytes())
	if err != nil {
		return nil, err
	}
	a := &rpcenvAsker{rpcenvPair: p}
	for range callers {
		a.callers = append(a.callers, func(req []byte) ([]byte, error) { return rpcenvAsk(p.ref, req) })
	}
	return a, nil
}

// rpcenvAsk asks ref with req in a Payload and returns the reply's bytes.
func rpcenvAsk(ref *core.Ref, req []byte) ([]byte, error) {
	v, err := ref.Ask(context.Background(), Payload{Data: req}) // the env's AskTimeout bounds it
	if err != nil {
		return nil, err
	}
	reply, ok := v.(Payload)
	if !ok {
		return nil, fmt.Errorf("the reply is a %T, not a Payload", v)
	}
	return reply.Data, nil
}

func (a *rpcenvAsker) Callers() []AskFunc { return a.callers }

// callEndpoint calls its function for each message, which it drops.
type callEndpoint func()

func (f callEndpoint) Receive(*core.Context, any) error {
	f()
	return nil
}

// rpcenvSender sends to the counting endpoint with Ref.Send.
type rpcenvSender struct {
	*rpcenvPair
	count *counter
}

func (s rpcenvSystem) NewSender() (Sender, error) {
	c := new(counter)
	p, err := s.open("count", callEndpoint(c.add), core.WithBorrowedBytes())
	if err != nil {
		return nil, err
	}
	return &rpcenvSender{rpcenvPair: p, count: c}, nil
}

func (s *rpcenvSender) SendN(msg []byte, n int) error {
	done := s.count.expect(n)
	for i := range n {
		if err := s.ref.Send(Payload{Data: msg}); err != nil {
			return fmt.Errorf("send %d of %d: %w", i+1, n, err)
		}
	}
	return s.count.await(done, s.stop)
}

// rpcenvBulkAsker asks the echo endpoint and sends bulk to a second
// endpoint of the same server env, over the same connection.
type rpcenvBulkAsker struct {
	*rpcenvPair
	bulk *core.Ref
}

func (s rpcenvSystem) NewBulkAsker(onBulk func()) (BulkAsker, error) {
	p, err := s.open("echo", echo{}, core.WithConcurrency(echoConcurrency), core.WithBorrowedBytes())
	if err != nil {
		return nil, err
	}
	bulk, err := p.add("bulk", callEndpoint(onBulk))
	if err != nil {
		p.Close()
		return nil, err
	}
	return &rpcenvBulkAsker{rpcenvPair: p, bulk: bulk}, nil
}

func (a *rpcenvBulkAsker) Ask(req []byte) ([]byte, error) { return rpcenvAsk(a.ref, req) }
func (a *rpcenvBulkAsker) SendBulk(msg []byte) error      { return a.bulk.Send(Payload{Data: msg}) }

// rpcenvSlowSender sends to an endpoint that calls receive.
type rpcenvSlowSender struct{ *rpcenvPair }

func (s rpcenvSystem) NewSlowSender(receive func()) (SlowSender, error) {
	p, err := s.open("slow", callEndpoint(receive))
	if err != nil {
		return nil, err
	}
	return rpcenvSlowSender{p}, nil
}

func (s rpcenvSlowSender) Send(msg []byte) error { return s.ref.Send(Payload{Data: msg}) }

// sink is the server endpoint of the stream setup, a core.StreamHandler:
// it reads each stream to its end, answers with the count (sinkStream)
// and closes it. It reads in ReceiveStream itself, in the endpoint's
// goroutine, since the streams of a run come one after another; the
// env's Shutdown ends a stream in progress, and with it ReceiveStream.
type sink struct{}

func (sink) Receive(*core.Context, any) error { return errors.New("the sink takes streams only") }

func (sink) ReceiveStream(_ *core.Context, _ any, s *core.Stream) error {
	if err := sinkStream(s); err != nil {
		return err // aborts the stream: the client's Read fails with it
	}
	return s.Close()
}

// rpcenvStreamer opens streams to the sink endpoint with Ref.OpenStream.
type rpcenvStreamer struct{ *rpcenvPair }

func (s rpcenvSystem) NewStreamer() (Streamer, error) {
	p, err := s.open("sink", sink{})
	if err != nil {
		return nil, err
	}
	return rpcenvStreamer{p}, nil
}

func (s rpcenvStreamer) Stream(chunk []byte, n int64) (int64, error) {
	st, err := s.ref.OpenStream(context.Background(), Payload{}) // the env's AskTimeout bounds the open
	if err != nil {
		return 0, err
	}
	defer st.Close()
	if err := writeN(st, chunk, n); err != nil {
		return 0, err
	}
	if err := st.CloseWrite(); err != nil {
		return 0, err
	}
	return readAnswer(st)
}
