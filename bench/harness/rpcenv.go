package harness

import (
	"context"
	"errors"
	"fmt"
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

// Payload is the message of the rpcenv and net/rpc systems: the request
// or reply bytes inside a struct, as an application would send them.
type Payload struct{ Data []byte }

func init() { core.RegisterMessage[Payload]("bench.Payload") }

// discard drops the log lines of envs and transports.
var discard = slog.New(slog.DiscardHandler)

// rpcenvSystem is rpcenv between a listening env and a client-mode env,
// over the transport that transport makes.
type rpcenvSystem struct {
	name      string
	transport func() (t core.Transport, listen string)
}

func inprocTransport() (core.Transport, string) { return inproc.New(), "inproc://bench" }
func tcpTransport() (core.Transport, string)    { return tcp.New(tcp.Options{}), "tcp://127.0.0.1:0" }
func quicTransport() (core.Transport, string) {
	return quic.New(quic.Options{Logger: discard}), "quic://127.0.0.1:0"
}

func (s rpcenvSystem) Name() string { return s.name }
func (s rpcenvSystem) Group() Group { return GroupRPCEnv }

// rpcenvPair is a listening env with one endpoint and a client-mode env
// holding a ref to it, over one connection (opened by the Lookup).
type rpcenvPair struct {
	server, client *core.Env
	ref            *core.Ref
	stop           chan struct{} // closed by Close
	once           sync.Once
	err            error
}

// open starts both envs and registers ep in the server under name.
func (s rpcenvSystem) open(name string, ep core.Endpoint, opts ...core.EndpointOption) (*rpcenvPair, error) {
	tr, listen := s.transport()
	p := &rpcenvPair{stop: make(chan struct{})}
	var err error
	p.server, err = core.NewEnv(core.Config{Name: "server", Listen: listen, Transports: []core.Transport{tr}, Logger: discard, AskTimeout: Timeout})
	if err != nil {
		return nil, fmt.Errorf("%s: server env: %w", s.name, err)
	}
	p.client, err = core.NewEnv(core.Config{Name: "client", Transports: []core.Transport{tr}, Logger: discard, AskTimeout: Timeout})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("%s: client env: %w", s.name, err)
	}
	if _, err := p.server.Register(name, ep, opts...); err != nil {
		p.Close()
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if p.ref, err = p.client.Lookup(ctx, p.server.Address()+"/"+name); err != nil {
		p.Close()
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	return p, nil
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
	p, err := s.open("echo", echo{}, core.WithConcurrency(echoConcurrency))
	if err != nil {
		return nil, err
	}
	a := &rpcenvAsker{rpcenvPair: p}
	ctx := context.Background() // the env's AskTimeout bounds each ask
	for range callers {
		a.callers = append(a.callers, func(req []byte) ([]byte, error) {
			v, err := p.ref.Ask(ctx, Payload{Data: req})
			if err != nil {
				return nil, err
			}
			reply, ok := v.(Payload)
			if !ok {
				return nil, fmt.Errorf("the reply is a %T, not a Payload", v)
			}
			return reply.Data, nil
		})
	}
	return a, nil
}

func (a *rpcenvAsker) Callers() []AskFunc { return a.callers }

// countEndpoint counts the messages sent to it.
type countEndpoint struct{ c *counter }

func (e countEndpoint) Receive(*core.Context, any) error {
	e.c.add()
	return nil
}

// rpcenvSender sends to the counting endpoint with Ref.Send.
type rpcenvSender struct {
	*rpcenvPair
	count *counter
}

func (s rpcenvSystem) NewSender() (Sender, error) {
	c := new(counter)
	p, err := s.open("count", countEndpoint{c})
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
