package quic_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/quic/internal/peermsg"
)

// child is the program of testdata/peer running as a child process.
type child struct {
	cmd    *exec.Cmd
	addr   string // its env's URI
	stdin  io.WriteCloser
	stderr *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startChild builds testdata/peer, starts it with args and waits for the
// address it prints. The child is killed and waited for when the test
// ends, whatever happened.
func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("no go command to build the child program: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "peer")
	build := exec.Command("go", "build", "-o", bin, "./testdata/peer")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/peer: %v\n%s", err, out)
	}
	c := &child{cmd: exec.Command(bin, args...), stderr: &lockedBuffer{}}
	c.cmd.Stderr = c.stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start the child: %v", err)
	}
	t.Cleanup(func() {
		c.cmd.Process.Kill() // SIGKILL works on a stopped process too
		c.cmd.Wait()
		if t.Failed() {
			t.Logf("child's stderr:\n%s", c.stderr)
		}
	})
	lines := make(chan string, 1)
	go func() { // ends when the child's stdout closes, at its death at the latest
		s := bufio.NewScanner(stdout)
		if s.Scan() {
			lines <- s.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	addr, ok := awaitOK(t, lines, "the child's address on its stdout")
	if !ok || !strings.HasPrefix(addr, "quic://127.0.0.1:") {
		t.Fatalf("the child printed %q, want its address; stderr:\n%s", addr, c.stderr)
	}
	c.addr = addr
	return c
}

// awaitOK is await for a channel that may be closed.
func awaitOK[T any](t testing.TB, ch <-chan T, what string) (T, bool) {
	t.Helper()
	select {
	case v, ok := <-ch:
		return v, ok
	case <-time.After(testWait):
		t.Fatalf("waited %v for %s", testWait, what)
		panic("unreachable")
	}
}

// backEndpoint receives what the child sends to the test's ref.
func backEndpoint(got chan<- peermsg.Echo) *testEndpoint {
	return &testEndpoint{receive: func(c *core.Context, msg any) error {
		if m, ok := msg.(peermsg.Echo); ok {
			got <- m
		}
		return nil
	}}
}

// observer reports the OnDisconnected events of its env.
func observer(disconnected chan<- string) *testEndpoint {
	return &testEndpoint{disc: func(remote string) { disconnected <- remote }}
}

// A killed process sends no CONNECTION_CLOSE: the env's heartbeats
// (50ms, PeerTimeout 500ms) or QUIC's idle timeout must notice.
func TestTalksToAnotherProcessAndSeesItDieBySIGKILL(t *testing.T) {
	ch := startChild(t, "-heartbeat=50ms", "-peer-timeout=10s")
	// client mode: the child reaches it back over our connection
	env := startEnv(t, nil, core.Config{Name: "parent", HeartbeatInterval: 50 * time.Millisecond, PeerTimeout: 500 * time.Millisecond})
	got := make(chan peermsg.Echo, 16)
	back := mustRegister(t, env, "back", backEndpoint(got))
	disconnected := make(chan string, 4)
	mustRegister(t, env, "observer", observer(disconnected))

	echoRef := mustLookup(t, env, ch.addr+"/echo")
	if err := echoRef.Send(peermsg.Echo{N: 1, S: "send"}); err != nil {
		t.Fatalf("Send to the child: %v", err)
	}
	v, err := askWithin(t, echoRef, peermsg.Echo{N: 2, S: "ask"})
	if err != nil || v != (peermsg.Echo{N: 2, S: "ask"}) {
		t.Fatalf("Ask to the child = %#v, %v; want the message echoed", v, err)
	}

	// Our ref goes to the child, which sends to it over the connection we
	// opened; its own ref comes back, and we ask through it.
	v, err = askWithin(t, echoRef, peermsg.Carry{Ref: back, N: 3})
	if err != nil {
		t.Fatalf("Ask carrying our ref: %v", err)
	}
	if m := await(t, got, "the child's message to our ref"); m != (peermsg.Echo{N: 3, S: "back"}) {
		t.Fatalf("our ref received %#v from the child, want Echo{3, back}", m)
	}
	theirs := v.(peermsg.Carry).Ref
	if theirs.String() != ch.addr+"/echo" {
		t.Fatalf("the child's ref is %s, want %s/echo", theirs, ch.addr)
	}
	if v, err := askWithin(t, theirs, peermsg.Echo{N: 4}); err != nil || v != (peermsg.Echo{N: 4}) {
		t.Fatalf("Ask through the ref the child sent = %#v, %v", v, err)
	}

	// An ask in flight to an endpoint that never answers; its deadline is
	// far, so only the connection's death can end it.
	hang := mustLookup(t, env, ch.addr+"/hang")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, 1)
	go func() {
		_, err := hang.Ask(ctx, peermsg.Carry{Ref: back, N: 5})
		errs <- err
	}()
	if m := await(t, got, "the hang endpoint's notice"); m != (peermsg.Echo{N: 5, S: "hanging"}) {
		t.Fatalf("got %#v, want the hang endpoint's notice", m)
	}
	if err := ch.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	err = await(t, errs, "the in-flight ask to fail after SIGKILL")
	t.Logf("the in-flight ask failed %v after SIGKILL: %v", time.Since(killed).Round(time.Millisecond), err)
	if !errors.Is(err, core.ErrDisconnected) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("in-flight ask after SIGKILL: %v; want ErrDisconnected", err)
	}
	if remote := await(t, disconnected, "OnDisconnected after SIGKILL"); remote != ch.addr {
		t.Errorf("OnDisconnected(%q), want the child's %q", remote, ch.addr)
	}
}

func TestAPeerThatStopsAnsweringIsDeclaredDeadAfterPeerTimeout(t *testing.T) {
	// The child must heartbeat faster than our PeerTimeout while it runs.
	ch := startChild(t, "-heartbeat=50ms", "-peer-timeout=10s")
	env := startEnv(t, nil, core.Config{Name: "parent", HeartbeatInterval: 50 * time.Millisecond, PeerTimeout: 300 * time.Millisecond})
	got := make(chan peermsg.Echo, 16)
	back := mustRegister(t, env, "back", backEndpoint(got))
	disconnected := make(chan string, 4)
	mustRegister(t, env, "observer", observer(disconnected))

	hang := mustLookup(t, env, ch.addr+"/hang")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, 1)
	go func() {
		_, err := hang.Ask(ctx, peermsg.Carry{Ref: back, N: 1})
		errs <- err
	}()
	await(t, got, "the hang endpoint's notice")

	// A stopped process keeps its sockets open: no FIN, no RST, only
	// silence, as with an unplugged machine.
	if err := syscall.Kill(ch.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP: %v", err)
	}
	defer syscall.Kill(ch.cmd.Process.Pid, syscall.SIGCONT)
	err := await(t, errs, "the in-flight ask to fail after PeerTimeout")
	if !errors.Is(err, core.ErrDisconnected) || !strings.Contains(err.Error(), "Config.PeerTimeout") {
		t.Fatalf("in-flight ask to a stopped peer: %v; want ErrDisconnected naming Config.PeerTimeout", err)
	}
	if remote := await(t, disconnected, "OnDisconnected for the stopped peer"); remote != ch.addr {
		t.Errorf("OnDisconnected(%q), want the child's %q", remote, ch.addr)
	}
}
