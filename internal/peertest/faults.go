package peertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/internal/faultproxy"
)

// proxy is what the fault tests need of a faultproxy.TCP or UDP.
type proxy interface {
	Addr() string
	Set(faultproxy.Faults)
	Partition()
	Heal()
	Close() error
}

// faultPair is a server env reached only through a fault proxy (it
// advertises the proxy's address, so refs to it, reconnects included,
// go through the proxy) and a client-mode env.
type faultPair struct {
	server, client *core.Env
	proxy          proxy
}

func newFaultPair(t *testing.T, scheme string, tr core.Transport, cfg core.Config) *faultPair {
	t.Helper()
	// The proxy must exist before the server, which advertises its
	// address, and the server's port is known only once it listens: so
	// reserve the proxy first, pointed at a port the server then takes.
	target := freePort(t, scheme)
	var p proxy
	var err error
	if scheme == "quic" {
		p, err = faultproxy.NewUDP("127.0.0.1:0", target)
	} else {
		p, err = faultproxy.NewTCP("127.0.0.1:0", target)
	}
	if err != nil {
		t.Fatalf("start the fault proxy: %v", err)
	}
	t.Cleanup(func() { p.Close() }) // after the envs' shutdowns: cleanups run last first
	scfg := cfg
	scfg.Name, scfg.Listen, scfg.Advertise = "server", scheme+"://"+target, scheme+"://"+p.Addr()
	server := StartEnv(t, tr, scfg)
	ccfg := cfg
	ccfg.Name = "client"
	client := StartEnv(t, tr, ccfg)
	return &faultPair{server: server, client: client, proxy: p}
}

// TestFaults runs a server and a client over transport tr (scheme "tcp"
// or "quic") through a fault proxy (internal/faultproxy):
//
//   - through delay with jitter (and, over QUIC, 5% loss of datagrams),
//     asks of every size, large ones crossing in chunks, get their
//     answers byte for byte, and sends arrive whole and in order;
//   - a partition stops the heartbeats: the client declares the server
//     dead within PeerTimeout, an ask in flight fails with
//     ErrDisconnected (not at its far deadline) and OnDisconnected fires;
//     once it heals, the client connects again and asks are answered.
func TestFaults(t *testing.T, scheme string, tr core.Transport) {
	t.Run("DelayAndLoss", func(t *testing.T) { faultsDelayAndLoss(t, scheme, tr) })
	t.Run("PartitionThenHeal", func(t *testing.T) { faultsPartition(t, scheme, tr) })
}

func faultsDelayAndLoss(t *testing.T, scheme string, tr core.Transport) {
	fp := newFaultPair(t, scheme, tr, core.Config{})
	f := faultproxy.Faults{Delay: 2 * time.Millisecond, Jitter: time.Millisecond, Seed: 7}
	if scheme == "quic" {
		f.Loss = 0.05
	}
	fp.proxy.Set(f)
	MustRegister(t, fp.server, "echo", EchoEndpoint())
	got := make(chan Echo, 1024)
	MustRegister(t, fp.server, "sink", &Endpoint{Handle: func(c *core.Context, msg any) error {
		if m, ok := msg.(Echo); ok {
			got <- m
		}
		return nil
	}})
	echo := MustLookup(t, fp.client, fp.server.Address()+"/echo")
	for i, size := range []int{0, 1, 1000, 64<<10 + 1, 300 << 10} {
		want := Echo{N: i, S: strings.Repeat(string(rune('a'+i)), size)}
		v, err := AskWithin(t, echo, want)
		if err != nil {
			t.Fatalf("ask of %d bytes through delay and loss: %v", size, err)
		}
		if v != want {
			t.Fatalf("ask of %d bytes: the answer differs from what was sent", size)
		}
	}
	sink := MustLookup(t, fp.client, fp.server.Address()+"/sink")
	const sends = 500
	for i := range sends {
		if err := sink.Send(Echo{N: i, S: "in order"}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	for i := range sends {
		if m := Await(t, got, fmt.Sprintf("send %d", i)); m.N != i || m.S != "in order" {
			t.Fatalf("send %d arrived as %+v: out of order or changed", i, m)
		}
	}
}

func faultsPartition(t *testing.T, scheme string, tr core.Transport) {
	fp := newFaultPair(t, scheme, tr, core.Config{HeartbeatInterval: 50 * time.Millisecond, PeerTimeout: 500 * time.Millisecond})
	MustRegister(t, fp.server, "echo", EchoEndpoint())
	inside := make(chan struct{}, 1)
	MustRegister(t, fp.server, "hang", &Endpoint{Handle: func(c *core.Context, msg any) error {
		inside <- struct{}{}
		return nil // never answers
	}})
	disconnected := make(chan string, 4)
	MustRegister(t, fp.client, "observer", observer(disconnected))
	echo := MustLookup(t, fp.client, fp.server.Address()+"/echo")
	hang := MustLookup(t, fp.client, fp.server.Address()+"/hang")

	// No deadline of the caller's: without the dead-peer check the ask
	// would wait AskTimeout (two minutes).
	errs := make(chan error, 1)
	go func() {
		_, err := hang.Ask(context.Background(), Echo{N: 1})
		errs <- err
	}()
	Await(t, inside, "the ask to reach the server")
	fp.proxy.Partition()
	if err := Await(t, errs, "the ask in flight across the partition to fail"); !errors.Is(err, core.ErrDisconnected) {
		t.Fatalf("ask in flight across a partition: %v, want ErrDisconnected", err)
	}
	if remote := Await(t, disconnected, "OnDisconnected"); remote != fp.server.Address() {
		t.Errorf("OnDisconnected(%q), want the server's address %q", remote, fp.server.Address())
	}

	fp.proxy.Heal()
	// The client dials again; a dial that failed during the partition
	// puts the address in backoff (at most 5 s), during which asks fail
	// at once: ask again, a bounded number of times.
	var err error
	for range 100 {
		var v any
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		v, err = echo.Ask(ctx, Echo{N: 2, S: "after the heal"})
		cancel()
		if err == nil {
			if v != (Echo{N: 2, S: "after the heal"}) {
				t.Fatalf("ask after the heal = %#v, want it echoed", v)
			}
			return
		}
		if !errors.Is(err, core.ErrDisconnected) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ask after the heal: %v, want an answer (or ErrDisconnected while the reconnect backs off)", err)
		}
		time.Sleep(100 * time.Millisecond) // the reconnect backoff has no event to wait on
	}
	t.Fatalf("no ask answered after the heal: %v", err)
}

// freePort returns a loopback address whose port was free a moment ago,
// for a server that must be named before it listens.
func freePort(t *testing.T, scheme string) string {
	t.Helper()
	if scheme == "quic" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().String()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
