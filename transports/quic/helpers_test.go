package quic_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/quic"
)

// testWait bounds every wait of these tests. It is not a performance
// target: a test that reaches it has failed (hung), and says what it
// waited for.
const testWait = 20 * time.Second

// envLog sends an env's log lines to t while the test runs, and drops
// them after (an env shut down in Cleanup may still log).
type envLog struct {
	mu   sync.Mutex
	t    testing.TB
	over bool
}

func newEnvLog(t testing.TB) *slog.Logger {
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

// newEnv makes an env on tr (a fresh QUIC transport when nil),
// shut down when the test ends. cfg.Listen "" is client mode.
func startEnv(t testing.TB, tr core.Transport, cfg core.Config) *core.Env {
	t.Helper()
	if tr == nil {
		tr = quic.New(quic.Options{Logger: discardLog})
	}
	cfg.Transports = []core.Transport{tr}
	if cfg.Logger == nil {
		cfg.Logger = newEnvLog(t)
	}
	e, err := core.NewEnv(cfg)
	if err != nil {
		t.Fatalf("NewEnv: %v", err)
	}
	t.Cleanup(func() { shutdownEnv(t, e) })
	return e
}

func shutdownEnv(t testing.TB, e *core.Env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown of %s: %v", e.Name(), err)
	}
}

func mustRegister(t testing.TB, e *core.Env, name string, ep core.Endpoint) *core.Ref {
	t.Helper()
	r, err := e.Register(name, ep)
	if err != nil {
		t.Fatalf("Register(%q) in %s: %v", name, e.Name(), err)
	}
	return r
}

func mustLookup(t testing.TB, from *core.Env, uri string) *core.Ref {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	r, err := from.Lookup(ctx, uri)
	if err != nil {
		t.Fatalf("Lookup(%s) from %s: %v", uri, from.Name(), err)
	}
	return r
}

func askWithin(t testing.TB, r *core.Ref, msg any) (any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	return r.Ask(ctx, msg)
}

// recv waits for a value on ch, failing the test if none comes.
func await[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testWait):
		t.Fatalf("waited %v for %s", testWait, what)
		panic("unreachable")
	}
}

// testEndpoint is an endpoint whose callbacks are func fields; nil ones do
// nothing. It is a NetworkObserver.
type testEndpoint struct {
	receive func(c *core.Context, msg any) error
	conn    func(remote string)
	disc    func(remote string)
}

func (p *testEndpoint) Receive(c *core.Context, msg any) error {
	if p.receive != nil {
		return p.receive(c, msg)
	}
	return nil
}

func (p *testEndpoint) OnConnected(remote string) {
	if p.conn != nil {
		p.conn(remote)
	}
}

func (p *testEndpoint) OnDisconnected(remote string) {
	if p.disc != nil {
		p.disc(remote)
	}
}

func (p *testEndpoint) OnNetworkError(string, error) {}

// echo replies to every ask with the message itself.
func echoEndpoint() *testEndpoint {
	return &testEndpoint{receive: func(c *core.Context, msg any) error {
		if c.IsAsk() {
			return c.Reply(msg)
		}
		return nil
	}}
}

// awaitClosed waits for ch to be closed.
func awaitClosed(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(testWait):
		t.Fatalf("waited %v for %s", testWait, what)
	}
}

// discardLog drops an env's log lines (benchmarks).
var discardLog = slog.New(slog.DiscardHandler)
