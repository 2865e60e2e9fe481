package peertest

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
)

// The helpers below are shared by the tests of transports/tcp and
// transports/quic.

// Wait bounds every wait of the transports' tests. It is not a performance
// target: a test that reaches it has failed (hung), and says what it
// waited for.
const Wait = 20 * time.Second

// envLog sends an env's log lines to t while the test runs, and drops
// them after (an env shut down in Cleanup may still log).
type envLog struct {
	mu   sync.Mutex
	t    testing.TB
	over bool
}

func NewEnvLog(t testing.TB) *slog.Logger {
	l := &envLog{t: t}
	t.Cleanup(func() { // registered before the envs' shutdowns, so it runs after them
		l.mu.Lock()
		l.over = true
		l.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func (l *envLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.over {
		l.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// StartEnv makes an env on tr, shut down when the test ends. cfg.Listen
// "" is client mode. Its log lines go to t.
func StartEnv(t testing.TB, tr core.Transport, cfg core.Config) *core.Env {
	t.Helper()
	cfg.Transports = []core.Transport{tr}
	if cfg.Logger == nil {
		cfg.Logger = NewEnvLog(t)
	}
	e, err := core.NewEnv(cfg)
	if err != nil {
		t.Fatalf("NewEnv: %v", err)
	}
	t.Cleanup(func() { ShutdownEnv(t, e) })
	return e
}

func ShutdownEnv(t testing.TB, e *core.Env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown of %s: %v", e.Name(), err)
	}
}

func MustRegister(t testing.TB, e *core.Env, name string, ep core.Endpoint) *core.Ref {
	t.Helper()
	r, err := e.Register(name, ep)
	if err != nil {
		t.Fatalf("Register(%q) in %s: %v", name, e.Name(), err)
	}
	return r
}

func MustLookup(t testing.TB, from *core.Env, uri string) *core.Ref {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	r, err := from.Lookup(ctx, uri)
	if err != nil {
		t.Fatalf("Lookup(%s) from %s: %v", uri, from.Name(), err)
	}
	return r
}

func AskWithin(t testing.TB, r *core.Ref, msg any) (any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	return r.Ask(ctx, msg)
}

// Await waits for a value on ch, failing the test if none comes.
func Await[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(Wait):
		t.Fatalf("waited %v for %s", Wait, what)
		panic("unreachable")
	}
}

// Endpoint is an endpoint whose callbacks are func fields; nil ones do
// nothing. It is a NetworkObserver.
type Endpoint struct {
	Handle       func(c *core.Context, msg any) error
	Connected    func(remote string)
	Disconnected func(remote string)
}

func (p *Endpoint) Receive(c *core.Context, msg any) error {
	if p.Handle != nil {
		return p.Handle(c, msg)
	}
	return nil
}

func (p *Endpoint) OnConnected(remote string) {
	if p.Connected != nil {
		p.Connected(remote)
	}
}

func (p *Endpoint) OnDisconnected(remote string) {
	if p.Disconnected != nil {
		p.Disconnected(remote)
	}
}

func (p *Endpoint) OnNetworkError(string, error) {}

// EchoEndpoint replies to every ask with the message itself.
func EchoEndpoint() *Endpoint {
	return &Endpoint{Handle: func(c *core.Context, msg any) error {
		if c.IsAsk() {
			return c.Reply(msg)
		}
		return nil
	}}
}

// AwaitClosed waits for ch to be closed.
func AwaitClosed(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(Wait):
		t.Fatalf("waited %v for %s", Wait, what)
	}
}

// DiscardLog drops an env's log lines (benchmarks).
var DiscardLog = slog.New(slog.DiscardHandler)

// CheckMovedPort checks an env asked to listen on port p, which was in
// use, with Config.PortRetries 3: its address names a port in (p, p+3],
// its refs carry that address, and an env on tr reaches it there through
// a lookup. scheme is tr's.
func CheckMovedPort(t testing.TB, tr core.Transport, srv *core.Env, scheme string, p int) {
	t.Helper()
	_, portStr, err := net.SplitHostPort(strings.TrimPrefix(srv.Address(), scheme+"://"))
	if err != nil {
		t.Fatalf("Address() = %q: %v", srv.Address(), err)
	}
	got, _ := strconv.Atoi(portStr)
	if got <= p || got > p+3 {
		t.Fatalf("Address() = %q; want a port in (%d, %d]", srv.Address(), p, p+3)
	}
	ref := MustRegister(t, srv, "echo", EchoEndpoint())
	if want := srv.Address() + "/echo"; ref.String() != want {
		t.Errorf("ref %s, want %s", ref, want)
	}
	cli := StartEnv(t, tr, core.Config{Name: "cli"})
	r := MustLookup(t, cli, ref.String())
	if v, err := AskWithin(t, r, "hi"); err != nil || v != "hi" {
		t.Fatalf("Ask through port %d = %v, %v", got, v, err)
	}
}
