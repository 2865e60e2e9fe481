package faultproxy

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// tcpTarget is the server behind the proxy: it hands each accepted
// connection to the test.
type tcpTarget struct {
	ln    net.Listener
	conns chan *net.TCPConn
}

func newTCPTarget(t *testing.T) *tcpTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tt := &tcpTarget{ln: ln, conns: make(chan *net.TCPConn, 16)}
	done := make(chan struct{}) // closed by the accept loop when ln is closed
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case tt.conns <- c.(*net.TCPConn):
			default: // more than a test takes
				c.Close()
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for {
			select {
			case c := <-tt.conns:
				c.Close()
			default:
				return
			}
		}
	})
	return tt
}

func (tt *tcpTarget) addr() string { return tt.ln.Addr().String() }

// accept returns the next connection the proxy dialed.
func (tt *tcpTarget) accept(t *testing.T) *net.TCPConn {
	t.Helper()
	select {
	case c := <-tt.conns:
		c.SetDeadline(time.Now().Add(safety))
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(safety):
		t.Fatalf("the target accepted nothing within %v", safety)
		return nil
	}
}

func startTCP(t *testing.T, target string, cfg config) *TCP {
	t.Helper()
	p, err := newTCP("127.0.0.1:0", target, cfg)
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

func dialTCP(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(safety))
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// pair dials the proxy and returns both ends of the proxied connection.
func pair(t *testing.T, p *TCP, tt *tcpTarget) (client, server *net.TCPConn) {
	t.Helper()
	client = dialTCP(t, p.Addr())
	return client, tt.accept(t)
}

// exchange writes s on from and fails unless to reads s.
func exchange(t *testing.T, from, to net.Conn, s string) {
	t.Helper()
	write(t, from, []byte(s))
	if got := readFull(t, to, len(s)); string(got) != s {
		t.Fatalf("sent %q, received %q", s, got)
	}
}

// readsToTheEnd fails unless c's reads end, in EOF or an error, other than
// by the safety deadline.
func readsToTheEnd(t *testing.T, c net.Conn, who string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(safety))
	if _, err := io.Copy(io.Discard, c); isTimeout(err) {
		t.Fatalf("%s: the connection stayed open for %v", who, safety)
	}
}

// nothingBuffered fails if c has a byte to read now. It does not wait:
// Go's sockets are non-blocking, so an empty one answers EAGAIN at once.
// It cannot fail for a proxy that holds the bytes; it catches one that
// forwarded them, since loopback delivers a write before it returns.
func nothingBuffered(t *testing.T, c net.Conn, why string) {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var rerr error
	if err := raw.Read(func(fd uintptr) bool {
		n, rerr = syscall.Read(int(fd), make([]byte, 1))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if n > 0 || rerr != syscall.EAGAIN {
		t.Fatalf("%s: a read without waiting returned %d bytes, %v; want none, EAGAIN", why, n, rerr)
	}
}

func TestTCPPassesBytesUnchangedBothWaysAndHalfCloses(t *testing.T) {
	tt := newTCPTarget(t)
	p := startTCP(t, tt.addr(), defaultConfig())
	client, server := pair(t, p, tt)

	echoed := make(chan error, 1)
	go func() {
		_, err := io.Copy(server, server)
		if err == nil {
			err = server.CloseWrite()
		}
		echoed <- err
	}()
	sent := randomBytes(1, 4<<20)
	wrote := make(chan error, 1)
	go func() {
		_, err := client.Write(sent)
		if err == nil {
			err = client.CloseWrite()
		}
		wrote <- err
	}()

	// ReadAll ends only if the client's half-close reached the target
	// and the target's came back.
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatalf("read the echo: %v", err)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("client write: %v", err)
	}
	if err := <-echoed; err != nil {
		t.Fatalf("target echo: %v", err)
	}
	if !bytes.Equal(got, sent) {
		t.Fatalf("echo of %d bytes came back as %d bytes, not the same", len(sent), len(got))
	}
}

func TestTCPDelayHoldsBytesAtLeastTheDelay(t *testing.T) {
	const delay, jitter = 60 * time.Millisecond, 20 * time.Millisecond
	tt := newTCPTarget(t)
	p := startTCP(t, tt.addr(), defaultConfig())
	p.Set(Faults{Delay: delay, Jitter: jitter, Seed: 1})
	client, server := pair(t, p, tt)

	for _, tc := range []struct {
		dir      Direction
		from, to net.Conn
	}{{Upstream, client, server}, {Downstream, server, client}} {
		start := time.Now()
		write(t, tc.from, []byte("x"))
		readFull(t, tc.to, 1)
		if elapsed := time.Since(start); elapsed < delay-jitter {
			t.Errorf("%v: a byte arrived after %v, before the least delay %v", tc.dir, elapsed, delay-jitter)
		}
	}
}

func TestTCPKeepsByteOrderUnderJitter(t *testing.T) {
	const n = 4000
	tt := newTCPTarget(t)
	p := startTCP(t, tt.addr(), defaultConfig())
	// Jitter as large as the delay: chunks read later often draw shorter
	// holds than the ones before them.
	p.Set(Faults{Delay: 2 * time.Millisecond, Jitter: 2 * time.Millisecond, Seed: 7})
	client, server := pair(t, p, tt)

	wrote := make(chan error, 1)
	go func() {
		// One write per counter, so that the proxy reads many chunks.
		var b [4]byte
		for i := range uint32(n) {
			binary.BigEndian.PutUint32(b[:], i)
			if _, err := client.Write(b[:]); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	got := readFull(t, server, 4*n)
	if err := <-wrote; err != nil {
		t.Fatalf("client write: %v", err)
	}
	for i := range uint32(n) {
		if v := binary.BigEndian.Uint32(got[4*i:]); v != i {
			t.Fatalf("counter %d arrived as %d: the bytes were reordered", i, v)
		}
	}
}

func TestTCPStallHoldsOneDirectionWhileTheOtherFlows(t *testing.T) {
	for _, stalled := range []Direction{Upstream, Downstream} {
		t.Run(stalled.String(), func(t *testing.T) {
			tt := newTCPTarget(t)
			tr, cfg := newTracer()
			p := startTCP(t, tt.addr(), cfg)
			client, server := pair(t, p, tt)
			stalledFrom, stalledTo, otherFrom, otherTo := net.Conn(client), net.Conn(server), net.Conn(server), net.Conn(client)
			if stalled == Downstream {
				stalledFrom, stalledTo, otherFrom, otherTo = otherFrom, otherTo, stalledFrom, stalledTo
			}

			// Traffic both ways first, so that each reading pump is most
			// likely back in its read when the stall begins, and reads
			// held: then the writing pump must hold it.
			exchange(t, client, server, "warm up")
			exchange(t, server, client, "warm up")

			p.Stall(stalled)
			held := randomBytes(2, 16<<10)
			write(t, stalledFrom, held)
			// A pump of the stalled direction has stopped: the reader
			// before reading held, or after, and then the writer holds it.
			tr.await(t, 1, traced{evHeld, stalled})

			other := randomBytes(3, 16<<10)
			write(t, otherFrom, other)
			if got := readFull(t, otherTo, len(other)); !bytes.Equal(got, other) {
				t.Fatal("the direction not stalled delivered other bytes than sent")
			}
			nothingBuffered(t, stalledTo, "the stalled direction delivered before Heal")

			p.Heal()
			if got := readFull(t, stalledTo, len(held)); !bytes.Equal(got, held) {
				t.Fatal("the stalled direction delivered other bytes than sent after Heal")
			}
		})
	}
}

func TestTCPPartitionHoldsTrafficAndNewConnectionsUntilHeal(t *testing.T) {
	tt := newTCPTarget(t)
	tr, cfg := newTracer()
	p := startTCP(t, tt.addr(), cfg)
	client1, server1 := pair(t, p, tt)
	exchange(t, client1, server1, "warm up")
	exchange(t, server1, client1, "warm up")

	p.Partition()
	up, down := []byte("client to target"), []byte("target to client")
	write(t, client1, up)
	write(t, server1, down)
	tr.await(t, 1, traced{evHeld, Upstream})
	tr.await(t, 1, traced{evHeld, Downstream})
	nothingBuffered(t, server1, "upstream delivered during the partition")
	nothingBuffered(t, client1, "downstream delivered during the partition")

	client2 := dialTCP(t, p.Addr())
	late := []byte("sent on a connection made during the partition")
	write(t, client2, late)
	tr.await(t, 1, traced{evHeldConn, Both})
	// The proxy reported the connection waiting before its dial, so the
	// target cannot have it yet.
	select {
	case <-tt.conns:
		t.Fatal("the proxy dialed the target during the partition")
	default:
	}

	p.Heal()
	if got := readFull(t, server1, len(up)); !bytes.Equal(got, up) {
		t.Fatalf("upstream after Heal = %q, want %q", got, up)
	}
	if got := readFull(t, client1, len(down)); !bytes.Equal(got, down) {
		t.Fatalf("downstream after Heal = %q, want %q", got, down)
	}
	server2 := tt.accept(t)
	if got := readFull(t, server2, len(late)); !bytes.Equal(got, late) {
		t.Fatalf("the held connection delivered %q, want %q", got, late)
	}
}

func TestTCPCutClosesBothSidesOfEveryConnection(t *testing.T) {
	tt := newTCPTarget(t)
	p := startTCP(t, tt.addr(), defaultConfig())
	client1, server1 := pair(t, p, tt)
	client2, server2 := pair(t, p, tt)
	write(t, client1, []byte("in flight")) // may or may not be forwarded

	p.Cut()
	readsToTheEnd(t, client1, "client 1")
	readsToTheEnd(t, server1, "target 1")
	readsToTheEnd(t, client2, "client 2")
	readsToTheEnd(t, server2, "target 2")

	// The proxy goes on accepting.
	client3, server3 := pair(t, p, tt)
	write(t, client3, []byte("after the cut"))
	if got := readFull(t, server3, len("after the cut")); string(got) != "after the cut" {
		t.Fatalf("after Cut the proxy delivered %q", got)
	}
}

func TestTCPDialFailureClosesTheClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := ln.Addr().String()
	ln.Close()
	p := startTCP(t, nobody, defaultConfig())
	readsToTheEnd(t, dialTCP(t, p.Addr()), "client")
}

func TestTCPCloseEndsHeldAndStalledConnectionsAndEveryGoroutine(t *testing.T) {
	tt := newTCPTarget(t)
	before := goleak.IgnoreCurrent()
	tr, cfg := newTracer()
	p, err := newTCP("", tt.addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	client1, _ := pair(t, p, tt)
	p.Stall(Upstream)
	write(t, client1, randomBytes(4, 64<<10))
	tr.await(t, 1, traced{evHeld, Upstream})
	p.Partition()
	client2 := dialTCP(t, p.Addr())
	tr.await(t, 1, traced{evHeldConn, Both})

	if err := p.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	readsToTheEnd(t, client1, "stalled client")
	readsToTheEnd(t, client2, "held client")
	goleak.VerifyNone(t, before)
}
