package core_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/inproc"
)

// blackHole wraps a transport; once frozen, every frame written is lost,
// as with a peer that was unplugged: nothing errors, nothing arrives.
type blackHole struct {
	core.Transport
	frozen atomic.Bool
	dials  atomic.Int32
	mu     sync.Mutex
	frames int // frames written while not frozen
	beat   chan struct{}
}

func (b *blackHole) Dial(ctx context.Context, addr string, o core.ConnOptions) (core.Conn, error) {
	b.dials.Add(1)
	c, err := b.Transport.Dial(ctx, addr, o)
	if err != nil {
		return nil, err
	}
	return &holeConn{Conn: c, b: b}, nil
}

func (b *blackHole) Listen(addr string, o core.ConnOptions) (core.Listener, error) {
	l, err := b.Transport.Listen(addr, o)
	if err != nil {
		return nil, err
	}
	return &holeListener{Listener: l, b: b}, nil
}

type holeListener struct {
	core.Listener
	b *blackHole
}

func (l *holeListener) Accept() (core.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &holeConn{Conn: c, b: l.b}, nil
}

type holeConn struct {
	core.Conn
	b *blackHole
}

func (c *holeConn) WriteFrames(frames [][]byte) error {
	if c.b.frozen.Load() {
		return nil
	}
	c.b.mu.Lock()
	c.b.frames += len(frames)
	c.b.mu.Unlock()
	for _, f := range frames {
		if c.b.beat != nil && len(f) > 1 && f[1] == 16 { // kind 16: a heartbeat
			select {
			case c.b.beat <- struct{}{}:
			default:
			}
		}
	}
	return c.Conn.WriteFrames(frames)
}

func livePair(t *testing.T, hole *blackHole, beat, timeout time.Duration, srvBeat time.Duration) (srv, cli *core.Env, lost chan string) {
	t.Helper()
	cfg := func(c core.Config) core.Config {
		c.Transports = []core.Transport{hole}
		c.HeartbeatInterval, c.PeerTimeout = beat, timeout
		return c
	}
	sc := cfg(core.Config{Name: "srv", Listen: "inproc://srv"})
	sc.HeartbeatInterval = srvBeat
	srv, err := core.NewEnv(sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	cli, err = core.NewEnv(cfg(core.Config{Name: "cli"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Shutdown(context.Background()) })
	lost = make(chan string, 1)
	if _, err := cli.Register("watch", &observer{lost: lost}); err != nil {
		t.Fatal(err)
	}
	return srv, cli, lost
}

type observer struct{ lost chan string }

func (o *observer) Receive(*core.Context, any) error { return nil }
func (o *observer) OnConnected(string)               {}
func (o *observer) OnDisconnected(r string)          { o.lost <- r }
func (o *observer) OnNetworkError(string, error)     {}

// TestUnpluggedPeerIsDetectedByHeartbeats: a peer that goes silent
// without closing anything is declared dead after PeerTimeout; the ask in
// flight fails with ErrDisconnected and OnDisconnected fires.
func TestUnpluggedPeerIsDetectedByHeartbeats(t *testing.T) {
	hole := &blackHole{Transport: inproc.New()}
	// The server sends no heartbeats and never times out, so it is the
	// client's own check that finds the silence.
	srv, cli, lost := livePair(t, hole, 10*time.Millisecond, 50*time.Millisecond, -1)
	inside := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	srv.Register("hang", endpointFunc(func(c *core.Context, _ any) error {
		close(inside)
		<-release
		return nil
	}))
	ref, err := cli.Lookup(t.Context(), "inproc://srv/hang")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := ref.Ask(ctx, 1)
		errs <- err
	}()
	<-inside
	hole.frozen.Store(true)
	if err := <-errs; !errors.Is(err, core.ErrDisconnected) || !strings.Contains(err.Error(), "Config.PeerTimeout") {
		t.Fatalf("in-flight ask to an unplugged peer: %v; want ErrDisconnected naming Config.PeerTimeout", err)
	}
	if got := <-lost; got != "inproc://srv" {
		t.Fatalf("OnDisconnected(%q), want inproc://srv", got)
	}
}

// TestHeartbeatsKeepAnIdleConnectionAlive: an idle connection carries
// heartbeats and is never dropped, however long it stays idle.
func TestHeartbeatsKeepAnIdleConnectionAlive(t *testing.T) {
	hole := &blackHole{Transport: inproc.New(), beat: make(chan struct{}, 1)}
	srv, cli, lost := livePair(t, hole, 5*time.Millisecond, 30*time.Millisecond, 5*time.Millisecond)
	srv.Register("echo", endpointFunc(func(c *core.Context, msg any) error { return c.Reply(msg) }))
	ref, err := cli.Lookup(t.Context(), "inproc://srv/echo")
	if err != nil {
		t.Fatal(err)
	}
	for range 40 { // 40 heartbeats: several PeerTimeouts of idleness
		<-hole.beat
	}
	select {
	case r := <-lost:
		t.Fatalf("an idle connection with heartbeats was dropped (OnDisconnected(%s))", r)
	default:
	}
	if v, err := ref.Ask(t.Context(), 5); err != nil || v != 5 {
		t.Fatalf("Ask after idling = %v, %v", v, err)
	}
	if n := hole.dials.Load(); n != 1 {
		t.Fatalf("%d dials; the idle connection should have stayed up", n)
	}
}

// TestFailedConnectBacksOff: right after a failed connect, a second
// message to the same address fails at once with the same cause, without
// dialing again.
func TestFailedConnectBacksOff(t *testing.T) {
	hole := &blackHole{Transport: inproc.New()}
	cli, err := core.NewEnv(core.Config{Name: "cli", Transports: []core.Transport{hole}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Shutdown(context.Background())
	_, err1 := cli.Lookup(t.Context(), "inproc://nobody/x")
	_, err2 := cli.Lookup(t.Context(), "inproc://nobody/x")
	for _, err := range []error{err1, err2} {
		if !errors.Is(err, core.ErrDisconnected) || !strings.Contains(err.Error(), "inproc://nobody") {
			t.Fatalf("Lookup at an address nobody listens on: %v; want ErrDisconnected naming it", err)
		}
	}
	if !strings.Contains(err2.Error(), "failed attempts") {
		t.Errorf("the second failure %q does not say it is backing off", err2)
	}
	if n := hole.dials.Load(); n != 1 {
		t.Fatalf("%d dials, want 1: the second Lookup should not dial during the backoff", n)
	}
}
