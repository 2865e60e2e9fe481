// Package conntest checks a transport's connections against the core.Conn
// contract directly, below any env: what the frames look like on arrival,
// how Close ends each side, and what a blocked writer does. Each
// transport's tests call [Run]; the envs' view of a transport is checked
// by package conformance.
package conntest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
)

// Wait bounds every wait: a test that reaches it has failed (hung). It is
// no performance target.
const Wait = 20 * time.Second

// Factory makes what Run needs: a fresh transport, and the address to
// listen on with it ("127.0.0.1:0", "name").
type Factory struct {
	NewTransport func(t testing.TB) core.Transport
	Addr         string
}

// Run runs every case as a subtest.
func Run(t *testing.T, f Factory) {
	for _, c := range []struct {
		name string
		run  func(*testing.T, Factory)
	}{
		{"FramesCrossWholeAndByteExactBothWays", framesCross},
		{"APeerGetsEOFAfterTheFramesWrittenBeforeClose", eofAfterFrames},
		{"ReadFrameAfterCloseFailsWithErrClosedEvenWithFramesBuffered", readAfterClose},
		{"ABlockedReadFrameReturnsErrClosedOnClose", blockedRead},
		{"ABlockedWriteFramesReturnsAnErrorOnClose", blockedWrite},
		{"WriteFramesAfterCloseFailsAndCloseIsIdempotent", writeAfterClose},
		{"AFrameOverMaxFrameSizeFailsReadFrameWithErrMessageTooLarge", tooLarge},
		{"TwoClientConnectionsHaveDistinctRemoteAddrs", distinctRemotes},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, f) })
	}
}

// Pair returns both ends of one connection of a fresh transport: the
// server end reads frames of at most limit bytes (0: no limit). Both ends
// and the listener are closed when the test ends.
func Pair(t testing.TB, f Factory, limit int) (client, server core.Conn) {
	t.Helper()
	tr, l := listen(t, f, limit)
	c, s := dialAccept(t, tr, l)
	return c, s
}

func listen(t testing.TB, f Factory, limit int) (core.Transport, core.Listener) {
	t.Helper()
	tr := f.NewTransport(t)
	l, err := tr.Listen(f.Addr, core.ConnOptions{MaxFrameSize: limit})
	if err != nil {
		t.Fatalf("Listen(%q): %v", f.Addr, err)
	}
	t.Cleanup(func() { l.Close() })
	return tr, l
}

// dialAccept dials l and accepts the connection; both ends are closed
// when the test ends.
func dialAccept(t testing.TB, tr core.Transport, l core.Listener) (client, server core.Conn) {
	t.Helper()
	type accepted struct {
		c   core.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() { // ends with Accept, at the latest when the listener closes
		c, err := l.Accept()
		ch <- accepted{c, err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	client, err := tr.Dial(ctx, l.Addr(), core.ConnOptions{})
	if err != nil {
		l.Close()
		if a := <-ch; a.c != nil {
			a.c.Close()
		}
		t.Fatalf("Dial(%q): %v", l.Addr(), err)
	}
	t.Cleanup(func() { client.Close() })
	a := Await(t, ch, "Accept")
	if a.err != nil {
		t.Fatalf("Accept: %v", a.err)
	}
	t.Cleanup(func() { a.c.Close() })
	return client, a.c
}

// Await waits for a value on ch, failing the test if none comes.
func Await[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(Wait):
		t.Fatalf("waited %v for %s", Wait, what)
		panic("unreachable")
	}
}

// Go runs f in a goroutine and returns a channel that gets its result.
func Go(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// pattern is n bytes that tell frames apart and show a shifted byte.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed ^ byte(i) ^ byte(i>>8) ^ byte(i>>16)
	}
	return b
}

// batches is what framesCross writes: frames of many sizes, alone and
// together, 1 MiB + 1 among them (a transport must not split frames).
func batches(seed byte) [][][]byte {
	var out [][][]byte
	for i, sizes := range [][]int{{1}, {2, 3, 100}, {64 << 10}, {1<<20 + 1}, {7, 1<<20 + 1, 9, 65 << 10, 1}, {100 << 10, 100 << 10}} {
		var b [][]byte
		for j, n := range sizes {
			b = append(b, pattern(n, seed+byte(10*i+j)))
		}
		out = append(out, b)
	}
	return out
}

// exchange writes batches on w in a goroutine and reads them on r,
// checking each frame and the writer's result.
func exchange(t *testing.T, w, r core.Conn, seed byte) {
	t.Helper()
	bs := batches(seed)
	wrote := Go(func() error {
		for _, b := range bs {
			if err := w.WriteFrames(b); err != nil {
				return err
			}
		}
		return nil
	})
	for i, b := range bs {
		for j, want := range b {
			got, err := r.ReadFrame()
			if err != nil {
				t.Errorf("batch %d, frame %d: ReadFrame: %v", i, j, err)
				w.Close()
				<-wrote
				return
			}
			if !bytes.Equal(got, want) {
				t.Errorf("batch %d, frame %d: %d bytes that differ from the %d written", i, j, len(got), len(want))
			}
		}
	}
	select { // not Await: exchange may run outside the test's goroutine
	case err := <-wrote:
		if err != nil {
			t.Errorf("WriteFrames: %v", err)
		}
	case <-time.After(Wait):
		t.Errorf("waited %v for the writer", Wait)
	}
}

func framesCross(t *testing.T, f Factory) {
	client, server := Pair(t, f, 0)
	done := Go(func() error { exchange(t, server, client, 100); return nil })
	exchange(t, client, server, 1)
	Await(t, done, "the other direction")
}

func eofAfterFrames(t *testing.T, f Factory) {
	client, server := Pair(t, f, 0)
	const n = 100
	for i := range n {
		if err := client.WriteFrames([][]byte{pattern(1+i*50, byte(i))}); err != nil {
			t.Fatalf("WriteFrames %d: %v", i, err)
		}
	}
	closed := Go(client.Close)
	for i := range n {
		got, err := server.ReadFrame()
		if err != nil || !bytes.Equal(got, pattern(1+i*50, byte(i))) {
			t.Fatalf("frame %d: %d bytes, %v; want the frame written before Close", i, len(got), err)
		}
	}
	if _, err := server.ReadFrame(); err != io.EOF {
		t.Fatalf("ReadFrame after the peer's frames and Close: %v; want io.EOF, unwrapped", err)
	}
	Await(t, closed, "Close")
}

func readAfterClose(t *testing.T, f Factory) {
	client, server := Pair(t, f, 0)
	if err := client.WriteFrames([][]byte{[]byte("one"), []byte("two"), []byte("three")}); err != nil {
		t.Fatal(err)
	}
	if got, err := server.ReadFrame(); err != nil || string(got) != "one" {
		t.Fatalf("ReadFrame = %q, %v", got, err)
	}
	if err := server.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range 2 {
		if got, err := server.ReadFrame(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadFrame after Close = %q, %v; want no frame and an error wrapping net.ErrClosed", got, err)
		}
	}
}

func blockedRead(t *testing.T, f Factory) {
	_, server := Pair(t, f, 0)
	read := Go(func() error { _, err := server.ReadFrame(); return err })
	closed := Go(server.Close)
	if err := Await(t, read, "ReadFrame to return after Close"); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadFrame ended by Close: %v; want an error wrapping net.ErrClosed", err)
	}
	Await(t, closed, "Close")
}

// blockedWrite has the client write 48 MiB, more than any transport
// buffers, to a server that reads the first frame and no more. Once that
// frame has arrived, WriteFrames is under way and cannot finish: Close
// must end it with an error, and return although the peer does not read.
func blockedWrite(t *testing.T, f Factory) {
	client, server := Pair(t, f, 0)
	frame := pattern(1<<20, 5)
	batch := make([][]byte, 48)
	for i := range batch {
		batch[i] = frame
	}
	wrote := Go(func() error { return client.WriteFrames(batch) })
	if got, err := server.ReadFrame(); err != nil || !bytes.Equal(got, frame) {
		t.Fatalf("the first frame: %d bytes, %v", len(got), err)
	}
	closed := Go(client.Close)
	if err := Await(t, wrote, "WriteFrames to return after Close"); err == nil {
		t.Fatal("WriteFrames of 48 MiB to a peer that reads 1 MiB returned no error after Close")
	}
	Await(t, closed, "Close, with a peer that does not read")
	if err := client.WriteFrames([][]byte{[]byte("late")}); err == nil {
		t.Fatal("WriteFrames after Close succeeded")
	}
}

// writeAfterClose also checks that a peer already reading sees io.EOF
// (a QUIC peer that reads only after the 250 ms Close gives it may see
// an error instead).
func writeAfterClose(t *testing.T, f Factory) {
	client, server := Pair(t, f, 0)
	read := Go(func() error { _, err := server.ReadFrame(); return err })
	for range 2 {
		if err := client.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	for range 2 {
		if err := client.WriteFrames([][]byte{[]byte("late")}); err == nil {
			t.Fatal("WriteFrames after Close succeeded")
		}
	}
	if err := Await(t, read, "the peer's ReadFrame"); err != io.EOF {
		t.Fatalf("the peer's ReadFrame after a Close with nothing written: %v; want io.EOF", err)
	}
}

func tooLarge(t *testing.T, f Factory) {
	client, server := Pair(t, f, 1000)
	if err := client.WriteFrames([][]byte{pattern(1000, 1), pattern(1001, 2)}); err != nil {
		t.Fatalf("WriteFrames: %v", err)
	}
	if got, err := server.ReadFrame(); err != nil || len(got) != 1000 {
		t.Fatalf("ReadFrame of a frame at the limit: %d bytes, %v", len(got), err)
	}
	if got, err := server.ReadFrame(); !errors.Is(err, core.ErrMessageTooLarge) {
		t.Fatalf("ReadFrame of 1001 bytes with a limit of 1000 = %d bytes, %v; want ErrMessageTooLarge", len(got), err)
	}
}

func distinctRemotes(t *testing.T, f Factory) {
	tr, l := listen(t, f, 0)
	_, s1 := dialAccept(t, tr, l)
	_, s2 := dialAccept(t, tr, l)
	if a, b := s1.RemoteAddr(), s2.RemoteAddr(); a == b || a == "" {
		t.Fatalf("two accepted connections have the RemoteAddrs %q and %q; want two distinct labels", a, b)
	}
}
