package tcp_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/internal/peertest"
)

// backEndpoint receives what the child sends to the test's ref.
func backEndpoint(got chan<- peertest.Echo) *testEndpoint {
	return &testEndpoint{receive: func(c *core.Context, msg any) error {
		if m, ok := msg.(peertest.Echo); ok {
			got <- m
		}
		return nil
	}}
}

// observer reports the OnDisconnected events of its env.
func observer(disconnected chan<- string) *testEndpoint {
	return &testEndpoint{disc: func(remote string) { disconnected <- remote }}
}

func TestTalksToAnotherProcessAndSeesItDieBySIGKILL(t *testing.T) {
	ch := peertest.StartChild(t, "tcp")
	env := startEnv(t, nil, core.Config{Name: "parent"}) // client mode: the child reaches it back over our connection
	got := make(chan peertest.Echo, 16)
	back := mustRegister(t, env, "back", backEndpoint(got))
	disconnected := make(chan string, 4)
	mustRegister(t, env, "observer", observer(disconnected))

	echoRef := mustLookup(t, env, ch.Addr+"/echo")
	if err := echoRef.Send(peertest.Echo{N: 1, S: "send"}); err != nil {
		t.Fatalf("Send to the child: %v", err)
	}
	v, err := askWithin(t, echoRef, peertest.Echo{N: 2, S: "ask"})
	if err != nil || v != (peertest.Echo{N: 2, S: "ask"}) {
		t.Fatalf("Ask to the child = %#v, %v; want the message echoed", v, err)
	}

	// Our ref goes to the child, which sends to it over the connection we
	// opened; its own ref comes back, and we ask through it.
	v, err = askWithin(t, echoRef, peertest.Carry{Ref: back, N: 3})
	if err != nil {
		t.Fatalf("Ask carrying our ref: %v", err)
	}
	if m := await(t, got, "the child's message to our ref"); m != (peertest.Echo{N: 3, S: "back"}) {
		t.Fatalf("our ref received %#v from the child, want Echo{3, back}", m)
	}
	theirs := v.(peertest.Carry).Ref
	if theirs.String() != ch.Addr+"/echo" {
		t.Fatalf("the child's ref is %s, want %s/echo", theirs, ch.Addr)
	}
	if v, err := askWithin(t, theirs, peertest.Echo{N: 4}); err != nil || v != (peertest.Echo{N: 4}) {
		t.Fatalf("Ask through the ref the child sent = %#v, %v", v, err)
	}

	// An ask in flight to an endpoint that never answers; its deadline is
	// far, so only the connection's death can end it.
	hang := mustLookup(t, env, ch.Addr+"/hang")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, 1)
	go func() {
		_, err := hang.Ask(ctx, peertest.Carry{Ref: back, N: 5})
		errs <- err
	}()
	if m := await(t, got, "the hang endpoint's notice"); m != (peertest.Echo{N: 5, S: "hanging"}) {
		t.Fatalf("got %#v, want the hang endpoint's notice", m)
	}
	if err := ch.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err = await(t, errs, "the in-flight ask to fail after SIGKILL")
	if !errors.Is(err, core.ErrDisconnected) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("in-flight ask after SIGKILL: %v; want ErrDisconnected", err)
	}
	if remote := await(t, disconnected, "OnDisconnected after SIGKILL"); remote != ch.Addr {
		t.Errorf("OnDisconnected(%q), want the child's %q", remote, ch.Addr)
	}
}

func TestAPeerThatStopsAnsweringIsDeclaredDeadAfterPeerTimeout(t *testing.T) {
	// The child must heartbeat faster than our PeerTimeout while it runs.
	ch := peertest.StartChild(t, "tcp", "-heartbeat=50ms", "-peer-timeout=10s")
	env := startEnv(t, nil, core.Config{Name: "parent", HeartbeatInterval: 50 * time.Millisecond, PeerTimeout: 300 * time.Millisecond})
	got := make(chan peertest.Echo, 16)
	back := mustRegister(t, env, "back", backEndpoint(got))
	disconnected := make(chan string, 4)
	mustRegister(t, env, "observer", observer(disconnected))

	hang := mustLookup(t, env, ch.Addr+"/hang")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, 1)
	go func() {
		_, err := hang.Ask(ctx, peertest.Carry{Ref: back, N: 1})
		errs <- err
	}()
	await(t, got, "the hang endpoint's notice")

	// A stopped process keeps its sockets open: no FIN, no RST, only
	// silence, as with an unplugged machine.
	if err := syscall.Kill(ch.Cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP: %v", err)
	}
	defer syscall.Kill(ch.Cmd.Process.Pid, syscall.SIGCONT)
	err := await(t, errs, "the in-flight ask to fail after PeerTimeout")
	if !errors.Is(err, core.ErrDisconnected) || !strings.Contains(err.Error(), "Config.PeerTimeout") {
		t.Fatalf("in-flight ask to a stopped peer: %v; want ErrDisconnected naming Config.PeerTimeout", err)
	}
	if remote := await(t, disconnected, "OnDisconnected for the stopped peer"); remote != ch.Addr {
		t.Errorf("OnDisconnected(%q), want the child's %q", remote, ch.Addr)
	}
}
