package quic_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/quic"
	"github.com/rpcenv/rpcenv/transports/tcp"
)

// Blob is a large message.
type Blob struct{ Data []byte }

func init() { core.RegisterMessage[Blob]("quictest.Blob") }

const (
	blobSize = 16 << 20
	holAsks  = 10
)

// signalingTransport wraps a transport: its conns close big (once) when
// a frame of more than 1 MiB is handed to WriteFrame, before passing it on.
type signalingTransport struct {
	core.Transport
	big  chan struct{}
	once *sync.Once
}

type signalingConn struct {
	core.Conn
	t *signalingTransport
}

func (s signalingTransport) Dial(ctx context.Context, addr string, opts core.ConnOptions) (core.Conn, error) {
	c, err := s.Transport.Dial(ctx, addr, opts)
	if err != nil {
		return nil, err
	}
	return signalingConn{c, &s}, nil
}

func (c signalingConn) WriteFrame(lane uint64, frame []byte) error {
	if len(frame) > 1<<20 {
		c.t.once.Do(func() { close(c.t.big) })
	}
	return c.Conn.WriteFrame(lane, frame)
}

// holOrder sends a 16 MiB Blob to endpoint A and, once its frame is in
// the client's transport, asks endpoint B of the
// same env holAsks times over the same connection, and says whether A had
// received the blob when the last ask returned, and how long each took.
func holOrder(t *testing.T, tr core.Transport, listen string) (blobFirst bool, asks, blob time.Duration) {
	t.Helper()
	server := startEnv(t, tr, core.Config{Name: "server", Listen: listen})
	var arrived atomic.Bool
	got := make(chan time.Time, 1)
	mustRegister(t, server, "a", &testEndpoint{Handle: func(c *core.Context, msg any) error {
		if _, ok := msg.(Blob); ok {
			arrived.Store(true)
			got <- time.Now()
		}
		return nil
	}})
	mustRegister(t, server, "b", echoEndpoint())
	sig := signalingTransport{Transport: tr, big: make(chan struct{}), once: &sync.Once{}}
	client := startEnv(t, sig, core.Config{Name: "client"})
	a := mustLookup(t, client, server.Address()+"/a")
	b := mustLookup(t, client, server.Address()+"/b")
	if _, err := askWithin(t, b, Blob{Data: []byte("warm")}); err != nil {
		t.Fatalf("first ask to b: %v", err)
	}

	start := time.Now()
	sent := make(chan error, 1)
	go func() { sent <- a.Send(Blob{Data: make([]byte, blobSize)}) }()
	awaitClosed(t, sig.big, "the blob's frame to reach the transport")
	for i := range holAsks {
		if _, err := askWithin(t, b, Blob{Data: []byte{byte(i)}}); err != nil {
			t.Fatalf("ask %d to b: %v", i, err)
		}
	}
	asks = time.Since(start)
	blobFirst = arrived.Load()
	if err := await(t, sent, "the Send of the blob"); err != nil {
		t.Fatalf("Send of the blob: %v", err)
	}
	blob = await(t, got, "the blob at a").Sub(start)
	return blobFirst, asks, blob
}

func TestAsksDoNotWaitBehindALargeMessage(t *testing.T) {
	blobFirst, asks, blob := holOrder(t, quic.New(quic.Options{Logger: discardLog}), "quic://127.0.0.1:0")
	t.Logf("QUIC: %d asks done after %v, the 16 MiB blob received after %v", holAsks, asks, blob)
	if blobFirst {
		t.Fatalf("the 16 MiB blob was received before the %d asks to another endpoint completed (%v): asks waited behind it", holAsks, asks)
	}
}

// TestAsksOverTCPWaitBehindALargeMessage documents the contrast: TCP has
// one ordered byte stream, so the asks queue behind the blob. No
// assertion: only the order is logged.
func TestAsksOverTCPWaitBehindALargeMessage(t *testing.T) {
	blobFirst, asks, blob := holOrder(t, tcp.New(tcp.Options{}), "tcp://127.0.0.1:0")
	t.Logf("TCP: %d asks done after %v, the 16 MiB blob received after %v; blob received before the asks completed: %v", holAsks, asks, blob, blobFirst)
}
