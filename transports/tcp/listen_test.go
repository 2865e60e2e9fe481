package tcp_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/internal/peertest"
	"github.com/rpcenv/rpcenv/transports/tcp"
)

type echo struct{}

func (echo) Receive(c *core.Context, msg any) error { return c.Reply(msg) }

func TestListenOnAPortInUseNamesTheAddress(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	uri := "tcp://" + busy.Addr().String()
	_, err = core.NewEnv(core.Config{Listen: uri, Transports: []core.Transport{tcp.New(tcp.Options{})}})
	if err == nil || !strings.Contains(err.Error(), uri) {
		t.Fatalf("NewEnv on a port in use: %v; want an error naming %s", err, uri)
	}
}

// TestAdvertisedAddressTravelsInRefs binds every interface and advertises
// another name: refs carry the advertised address, and peers that dial it
// reach the env.
func TestAdvertisedAddressTravelsInRefs(t *testing.T) {
	tr := tcp.New(tcp.Options{})
	// Find a free port, then bind 0.0.0.0 on it and advertise localhost.
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	adv := "tcp://localhost:" + strconv.Itoa(port)
	srv, err := core.NewEnv(core.Config{Name: "srv", Listen: "tcp://0.0.0.0:" + strconv.Itoa(port), Advertise: adv, Transports: []core.Transport{tr}})
	if err != nil {
		t.Skipf("could not bind the probed port again: %v", err)
	}
	defer srv.Shutdown(context.Background())
	ref, err := srv.Register("echo", echo{})
	if err != nil {
		t.Fatal(err)
	}
	if srv.Address() != adv || ref.String() != adv+"/echo" {
		t.Fatalf("Address() = %q, ref %s; want the advertised %s", srv.Address(), ref, adv)
	}
	cli, err := core.NewEnv(core.Config{Name: "cli", Transports: []core.Transport{tr}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Shutdown(context.Background())
	got, err := cli.Lookup(t.Context(), adv+"/echo")
	if err != nil {
		t.Fatalf("Lookup through the advertised address: %v", err)
	}
	if got.String() != adv+"/echo" {
		t.Fatalf("looked-up ref %s, want %s/echo", got, adv)
	}
	if v, err := got.Ask(t.Context(), "hi"); err != nil || v != "hi" {
		t.Fatalf("Ask = %v, %v", v, err)
	}
}

// TestPortRetriesListenOnTheNextFreePort occupies a port and asks for it
// with PortRetries 3: the env listens on one of the three after it, says
// so in its address and its refs, and is reachable there.
func TestPortRetriesListenOnTheNextFreePort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	p := busy.Addr().(*net.TCPAddr).Port
	if p+3 > 65535 {
		t.Skipf("port %d leaves no room for 3 more", p)
	}
	tr := tcp.New(tcp.Options{})
	srv, err := core.NewEnv(core.Config{Name: "srv", Listen: "tcp://127.0.0.1:" + strconv.Itoa(p), PortRetries: 3,
		Transports: []core.Transport{tr}, Logger: newEnvLog(t)})
	if errors.Is(err, syscall.EADDRINUSE) && strings.Contains(err.Error(), "all in use") {
		t.Skipf("other programs hold the 3 ports after %d: %v", p, err)
	}
	if err != nil {
		t.Fatalf("NewEnv on a port in use with PortRetries 3: %v", err)
	}
	t.Cleanup(func() { shutdownEnv(t, srv) })
	peertest.CheckMovedPort(t, tr, srv, "tcp", p)
}

func TestPortRetriesZeroFailsOnAPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	uri := "tcp://" + busy.Addr().String()
	_, err = core.NewEnv(core.Config{Listen: uri, Transports: []core.Transport{tcp.New(tcp.Options{})}})
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), uri) || !strings.Contains(err.Error(), "Config.PortRetries") {
		t.Fatalf("NewEnv on a port in use with PortRetries 0: %v; want an error naming %s and Config.PortRetries, wrapping EADDRINUSE", err, uri)
	}
}
