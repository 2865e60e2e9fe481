package inproc_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/rpcenv/rpcenv/conformance"
	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/inproc"
	"github.com/rpcenv/rpcenv/transports/internal/conntest"
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

var factory = conntest.Factory{
	NewTransport: func(testing.TB) core.Transport { return inproc.New() },
	Addr:         "x",
}

func TestConn(t *testing.T) { conntest.Run(t, factory) }

func TestSeverBreaksBothEndsWithoutEOF(t *testing.T) {
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
	defer c.Close()
	s := <-accepted
	defer s.Close()
	if err := s.WriteFrames([][]byte{[]byte("lost")}); err != nil {
		t.Fatal(err)
	}
	if n := ns.Sever(); n != 2 {
		t.Fatalf("Sever closed %d ends, want 2", n)
	}
	if n := ns.Sever(); n != 0 {
		t.Fatalf("a second Sever closed %d ends, want 0", n)
	}
	for name, end := range map[string]core.Conn{"dialer": c, "listener": s} {
		if f, err := end.ReadFrame(); err == nil || errors.Is(err, io.EOF) {
			t.Errorf("the %s's end reads %q, %v after Sever; want an error other than EOF", name, f, err)
		}
		if err := end.WriteFrames([][]byte{{1}}); err == nil {
			t.Errorf("the %s's end still writes", name)
		}
	}
	c.Close() // after Sever, Close is the env's as usual
	if _, err := c.ReadFrame(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrame after Sever and Close: %v; want net.ErrClosed", err)
	}
}

// A writer waiting for room is released by Sever or by Close of either
// end.
func TestABlockedWriterIsReleasedBySeverOrCloseOfEitherEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(ns *inproc.Transport, writer, reader core.Conn)
	}{
		{"the writer's Close", func(_ *inproc.Transport, w, _ core.Conn) { w.Close() }},
		{"the reader's Close", func(_ *inproc.Transport, _, r core.Conn) { r.Close() }},
		{"Sever", func(ns *inproc.Transport, _, _ core.Conn) { ns.Sever() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := inproc.New()
			w, r := pair(t, ns)
			frame := make([]byte, 64<<10)
			batch := [][]byte{frame, frame, frame, frame, frame, frame, frame, frame} // 512 KiB: more than a connection holds
			wrote := conntest.Go(func() error { return w.WriteFrames(batch) })
			if _, err := r.ReadFrame(); err != nil { // the writer is under way, and will have to wait
				t.Fatal(err)
			}
			tc.end(ns, w, r)
			if err := conntest.Await(t, wrote, "the blocked writer"); err == nil {
				t.Fatal("WriteFrames of 512 KiB to a reader that took 64 KiB succeeded")
			}
		})
	}
}

// WriteFrames copies: the caller may reuse its frames at once.
func TestWriteFramesCopiesTheFrames(t *testing.T) {
	c, s := conntest.Pair(t, factory, 0)
	frame := []byte("before")
	if err := c.WriteFrames([][]byte{frame}); err != nil {
		t.Fatal(err)
	}
	copy(frame, "after!")
	if f, err := s.ReadFrame(); err != nil || string(f) != "before" {
		t.Fatalf("ReadFrame = %q, %v; want the bytes as they were at WriteFrames", f, err)
	}
}

func TestBufferedCountsFramesNotYetRead(t *testing.T) {
	c, conn := conntest.Pair(t, factory, 0)
	s := conn.(core.BufferedConn)
	if n := s.Buffered(); n != 0 {
		t.Fatalf("Buffered before any write: %d, want 0", n)
	}
	if err := c.WriteFrames([][]byte{[]byte("x"), []byte("y")}); err != nil {
		t.Fatal(err)
	}
	if n := s.Buffered(); n != 2 {
		t.Fatalf("Buffered after two frames: %d, want 2", n)
	}
	if _, err := s.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if n := s.Buffered(); n != 1 {
		t.Fatalf("Buffered after one read: %d, want 1", n)
	}
}

func TestAnEmptyFrameIsRefused(t *testing.T) {
	c, _ := conntest.Pair(t, factory, 0)
	if err := c.WriteFrames([][]byte{[]byte("x"), nil}); !errors.Is(err, core.ErrProtocol) {
		t.Fatalf("WriteFrames with an empty frame: %v; want ErrProtocol", err)
	}
}

func TestDialerAndListenerLabelTheirPeers(t *testing.T) {
	ns := inproc.New()
	c, s := pair(t, ns)
	if got := c.RemoteAddr(); got != "x" {
		t.Errorf("the dialer's RemoteAddr = %q, want the listener's name", got)
	}
	if got := s.RemoteAddr(); !strings.HasPrefix(got, "~client-") {
		t.Errorf("the listener's RemoteAddr = %q, want a ~client- label", got)
	}
}

// pair returns both ends of a connection to a listener named "x" in ns,
// closed when the test ends.
func pair(t *testing.T, ns *inproc.Transport) (client, server core.Conn) {
	t.Helper()
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
	client, err = ns.Dial(t.Context(), "x", core.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server = <-accepted
	t.Cleanup(func() { server.Close() })
	return client, server
}
