package conformance

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
)

// Factory is what the suite needs to know about the transport under test.
type Factory struct {
	// NewTransport returns the transport to test. It is called once per
	// test case; the envs of one case share the value it returns.
	NewTransport func(t testing.TB) core.Transport
	// ListenURI returns a URI an env of a test case can listen on,
	// different from every other URI of the case: "tcp://127.0.0.1:0",
	// or "inproc://" with a fresh name.
	ListenURI func(t testing.TB) string
}

// waitLimit bounds every wait of the suite. It is not a performance
// target: a case that reaches it has failed (hung), and says what it
// waited for.
const waitLimit = 20 * time.Second

// Messages of the suite. Their wire names are registered in init.
type (
	// Ping asks for a Pong with N+1.
	Ping struct{ N int }
	// Pong answers a Ping.
	Pong struct{ N int }
	// Seq is one numbered message of a sender.
	Seq struct{ Sender, N int }
	// Carry holds a ref, as an executor's registration does.
	Carry struct {
		Ref  *core.Ref
		Note string
	}
	// Blob is a message of chosen size.
	Blob struct{ Data []byte }
	// Loose holds values of no fixed type, where refs travel too; Where
	// says where the receiver should look for one.
	Loose struct {
		Where string
		Any   any
		Map   map[string]any
		List  []any
	}
	// Unregistered is deliberately never registered.
	Unregistered struct{ X int }
)

func init() {
	core.RegisterMessage[Ping]("conformance.Ping")
	core.RegisterMessage[Pong]("conformance.Pong")
	core.RegisterMessage[Seq]("conformance.Seq")
	core.RegisterMessage[Carry]("conformance.Carry")
	core.RegisterMessage[Blob]("conformance.Blob")
	core.RegisterMessage[Loose]("conformance.Loose")
}

// harness builds envs for one test case.
type harness struct {
	t    *testing.T
	f    Factory
	wire *wire
	mu   sync.Mutex
	over bool // the case ended: stop logging to t
}

func newHarness(t *testing.T, f Factory) *harness {
	h := &harness{t: t, f: f, wire: newWire(f.NewTransport(t))}
	t.Cleanup(func() { // registered first, so it runs last
		h.mu.Lock()
		h.over = true
		h.mu.Unlock()
	})
	return h
}

// Write logs env output through t while the case runs.
func (h *harness) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.over {
		h.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// server makes a listening env; edit may change its Config.
func (h *harness) server(name string, edit ...func(*core.Config)) *core.Env {
	h.t.Helper()
	cfg := core.Config{Name: name, Listen: h.f.ListenURI(h.t)}
	return h.newEnv(cfg, edit)
}

// client makes a client-mode env.
func (h *harness) client(name string, edit ...func(*core.Config)) *core.Env {
	h.t.Helper()
	return h.newEnv(core.Config{Name: name}, edit)
}

func (h *harness) newEnv(cfg core.Config, edit []func(*core.Config)) *core.Env {
	h.t.Helper()
	cfg.Transports = []core.Transport{h.wire}
	cfg.Logger = slog.New(slog.NewTextHandler(h, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, f := range edit {
		f(&cfg)
	}
	e, err := core.NewEnv(cfg)
	if err != nil {
		h.t.Fatalf("NewEnv(%+v): %v", cfg, err)
	}
	h.t.Cleanup(func() { h.shutdown(e) })
	return e
}

func (h *harness) shutdown(e *core.Env) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		h.t.Errorf("Shutdown of %s: %v", e.Name(), err)
	}
}

func (h *harness) register(e *core.Env, name string, ep core.Endpoint, opts ...core.EndpointOption) *core.Ref {
	h.t.Helper()
	ref, err := e.Register(name, ep, opts...)
	if err != nil {
		h.t.Fatalf("Register(%q) in %s: %v", name, e.Name(), err)
	}
	return ref
}

// lookup finds name in env at from's view, failing the case on error.
func (h *harness) lookup(from, at *core.Env, name string) *core.Ref {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	ref, err := from.Lookup(ctx, at.Address()+"/"+name)
	if err != nil {
		h.t.Fatalf("Lookup(%s/%s) from %s: %v", at.Address(), name, from.Name(), err)
	}
	return ref
}

// ask asks with the suite's generous deadline.
func ask(t testing.TB, r *core.Ref, msg any) (any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	return r.Ask(ctx, msg)
}

// askLater asks from another goroutine; the channel gets the error.
func askLater(ctx context.Context, r *core.Ref, msg any) <-chan error {
	errs := make(chan error, 1)
	go func() {
		_, err := r.Ask(ctx, msg)
		errs <- err
	}()
	return errs
}

// recv waits for a value on ch, failing the case if none comes.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("waited %v for %s", waitLimit, what)
		panic("unreachable")
	}
}

// closed waits for ch to be closed.
func closed(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitLimit):
		t.Fatalf("waited %v for %s", waitLimit, what)
	}
}

// probe is an endpoint whose every callback is a func field; nil ones do
// nothing. It implements all optional interfaces.
type probe struct {
	start   func(self *core.Ref) error
	receive func(c *core.Context, msg any) error
	stop    func()
	onError func(err error)
	conn    func(remote string)
	disc    func(remote string)
	netErr  func(remote string, err error)
}

func (p *probe) OnStart(self *core.Ref) error {
	if p.start != nil {
		return p.start(self)
	}
	return nil
}

func (p *probe) Receive(c *core.Context, msg any) error {
	if p.receive != nil {
		return p.receive(c, msg)
	}
	return nil
}

func (p *probe) OnStop() {
	if p.stop != nil {
		p.stop()
	}
}

func (p *probe) OnError(err error) {
	if p.onError != nil {
		p.onError(err)
	}
}

func (p *probe) OnConnected(remote string) {
	if p.conn != nil {
		p.conn(remote)
	}
}

func (p *probe) OnDisconnected(remote string) {
	if p.disc != nil {
		p.disc(remote)
	}
}

func (p *probe) OnNetworkError(remote string, err error) {
	if p.netErr != nil {
		p.netErr(remote, err)
	}
}

// echo replies to every ask with the message itself, and to a Ping with
// a Pong.
func echo() *probe {
	return &probe{receive: func(c *core.Context, msg any) error {
		if p, ok := msg.(Ping); ok {
			return c.Reply(Pong{N: p.N + 1})
		}
		if c.IsAsk() {
			return c.Reply(msg)
		}
		return nil
	}}
}

// events records strings in order, for lifecycle checks.
type events struct {
	mu   sync.Mutex
	list []string
	ch   chan string
}

func newEvents() *events { return &events{ch: make(chan string, 4096)} }

func (ev *events) add(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	ev.mu.Lock()
	ev.list = append(ev.list, s)
	ev.mu.Unlock()
	ev.ch <- s
}

func (ev *events) snapshot() []string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return append([]string(nil), ev.list...)
}

// next waits for the next event.
func (ev *events) next(t testing.TB, what string) string {
	t.Helper()
	return recv(t, ev.ch, what)
}

// until waits until an event equal to want arrives, returning the ones
// before it.
func (ev *events) until(t testing.TB, want string) []string {
	t.Helper()
	var before []string
	for {
		s := recv(t, ev.ch, fmt.Sprintf("event %q (seen so far: %q)", want, before))
		if s == want {
			return before
		}
		before = append(before, s)
	}
}
