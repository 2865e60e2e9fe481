package quic_test

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/internal/peertest"
	"github.com/rpcenv/rpcenv/transports/quic"
)

// occupyUDP holds a free UDP port on 127.0.0.1 until the test ends.
func occupyUDP(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// TestPortRetriesListenOnTheNextFreePort occupies a UDP port and asks
// for it with PortRetries 3: the env listens on one of the three after
// it, says so in its address and its refs, and is reachable there.
func TestPortRetriesListenOnTheNextFreePort(t *testing.T) {
	p := occupyUDP(t)
	if p+3 > 65535 {
		t.Skipf("port %d leaves no room for 3 more", p)
	}
	tr := quic.New(quic.Options{Logger: discardLog})
	srv, err := core.NewEnv(core.Config{Name: "srv", Listen: "quic://127.0.0.1:" + strconv.Itoa(p), PortRetries: 3,
		Transports: []core.Transport{tr}, Logger: discardLog})
	if errors.Is(err, syscall.EADDRINUSE) && strings.Contains(err.Error(), "all in use") {
		t.Skipf("other programs hold the 3 ports after %d: %v", p, err)
	}
	if err != nil {
		t.Fatalf("NewEnv on a port in use with PortRetries 3: %v", err)
	}
	t.Cleanup(func() { peertest.ShutdownEnv(t, srv) })
	peertest.CheckMovedPort(t, tr, srv, "quic", p)
}

func TestPortRetriesZeroFailsOnAPortInUse(t *testing.T) {
	uri := "quic://127.0.0.1:" + strconv.Itoa(occupyUDP(t))
	_, err := core.NewEnv(core.Config{Listen: uri, Transports: []core.Transport{quic.New(quic.Options{Logger: discardLog})}})
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), uri) || !strings.Contains(err.Error(), "Config.PortRetries") {
		t.Fatalf("NewEnv on a port in use with PortRetries 0: %v; want an error naming %s and Config.PortRetries, wrapping EADDRINUSE", err, uri)
	}
}
