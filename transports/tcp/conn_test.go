package tcp_test

import (
	"errors"
	"net"
	"testing"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/internal/conntest"
	"github.com/rpcenv/rpcenv/transports/tcp"
)

func TestConn(t *testing.T) {
	conntest.Run(t, conntest.Factory{
		NewTransport: func(testing.TB) core.Transport { return tcp.New(tcp.Options{}) },
		Addr:         "127.0.0.1:0",
	})
}

func TestConnOverMutualTLS(t *testing.T) {
	cfg := testCluster(t, "node")["node"]
	conntest.Run(t, conntest.Factory{
		NewTransport: func(testing.TB) core.Transport { return tcp.New(tcp.Options{TLS: cfg}) },
		Addr:         "127.0.0.1:0",
	})
}

// rawPeer dials a listener of a fresh transport whose connections read
// frames of at most limit bytes, writes b, and returns the accepted end.
func rawPeer(t *testing.T, limit int, b []byte) (core.Conn, net.Conn) {
	t.Helper()
	l, err := tcp.New(tcp.Options{}).Listen("127.0.0.1:0", core.ConnOptions{MaxFrameSize: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	raw, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	if _, err := raw.Write(b); err != nil {
		t.Fatal(err)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, raw
}

// The peer sends a length over the limit and nothing more, and keeps the
// connection open: ReadFrame fails at once instead of waiting for a body.
func TestAFrameOverTheLimitIsRefusedBeforeItsBodyArrives(t *testing.T) {
	c, _ := rawPeer(t, 1<<10, []byte{0, 0x10, 0, 0})
	if _, err := c.ReadFrame(); !errors.Is(err, core.ErrMessageTooLarge) {
		t.Fatalf("ReadFrame: %v; want ErrMessageTooLarge", err)
	}
}

func TestAnEmptyFrameIsAProtocolError(t *testing.T) {
	c, _ := rawPeer(t, 0, []byte{0, 0, 0, 1, 'x', 0, 0, 0, 0})
	if f, err := c.ReadFrame(); err != nil || string(f) != "x" {
		t.Fatalf("ReadFrame = %q, %v; want the frame before the empty one", f, err)
	}
	if _, err := c.ReadFrame(); !errors.Is(err, core.ErrProtocol) {
		t.Fatalf("ReadFrame of an empty frame: %v; want ErrProtocol", err)
	}
}

func TestBufferedCountsBytesReceivedAndNotYetRead(t *testing.T) {
	c, _ := rawPeer(t, 0, []byte{0, 0, 0, 1, 'a', 0, 0, 0, 2, 'b', 'c'})
	if f, err := c.ReadFrame(); err != nil || string(f) != "a" {
		t.Fatalf("ReadFrame = %q, %v", f, err)
	}
	// Both frames came in one segment, read by one system call.
	if n := c.(core.BufferedConn).Buffered(); n != 6 {
		t.Skipf("Buffered after the first frame: %d; the kernel split the segment", n)
	}
}
