package core_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
)

// silent is a transport whose peers never say a word: a dial succeeds,
// frames written vanish, and nothing ever arrives, so the env's handshake
// waits until it gives up (Config.ConnectTimeout) or shuts down. A lookup
// through it can only end at its deadline.
type silent struct{}

func (silent) Scheme() string { return "silent" }

func (silent) Listen(string, core.ConnOptions) (core.Listener, error) {
	return nil, errors.New("silent: no listening")
}

func (silent) Dial(_ context.Context, addr string, _ core.ConnOptions) (core.Conn, error) {
	return &silentConn{addr: addr, closed: make(chan struct{})}, nil
}

type silentConn struct {
	addr   string
	once   sync.Once
	closed chan struct{} // closed by Close, once
}

func (c *silentConn) WriteFrames([][]byte) error {
	select {
	case <-c.closed:
		return fmt.Errorf("silent: write to %s: %w", c.addr, net.ErrClosed)
	default:
		return nil
	}
}

func (c *silentConn) ReadFrame() ([]byte, error) {
	<-c.closed
	return nil, fmt.Errorf("silent: read from %s: %w", c.addr, net.ErrClosed)
}

func (c *silentConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *silentConn) RemoteAddr() string { return c.addr }

// newSilentEnv is a client-mode env whose only transport is silent, with
// ConnectTimeout and AskTimeout far beyond the test's: only a lookup's
// own deadline can end a lookup.
func newSilentEnv(t *testing.T, lookupTimeout time.Duration) *core.Env {
	t.Helper()
	e, err := core.NewEnv(core.Config{
		Name:           "looker",
		Transports:     []core.Transport{silent{}},
		LookupTimeout:  lookupTimeout,
		AskTimeout:     time.Hour,
		ConnectTimeout: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Shutdown(context.Background()) })
	return e
}

const silentURI = "silent://driver-host:7077/driver"

func TestLookupWithoutADeadlineEndsAfterLookupTimeoutAndNamesIt(t *testing.T) {
	e := newSilentEnv(t, 50*time.Millisecond)
	start := time.Now()
	_, err := e.Lookup(context.Background(), silentURI)
	took := time.Since(start)
	t.Logf("Lookup: %v", err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lookup of a peer that never answers: %v; want an error wrapping context.DeadlineExceeded", err)
	}
	msg := err.Error()
	for _, want := range []string{silentURI, "Config.LookupTimeout", "50ms"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error %q does not name %q", msg, want)
		}
	}
	if strings.Contains(msg, "AskTimeout") || errors.Is(err, core.ErrDisconnected) {
		t.Errorf("the error %q blames the ask timeout or the connection; it was the lookup's deadline", msg)
	}
	if took < 50*time.Millisecond {
		t.Errorf("Lookup gave up after %v, before Config.LookupTimeout (50ms)", took)
	}
}

func TestLookupDeadlineFromTheContextWinsOverLookupTimeout(t *testing.T) {
	for _, c := range []struct {
		name          string
		lookupTimeout time.Duration
		ctxTimeout    time.Duration
	}{
		{"longer than LookupTimeout", 50 * time.Millisecond, 300 * time.Millisecond},
		{"shorter than LookupTimeout", time.Hour, 50 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newSilentEnv(t, c.lookupTimeout)
			start := time.Now() // before the deadline is set, so that took measures it whole
			ctx, cancel := context.WithTimeout(context.Background(), c.ctxTimeout)
			defer cancel()
			_, err := e.Lookup(ctx, silentURI)
			took := time.Since(start)
			t.Logf("Lookup: %v", err)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Lookup: %v; want an error wrapping context.DeadlineExceeded", err)
			}
			if msg := err.Error(); !strings.Contains(msg, "caller's context") || strings.Contains(msg, "LookupTimeout") {
				t.Errorf("the error %q should name the caller's context, not Config.LookupTimeout", msg)
			}
			if took < c.ctxTimeout {
				t.Errorf("Lookup gave up after %v, before the context's deadline (%v)", took, c.ctxTimeout)
			}
		})
	}
}

func TestNewEnvRefusesANegativeLookupTimeout(t *testing.T) {
	_, err := core.NewEnv(core.Config{LookupTimeout: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "Config.LookupTimeout") {
		t.Fatalf("NewEnv with LookupTimeout -1s: %v; want an error naming Config.LookupTimeout", err)
	}
}
