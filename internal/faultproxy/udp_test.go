package faultproxy

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func startUDP(t *testing.T, target string, cfg config) *UDP {
	t.Helper()
	p, err := newUDP("127.0.0.1:0", target, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return p
}

// listenUDP returns a socket a test reads and answers by hand: the target,
// where the test must control what it sends back and when.
func listenUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(safety))
	t.Cleanup(func() { c.Close() })
	return c
}

func dialUDP(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(safety))
	t.Cleanup(func() { c.Close() })
	return c.(*net.UDPConn)
}

// udpEcho is a target that sends every datagram back and counts them.
type udpEcho struct {
	conn *net.UDPConn
	got  atomic.Int64
}

func newUDPEcho(t *testing.T) *udpEcho {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	e := &udpEcho{conn: c}
	done := make(chan struct{}) // closed by the echo loop when c is closed
	go func() {
		defer close(done)
		buf := make([]byte, udpBufSize)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			e.got.Add(1)
			c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return e
}

func (e *udpEcho) addr() string { return e.conn.LocalAddr().String() }

// recv reads one datagram.
func recv(t *testing.T, c *net.UDPConn) ([]byte, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, udpBufSize)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("receive a datagram: %v", err)
	}
	return buf[:n], from
}

// roundTrip sends b and fails unless the next datagram back is b. One
// datagram in flight at a time: loopback does not drop it for want of
// buffer.
func roundTrip(t *testing.T, c *net.UDPConn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatalf("send %d bytes: %v", len(b), err)
	}
	if got, _ := recv(t, c); !bytes.Equal(got, b) {
		t.Fatalf("sent %d bytes %.20q, got back %d bytes %.20q", len(b), b, len(got), got)
	}
}

// through sends s from the client and fails unless it is the next
// datagram the target receives. It returns where it came from: the
// proxy's socket for that client, where the target's replies go.
func through(t *testing.T, client, target *net.UDPConn, s string) netip.AddrPort {
	t.Helper()
	if _, err := client.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	got, from := recv(t, target)
	if string(got) != s {
		t.Fatalf("the target received %q, want %q", got, s)
	}
	return from
}

// reply sends s from the target to the proxy's socket for a client.
func reply(t *testing.T, target *net.UDPConn, to netip.AddrPort, s string) {
	t.Helper()
	if _, err := target.WriteToUDPAddrPort([]byte(s), to); err != nil {
		t.Fatal(err)
	}
}

// expect fails unless the next datagram c receives is s.
func expect(t *testing.T, c *net.UDPConn, s, why string) {
	t.Helper()
	if got, _ := recv(t, c); string(got) != s {
		t.Fatalf("received %q, want %q: %s", got, s, why)
	}
}

func TestUDPEchoesEachClientItsOwnDatagramsUnchanged(t *testing.T) {
	echo := newUDPEcho(t)
	p := startUDP(t, echo.addr(), defaultConfig())
	clients := []*net.UDPConn{dialUDP(t, p.Addr()), dialUDP(t, p.Addr())}
	for i := range 100 {
		for id, c := range clients {
			// Sizes up to 8 KiB, each datagram unlike any other.
			b := append(fmt.Appendf(nil, "client %d datagram %d ", id, i), randomBytes(byte(i), i*80)...)
			roundTrip(t, c, b)
		}
	}
}

func TestUDPDelayHoldsDatagramsAtLeastTheDelay(t *testing.T) {
	const delay, jitter = 40 * time.Millisecond, 10 * time.Millisecond
	echo := newUDPEcho(t)
	p := startUDP(t, echo.addr(), defaultConfig())
	p.Set(Faults{Delay: delay, Jitter: jitter, Seed: 1})
	c := dialUDP(t, p.Addr())

	start := time.Now()
	roundTrip(t, c, []byte("held twice"))
	if elapsed := time.Since(start); elapsed < 2*(delay-jitter) {
		t.Fatalf("a round trip took %v, less than the least delay both ways, %v", elapsed, 2*(delay-jitter))
	}
}

func TestUDPLossOneDropsEveryDatagramBothWays(t *testing.T) {
	const n = 50
	target := listenUDP(t)
	tr, cfg := newTracer()
	p := startUDP(t, target.LocalAddr().String(), cfg)
	client := dialUDP(t, p.Addr())

	p.Set(Faults{Loss: 1})
	for i := range n {
		if _, err := client.Write(fmt.Appendf(nil, "lost %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	tr.await(t, n, traced{evDropped, Upstream})
	if s := p.Stats(); s != (Stats{Dropped: n}) {
		t.Fatalf("after %d datagrams at loss 1, stats = %+v, want all dropped", n, s)
	}

	p.Set(Faults{})
	from := through(t, client, target, "kept") // the target's first: none of the lost ones came
	p.Set(Faults{Loss: 1})
	reply(t, target, from, "lost reply")
	tr.await(t, 1, traced{evDropped, Downstream})
	p.Set(Faults{})
	reply(t, target, from, "kept reply")
	expect(t, client, "kept reply", "the reply sent at loss 1 went through")
}

func TestUDPLossZeroDropsNothing(t *testing.T) {
	const n = 200
	echo := newUDPEcho(t)
	tr, cfg := newTracer()
	p := startUDP(t, echo.addr(), cfg)
	p.Set(Faults{Loss: 0, Jitter: time.Millisecond, Seed: 3})
	client := dialUDP(t, p.Addr())
	for i := range n {
		roundTrip(t, client, fmt.Appendf(nil, "datagram %d", i))
	}
	// The client can read a reply before the proxy counts it.
	tr.await(t, n, traced{evForwarded, Downstream})
	if s := p.Stats(); s != (Stats{Forwarded: 2 * n}) {
		t.Fatalf("after %d round trips at loss 0, stats = %+v, want %d forwarded", n, s, 2*n)
	}
}

// TestUDPLossIsReproducibleFromItsSeed runs the same traffic through two
// proxies at loss 0.5 with the same seed: the same datagrams get through.
// The draws are seeded, so the outcome is fixed, not likely.
func TestUDPLossIsReproducibleFromItsSeed(t *testing.T) {
	const n = 64
	run := func() []int {
		target := listenUDP(t)
		tr, cfg := newTracer()
		p := startUDP(t, target.LocalAddr().String(), cfg)
		p.Set(Faults{Loss: 0.5, Seed: 42})
		client := dialUDP(t, p.Addr())
		for i := range n {
			if _, err := client.Write([]byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		tr.await(t, n, traced{evForwarded, Upstream}, traced{evDropped, Upstream})
		var kept []int
		for range p.Stats().Forwarded {
			b, _ := recv(t, target)
			kept = append(kept, int(b[0]))
		}
		return kept
	}
	first, second := run(), run()
	if len(first) == 0 || len(first) == n {
		t.Fatalf("at loss 0.5, %d of %d datagrams got through", len(first), n)
	}
	if !slices.Equal(first, second) {
		t.Fatalf("the same seed let through %v, then %v", first, second)
	}
}

func TestUDPPartitionDropsBothWaysUntilHeal(t *testing.T) {
	target := listenUDP(t)
	tr, cfg := newTracer()
	p := startUDP(t, target.LocalAddr().String(), cfg)
	client := dialUDP(t, p.Addr())
	from := through(t, client, target, "before")

	p.Partition()
	if _, err := client.Write([]byte("up during the partition")); err != nil {
		t.Fatal(err)
	}
	tr.await(t, 1, traced{evDropped, Upstream})
	reply(t, target, from, "down during the partition")
	tr.await(t, 1, traced{evDropped, Downstream})

	p.Heal()
	through(t, client, target, "after")
	reply(t, target, from, "back")
	expect(t, client, "back", "a reply sent during the partition went through")
	if s := p.Stats(); s.Dropped != 2 {
		t.Fatalf("stats = %+v, want the 2 datagrams of the partition dropped", s)
	}
}

func TestUDPBoundsClientsAndHeldDatagrams(t *testing.T) {
	target := listenUDP(t)
	tr, cfg := newTracer()
	cfg.maxClients, cfg.maxHeld = 2, 4
	p := startUDP(t, target.LocalAddr().String(), cfg)
	c1, c2, c3 := dialUDP(t, p.Addr()), dialUDP(t, p.Addr()), dialUDP(t, p.Addr())

	through(t, c1, target, "one")
	through(t, c2, target, "two")
	if _, err := c3.Write([]byte("three")); err != nil {
		t.Fatal(err)
	}
	tr.await(t, 1, traced{evDropped, Upstream})
	through(t, c1, target, "one again") // a known client still passes; "three" never came

	// Held for an hour, past the test: the fifth and sixth find no room.
	p.Set(Faults{Delay: time.Hour})
	for i := range 6 {
		if _, err := c1.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	tr.await(t, 3, traced{evDropped, Upstream})
	if s := p.Stats(); s != (Stats{Forwarded: 3, Dropped: 3}) {
		t.Fatalf("stats = %+v, want 3 forwarded and 3 dropped", s)
	}
}

func TestUDPCloseEndsEveryGoroutineWithDatagramsHeld(t *testing.T) {
	echo := newUDPEcho(t)
	before := goleak.IgnoreCurrent()
	p, err := newUDP("", echo.addr(), defaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		roundTrip(t, dialUDP(t, p.Addr()), fmt.Appendf(nil, "client %d", i))
	}
	p.Set(Faults{Delay: time.Hour})
	if _, err := dialUDP(t, p.Addr()).Write([]byte("held at close")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	goleak.VerifyNone(t, before)
}
