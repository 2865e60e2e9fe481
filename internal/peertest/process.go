package peertest

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
)

// backEndpoint receives what the child sends to the test's ref.
func backEndpoint(got chan<- Echo) *Endpoint {
	return &Endpoint{Handle: func(c *core.Context, msg any) error {
		if m, ok := msg.(Echo); ok {
			got <- m
		}
		return nil
	}}
}

// observer reports the OnDisconnected events of its env.
func observer(disconnected chan<- string) *Endpoint {
	return &Endpoint{Disconnected: func(remote string) { disconnected <- remote }}
}

// TestSIGKILL talks to a child process over transport (send, ask, refs
// both ways, the test's env in client mode so that the child reaches it
// back over the connection the test opened), then kills the child with
// SIGKILL while an ask to it is in flight: the ask must fail with
// ErrDisconnected, not at its far deadline, and OnDisconnected must fire.
// A killed process may send nothing (no FIN, no CONNECTION_CLOSE): the
// env's heartbeats (50ms, PeerTimeout 500ms) notice then.
func TestSIGKILL(t *testing.T, transport string, tr core.Transport) {
	ch := StartChild(t, transport, "-heartbeat=50ms", "-peer-timeout=10s")
	env := StartEnv(t, tr, core.Config{Name: "parent", HeartbeatInterval: 50 * time.Millisecond, PeerTimeout: 500 * time.Millisecond})
	got := make(chan Echo, 16)
	back := MustRegister(t, env, "back", backEndpoint(got))
	disconnected := make(chan string, 4)
	MustRegister(t, env, "observer", observer(disconnected))

	echoRef := MustLookup(t, env, ch.Addr+"/echo")
	if err := echoRef.Send(Echo{N: 1, S: "send"}); err != nil {
		t.Fatalf("Send to the child: %v", err)
	}
	v, err := AskWithin(t, echoRef, Echo{N: 2, S: "ask"})
	if err != nil || v != (Echo{N: 2, S: "ask"}) {
		t.Fatalf("Ask to the child = %#v, %v; want the message echoed", v, err)
	}

	// Our ref goes to the child, which sends to it over the connection we
	// opened; its own ref comes back, and we ask through it.
	v, err = AskWithin(t, echoRef, Carry{Ref: back, N: 3})
	if err != nil {
		t.Fatalf("Ask carrying our ref: %v", err)
	}
	if m := Await(t, got, "the child's message to our ref"); m != (Echo{N: 3, S: "back"}) {
		t.Fatalf("our ref received %#v from the child, want Echo{3, back}", m)
	}
	theirs := v.(Carry).Ref
	if theirs.String() != ch.Addr+"/echo" {
		t.Fatalf("the child's ref is %s, want %s/echo", theirs, ch.Addr)
	}
	if v, err := AskWithin(t, theirs, Echo{N: 4}); err != nil || v != (Echo{N: 4}) {
		t.Fatalf("Ask through the ref the child sent = %#v, %v", v, err)
	}

	// An ask in flight to an endpoint that never answers; its deadline is
	// far, so only the connection's death can end it.
	hang := MustLookup(t, env, ch.Addr+"/hang")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, 1)
	go func() {
		_, err := hang.Ask(ctx, Carry{Ref: back, N: 5})
		errs <- err
	}()
	if m := Await(t, got, "the hang endpoint's notice"); m != (Echo{N: 5, S: "hanging"}) {
		t.Fatalf("got %#v, want the hang endpoint's notice", m)
	}
	if err := ch.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	err = Await(t, errs, "the in-flight ask to fail after SIGKILL")
	t.Logf("the in-flight ask failed %v after SIGKILL: %v", time.Since(killed).Round(time.Millisecond), err)
	if !errors.Is(err, core.ErrDisconnected) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("in-flight ask after SIGKILL: %v; want ErrDisconnected", err)
	}
	if remote := Await(t, disconnected, "OnDisconnected after SIGKILL"); remote != ch.Addr {
		t.Errorf("OnDisconnected(%q), want the child's %q", remote, ch.Addr)
	}
}

// TestSIGSTOP pauses a child process (SIGSTOP) while this side writes
// to it at full speed and an ask to it is in flight: its sockets stay
// open, nothing arrives and nothing more is read, as with a frozen
// machine. Asks with short deadlines end by them, the in-flight ask fails
// with ErrDisconnected naming Config.PeerTimeout, OnDisconnected fires,
// and the sender blocked on the full connection is released with
// ErrDisconnected: the liveness check does not need the data path.
func TestSIGSTOP(t *testing.T, transport string, tr core.Transport) {
	// The child must heartbeat faster than our PeerTimeout while it runs.
	ch := StartChild(t, transport, "-heartbeat=50ms", "-peer-timeout=10s")
	const beat, peerTimeout = 50 * time.Millisecond, 300 * time.Millisecond
	env := StartEnv(t, tr, core.Config{Name: "parent", HeartbeatInterval: beat, PeerTimeout: peerTimeout})
	got := make(chan Echo, 16)
	back := MustRegister(t, env, "back", backEndpoint(got))
	disconnected := make(chan string, 4)
	MustRegister(t, env, "observer", observer(disconnected))

	hang := MustLookup(t, env, ch.Addr+"/hang")
	echoRef := MustLookup(t, env, ch.Addr+"/echo")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, 1)
	go func() {
		_, err := hang.Ask(ctx, Carry{Ref: back, N: 1})
		errs <- err
	}()
	Await(t, got, "the hang endpoint's notice")

	// Bulk to the hang endpoint (which ignores it), as fast as it goes.
	bulkErr := make(chan error, 1)
	go func() {
		blob := Echo{S: strings.Repeat("x", 64<<10)}
		for range 1 << 20 { // 64 GiB: far more than any buffer
			if err := hang.Send(blob); err != nil {
				bulkErr <- err
				return
			}
		}
		bulkErr <- nil
	}()
	if v, err := AskWithin(t, echoRef, Echo{N: 2}); err != nil || v != (Echo{N: 2}) {
		t.Fatalf("Ask while writing bulk = %#v, %v", v, err)
	}

	// A stopped process keeps its sockets open: no FIN, no RST, only
	// silence, as with an unplugged machine.
	if err := syscall.Kill(ch.Cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP: %v", err)
	}
	defer syscall.Kill(ch.Cmd.Process.Pid, syscall.SIGCONT)
	// kill returns before every thread of the child has stopped: wait
	// for the kernel to report it stopped (WUNTRACED reports a stop
	// without reaping), so that nothing it does comes after this point.
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(ch.Cmd.Process.Pid, &ws, syscall.WUNTRACED, nil); err != nil || !ws.Stopped() {
		t.Fatalf("waiting for the child to stop: %v (status %v)", err, ws)
	}
	stopped := time.Now()
	short := make(chan error, 3)
	for range cap(short) {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			_, err := echoRef.Ask(ctx, Echo{N: 3})
			short <- err
		}()
	}
	for range cap(short) {
		if err := Await(t, short, "a short ask to the stopped peer"); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, core.ErrDisconnected) {
			t.Errorf("a 100ms ask to a stopped peer: %v; want its deadline or ErrDisconnected", err)
		}
	}
	err := Await(t, errs, "the in-flight ask to fail after PeerTimeout")
	if !errors.Is(err, core.ErrDisconnected) || !strings.Contains(err.Error(), "Config.PeerTimeout") {
		t.Fatalf("in-flight ask to a stopped peer: %v; want ErrDisconnected naming Config.PeerTimeout", err)
	}
	t.Logf("declared dead %v after SIGSTOP (PeerTimeout %v, heartbeat %v)", time.Since(stopped).Round(time.Millisecond), peerTimeout, beat)
	if remote := Await(t, disconnected, "OnDisconnected for the stopped peer"); remote != ch.Addr {
		t.Errorf("OnDisconnected(%q), want the child's %q", remote, ch.Addr)
	}
	if err := Await(t, bulkErr, "the bulk sender's release"); !errors.Is(err, core.ErrDisconnected) {
		t.Errorf("the sender writing to the stopped peer returned %v; want ErrDisconnected", err)
	}
}

// TestEMFILE runs the child with few file descriptors (RLIMIT_NOFILE
// 40) and opens connections to it until its accepts fail with "too many
// open files", which it logs. Once those connections close, the next
// client must be served: the env's accept loop waited the errors out
// instead of ending.
func TestEMFILE(t *testing.T, transport string, tr core.Transport) {
	ch := StartChild(t, transport, "-nofile=40")
	addr := strings.TrimPrefix(ch.Addr, transport+"://")
	var burst []net.Conn
	defer func() {
		for _, c := range burst {
			c.Close()
		}
	}()
	const most = 200 // far above 40: the child runs out long before
	for len(burst) < most {
		if seen, _ := ch.Stderr.Contains("accept failed"); seen {
			break
		}
		c, err := net.DialTimeout("tcp", addr, Wait)
		if err != nil {
			t.Fatalf("connection %d of the burst: %v", len(burst)+1, err)
		}
		burst = append(burst, c)
	}
	// The kernel completes connections into the backlog whatever the
	// child does: wait for the child to log its failed accept.
	deadline := time.After(Wait)
	for {
		seen, wrote := ch.Stderr.Contains("accept failed")
		if seen {
			break
		}
		select {
		case <-wrote:
		case <-deadline:
			t.Fatalf("%d connections and the child never logged a failed accept; stderr:\n%s", len(burst), ch.Stderr)
		}
	}
	if !strings.Contains(ch.Stderr.String(), "too many open files") {
		t.Fatalf("the child's accepts failed, but not for want of descriptors:\n%s", ch.Stderr)
	}
	for _, c := range burst {
		c.Close()
	}
	burst = nil

	env := StartEnv(t, tr, core.Config{Name: "parent"})
	echo := MustLookup(t, env, ch.Addr+"/echo")
	if v, err := AskWithin(t, echo, Echo{N: 1, S: "after the burst"}); err != nil || v != (Echo{N: 1, S: "after the burst"}) {
		t.Fatalf("Ask after the EMFILE burst = %#v, %v; want it echoed", v, err)
	}
}

// TestStreamSIGKILL opens a stream to the child's "sink" and writes at
// full speed, then kills the child with SIGKILL mid-stream: Read and
// Write must fail with ErrDisconnected, never end with io.EOF.
func TestStreamSIGKILL(t *testing.T, transport string, tr core.Transport) {
	ch := StartChild(t, transport, "-heartbeat=50ms", "-peer-timeout=10s")
	env := StartEnv(t, tr, core.Config{Name: "parent", HeartbeatInterval: 50 * time.Millisecond, PeerTimeout: 500 * time.Millisecond})
	sink := MustLookup(t, env, ch.Addr+"/sink")
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	s, err := sink.OpenStream(ctx, "upload")
	if err != nil {
		t.Fatalf("OpenStream to the child: %v", err)
	}
	defer s.Close()
	werr := make(chan error, 1)
	go func() { // writes until the stream fails
		chunk := make([]byte, 64<<10)
		for {
			if _, err := s.Write(chunk); err != nil {
				werr <- err
				return
			}
		}
	}()
	var b [1]byte
	if _, err := s.Read(b[:]); err != nil {
		t.Fatalf("the child's sign that bytes flow: %v", err)
	}
	if err := ch.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(b[:]); !errors.Is(err, core.ErrDisconnected) {
		t.Errorf("Read after the child was killed mid-stream: %v, want ErrDisconnected (never io.EOF)", err)
	}
	if err := Await(t, werr, "the writer to fail"); !errors.Is(err, core.ErrDisconnected) {
		t.Errorf("Write after the child was killed mid-stream: %v, want ErrDisconnected", err)
	}
}
