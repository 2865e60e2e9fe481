package quic_test

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/quic"
)

// patient is a transport whose dials would wait 30 s for a handshake: a
// dial that fails with ECONNREFUSED before the test's own limit (20 s)
// was refused, not timed out.
func patient() *quic.Transport {
	return quic.New(quic.Options{Logger: discardLog, HandshakeTimeout: 30 * time.Second})
}

// A dial to a port that closes while the dial waits for its handshake (a
// server shutting down) is refused: the probe that caught nothing when it
// first went out is sent again, and its ICMP error fails the dial.
func TestADialToAPortThatClosesDuringTheDialIsRefused(t *testing.T) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() { // ends when pc closes
		// Close once both the probe (one byte) and the QUIC Initial have
		// arrived, unanswered: the dial is under way, and its first probe
		// drew no refusal.
		var probe, initial bool
		var b [2048]byte
		for !probe || !initial {
			n, _, err := pc.ReadFrom(b[:])
			if err != nil {
				return
			}
			probe = probe || n == 1
			initial = initial || n >= 1200
		}
		pc.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	c, err := patient().Dial(ctx, pc.LocalAddr().String(), core.ConnOptions{})
	if err == nil {
		c.Close()
		t.Fatal("the dial succeeded")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial: %v; want an error wrapping ECONNREFUSED", err)
	}
}

// A listener that is closed while a connection it accepted is still open
// keeps its UDP socket, so no ICMP error refuses a dial: the socket
// refuses it with QUIC's CONNECTION_REFUSED instead. The connection
// already accepted goes on working.
func TestADialToAClosedListenerWhoseSocketIsStillOpenIsRefused(t *testing.T) {
	tr := patient()
	l, err := tr.Listen("127.0.0.1:0", core.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	client, err := tr.Dial(ctx, l.Addr(), core.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server := accept(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	c, err := tr.Dial(ctx, l.Addr(), core.ConnOptions{})
	if err == nil {
		c.Close()
		t.Fatal("a dial to the closed listener succeeded")
	}
	var te *quicgo.TransportError
	if !errors.Is(err, syscall.ECONNREFUSED) || !errors.As(err, &te) || te.ErrorCode != quicgo.ConnectionRefused {
		t.Fatalf("dial to the closed listener: %v; want ECONNREFUSED from QUIC's CONNECTION_REFUSED", err)
	}

	if err := client.WriteFrames([][]byte{[]byte("still here")}); err != nil {
		t.Fatal(err)
	}
	if f, err := server.ReadFrame(); err != nil || string(f) != "still here" {
		t.Fatalf("ReadFrame on the connection accepted before Close = %q, %v", f, err)
	}
}
