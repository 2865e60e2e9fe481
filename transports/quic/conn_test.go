package quic_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/quic"
)

// connPair returns both ends of one QUIC connection, made by the
// transport itself; the server end reads frames of at most limit bytes.
func connPair(t *testing.T, limit int) (client, server core.Conn) {
	return connPairOpts(t, core.ConnOptions{MaxFrameSize: limit})
}

// connPairOpts is connPair with the server end's options.
func connPairOpts(t *testing.T, opts core.ConnOptions) (client, server core.Conn) {
	t.Helper()
	tr := quic.New(quic.Options{Logger: discardLog})
	l, err := tr.Listen("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan core.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	client, err = tr.Dial(ctx, l.Addr(), core.ConnOptions{MaxFrameSize: opts.MaxFrameSize})
	if err != nil {
		t.Fatal(err)
	}
	server = await(t, accepted, "the accepted connection")
	if server == nil {
		t.Fatal("Accept failed")
	}
	t.Cleanup(func() {
		client.Close()
		server.Close()
		l.Close()
	})
	return client, server
}

func numbered(lane uint64, i int) []byte {
	b := binary.BigEndian.AppendUint64(nil, lane)
	return binary.BigEndian.AppendUint32(b, uint32(i))
}

// Close must not lose what was written before it, although QUIC's
// CONNECTION_CLOSE discards unsent stream data: the goodbye stream makes
// the peer read everything, then see io.EOF.
func TestFramesWrittenBeforeCloseArriveThenEOF(t *testing.T) {
	client, server := connPair(t, 1<<20)
	const n = 200
	for i := range n {
		for _, lane := range []uint64{0, 7, 9} {
			if err := client.WriteFrame(lane, numbered(lane, i)); err != nil {
				t.Fatalf("WriteFrame(%d, #%d): %v", lane, i, err)
			}
		}
	}
	closed := make(chan struct{})
	go func() { client.Close(); close(closed) }()
	next := map[uint64]int{}
	got := 0
	for {
		f, err := server.ReadFrame()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("ReadFrame after %d frames: %v; want io.EOF", got, err)
			}
			break
		}
		lane, i := binary.BigEndian.Uint64(f), int(binary.BigEndian.Uint32(f[8:]))
		if lane != 0 && i != next[lane] {
			t.Fatalf("lane %d: frame #%d arrived where #%d was due", lane, i, next[lane])
		}
		next[lane]++
		got++
	}
	if got != 3*n {
		t.Fatalf("%d frames arrived before EOF, want %d", got, 3*n)
	}
	awaitClosed(t, closed, "the client's Close")
}

func TestAFrameOverTheLimitFailsReadFrameWithErrMessageTooLarge(t *testing.T) {
	client, server := connPair(t, 1000)
	for _, size := range []int{10, 10, 2000} { // past the first stream too
		if err := client.WriteFrame(0, make([]byte, size)); err != nil {
			t.Fatalf("WriteFrame of %d bytes: %v", size, err)
		}
	}
	var err error
	for range 3 {
		if _, err = server.ReadFrame(); err != nil {
			break
		}
	}
	if !errors.Is(err, core.ErrMessageTooLarge) {
		t.Fatalf("ReadFrame of a 2000-byte frame with a 1000-byte limit: %v; want ErrMessageTooLarge", err)
	}
}

func TestReadFrameFailsAfterClose(t *testing.T) {
	_, server := connPair(t, 1<<20)
	errs := make(chan error, 1)
	go func() {
		_, err := server.ReadFrame()
		errs <- err
	}()
	server.Close()
	if err := await(t, errs, "ReadFrame to return after Close"); err == nil {
		t.Fatal("ReadFrame returned a frame after Close")
	}
	if err := server.WriteFrame(0, []byte("late")); err == nil {
		t.Fatal("WriteFrame after Close succeeded")
	}
}

func TestHandshakeFramesHaveTheirOwnSmallLimit(t *testing.T) {
	client, server := connPairOpts(t, core.ConnOptions{MaxFrameSize: 1 << 20, HandshakeFrames: 1, HandshakeFrameSize: 100})
	if err := client.WriteFrame(0, make([]byte, 101)); err != nil {
		t.Fatal(err)
	}
	if _, err := server.ReadFrame(); !errors.Is(err, core.ErrMessageTooLarge) {
		t.Fatalf("ReadFrame of a 101-byte first frame with a handshake limit of 100: %v; want ErrMessageTooLarge", err)
	}
}

func TestFramesAfterTheHandshakeHaveTheUsualLimit(t *testing.T) {
	client, server := connPairOpts(t, core.ConnOptions{MaxFrameSize: 1 << 20, HandshakeFrames: 1, HandshakeFrameSize: 100})
	for _, n := range []int{100, 1000, 1000} { // the second on the first stream, the third on its own
		if err := client.WriteFrame(0, make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := server.ReadFrame(); err != nil {
			t.Fatalf("ReadFrame: %v", err)
		}
	}
}
