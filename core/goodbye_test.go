package core_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/inproc"
)

// syncBuffer is a log destination that tests read while envs write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAGoodbyeEndsTheConnectionQuietly: the env that receives a Goodbye
// closes the connection at once, as a disconnect (OnDisconnected), not
// as a protocol violation; so the shutting-down env's Shutdown ends
// without waiting for its PeerTimeout (an hour here: Shutdown's context
// would end first, and Shutdown would fail).
func TestAGoodbyeEndsTheConnectionQuietly(t *testing.T) {
	ns := inproc.New()
	var logs syncBuffer
	a, err := core.NewEnv(core.Config{Name: "a", Listen: "inproc://a", Transports: []core.Transport{ns},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	b, err := core.NewEnv(core.Config{Name: "b", Listen: "inproc://b", Transports: []core.Transport{ns}, PeerTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	lost := make(chan string, 1)
	if _, err := a.Register("watch", statsProbe{endpointFunc: func(*core.Context, any) error { return nil }, lost: lost}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Register("echo", endpointFunc(func(c *core.Context, msg any) error { return c.Reply(msg) })); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ref, err := a.Lookup(ctx, "inproc://b/echo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ref.Ask(ctx, "hi"); err != nil {
		t.Fatal(err)
	}
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v; want nil, the peer closing on the Goodbye", err)
	}
	select {
	case remote := <-lost:
		if remote != "inproc://b" {
			t.Errorf("OnDisconnected(%q), want inproc://b", remote)
		}
	case <-ctx.Done():
		t.Fatal("no OnDisconnected after the peer's Goodbye")
	}
	if out := logs.String(); strings.Contains(out, "protocol violation") {
		t.Errorf("the Goodbye was logged as a protocol violation:\n%s", out)
	}
}
