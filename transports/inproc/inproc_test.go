package inproc_test

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/rpcenv/rpcenv/conformance"
	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/inproc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var names atomic.Uint64

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Factory{
		NewTransport: func(testing.TB) core.Transport { return inproc.New() },
		ListenURI:    func(testing.TB) string { return fmt.Sprintf("inproc://env-%d", names.Add(1)) },
	})
}

func TestNamespacesDoNotSeeEachOther(t *testing.T) {
	a, b := inproc.New(), inproc.New()
	la, err := a.Listen("driver", core.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer la.Close()
	lb, err := b.Listen("driver", core.ConnOptions{})
	if err != nil {
		t.Fatalf("the same name in another namespace: %v", err)
	}
	defer lb.Close()
	if _, err := inproc.New().Dial(t.Context(), "driver", core.ConnOptions{}); err == nil {
		t.Fatal("a third namespace reached a listener of another one")
	}
}

func TestListenOnATakenNameNamesIt(t *testing.T) {
	ns := inproc.New()
	l, err := ns.Listen("driver", core.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = ns.Listen("driver", core.ConnOptions{})
	if err == nil || !strings.Contains(err.Error(), "inproc://driver") {
		t.Fatalf("second Listen: %v; want an error naming inproc://driver", err)
	}
	l.Close()
	l2, err := ns.Listen("driver", core.ConnOptions{})
	if err != nil {
		t.Fatalf("Listen after Close: %v", err)
	}
	l2.Close()
}

func TestFrameOverTheReadersLimitIsRefused(t *testing.T) {
	c, s := connPair(t, "small", core.ConnOptions{MaxFrameSize: 8})
	if err := c.WriteFrame(0, make([]byte, 9)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadFrame(); !errors.Is(err, core.ErrMessageTooLarge) {
		t.Fatalf("ReadFrame of 9 bytes with a limit of 8: %v, want ErrMessageTooLarge", err)
	}
}

func TestSeverBreaksBothEnds(t *testing.T) {
	ns := inproc.New()
	l, err := ns.Listen("x", core.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan core.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := ns.Dial(t.Context(), "x", core.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if n := ns.Sever(); n != 2 {
		t.Fatalf("Sever closed %d ends, want 2", n)
	}
	if _, err := c.ReadFrame(); err == nil {
		t.Error("the dialer's end still reads")
	}
	if _, err := s.ReadFrame(); err == nil {
		t.Error("the listener's end still reads")
	}
	if err := c.WriteFrame(0, []byte{1}); err == nil {
		t.Error("the dialer's end still writes")
	}
}

func TestBufferedCountsFramesNotYetRead(t *testing.T) {
	c, conn := connPair(t, "buffered", core.ConnOptions{})
	s := conn.(core.BufferedConn)
	if n := s.Buffered(); n != 0 {
		t.Fatalf("Buffered before any write: %d, want 0", n)
	}
	for range 2 {
		if err := c.WriteFrame(1, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Buffered(); n != 2 {
		t.Fatalf("Buffered after two writes: %d, want 2", n)
	}
	if _, err := s.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if n := s.Buffered(); n != 1 {
		t.Fatalf("Buffered after one read: %d, want 1", n)
	}
}

// connPair returns both ends of a connection to a listener named name
// (with listener options opts) in a new namespace, closed when the test
// ends.
func connPair(t *testing.T, name string, opts core.ConnOptions) (client, server core.Conn) {
	t.Helper()
	ns := inproc.New()
	l, err := ns.Listen(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan core.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	client, err = ns.Dial(t.Context(), name, core.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

func TestHandshakeFramesHaveTheirOwnSmallLimit(t *testing.T) {
	c, s := connPair(t, "hs", core.ConnOptions{MaxFrameSize: 1 << 20, HandshakeFrames: 2, HandshakeFrameSize: 16})
	for _, n := range []int{16, 17} {
		if err := c.WriteFrame(0, make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	if f, err := s.ReadFrame(); err != nil || len(f) != 16 {
		t.Fatalf("first ReadFrame: %d bytes, %v; want the 16-byte frame", len(f), err)
	}
	if _, err := s.ReadFrame(); !errors.Is(err, core.ErrMessageTooLarge) {
		t.Fatalf("second ReadFrame, of 17 bytes with a handshake limit of 16: %v; want ErrMessageTooLarge", err)
	}
}

func TestFramesAfterTheHandshakeHaveTheUsualLimit(t *testing.T) {
	c, s := connPair(t, "after", core.ConnOptions{MaxFrameSize: 1 << 20, HandshakeFrames: 1, HandshakeFrameSize: 16})
	for _, n := range []int{16, 1 << 10} {
		if err := c.WriteFrame(0, make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		if f, err := s.ReadFrame(); err != nil || len(f) != n {
			t.Fatalf("ReadFrame: %d bytes, %v; want %d", len(f), err, n)
		}
	}
}
