package framing

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"testing/iotest"

	"go.uber.org/goleak"

	"github.com/rpcenv/rpcenv/core"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wire is the bytes of frames, each after its length.
func wire(frames ...[]byte) []byte {
	var b []byte
	for _, f := range frames {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

func filled(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func TestReaderReturnsTheFramesThenTheRightError(t *testing.T) {
	big := filled(300<<10, 3) // past the read buffer and keepCap
	for _, tc := range []struct {
		name   string
		data   []byte
		size   int // read buffer; 0 means 64 KiB
		limit  int
		frames [][]byte
		err    error // nil: a clean io.EOF (checked unwrapped)
	}{
		{name: "nothing at all", data: nil},
		{name: "one byte frame", data: wire([]byte{9}), frames: [][]byte{{9}}},
		{name: "frames of many sizes", data: wire([]byte("a"), filled(1000, 1), filled(64<<10, 2), big, []byte("z")),
			frames: [][]byte{[]byte("a"), filled(1000, 1), filled(64<<10, 2), big, []byte("z")}},
		{name: "frames larger than a tiny read buffer", data: wire(filled(100, 1), filled(17, 2)), size: 16,
			frames: [][]byte{filled(100, 1), filled(17, 2)}},
		{name: "a frame at the limit", data: wire(filled(10, 1)), limit: 10, frames: [][]byte{filled(10, 1)}},
		{name: "a frame over the limit", data: wire(filled(8, 1), filled(11, 2)), limit: 10,
			frames: [][]byte{filled(8, 1)}, err: core.ErrMessageTooLarge},
		{name: "4 GiB announced with no limit, then the stream ends", data: []byte{0xff, 0xff, 0xff, 0xff, 1}, err: io.ErrUnexpectedEOF},
		{name: "an empty frame", data: wire([]byte("x"), nil), frames: [][]byte{[]byte("x")}, err: core.ErrProtocol},
		{name: "a torn header", data: []byte{0, 0}, err: io.ErrUnexpectedEOF},
		{name: "a torn body in the read buffer", data: wire([]byte("hello"))[:6], err: io.ErrUnexpectedEOF},
		{name: "a torn body past the read buffer", data: wire(big)[:200<<10], err: io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := tc.size
			if size == 0 {
				size = 64 << 10
			}
			for _, chopped := range []bool{false, true} {
				var src io.Reader = bytes.NewReader(tc.data)
				if chopped {
					src = iotest.HalfReader(src) // short reads
				}
				r := NewReader(src, size, tc.limit)
				for i, want := range tc.frames {
					got, err := r.ReadFrame()
					if err != nil || !bytes.Equal(got, want) {
						t.Fatalf("frame %d: %d bytes, %v; want %d bytes", i, len(got), err, len(want))
					}
				}
				_, err := r.ReadFrame()
				if tc.err == nil && err != io.EOF {
					t.Fatalf("after the frames: %v; want io.EOF unwrapped", err)
				}
				if tc.err != nil && !errors.Is(err, tc.err) {
					t.Fatalf("after the frames: %v; want an error wrapping %v", err, tc.err)
				}
			}
		})
	}
}

func TestReaderPassesTheUnderlyingErrorThrough(t *testing.T) {
	r := NewReader(iotest.ErrReader(net.ErrClosed), 64, 0)
	if _, err := r.ReadFrame(); err != net.ErrClosed {
		t.Fatalf("ReadFrame: %v; want the reader's own net.ErrClosed", err)
	}
}

func TestReaderErrorsSayWhatWasWrong(t *testing.T) {
	for _, tc := range []struct {
		data  []byte
		limit int
		want  string
	}{
		{[]byte{0, 1, 0, 0}, 100, "a frame announces 65536 bytes, over the limit of 100: message too large"},
		{[]byte{0, 0, 0, 0}, 0, "a frame of length 0: protocol violation"},
		{[]byte{0, 0, 0, 5, 1, 2}, 0, "the stream ends after 2 of a frame's 5 bytes: unexpected EOF"},
		{[]byte{0}, 0, "the stream ends inside a frame's length (1 of 4 bytes): unexpected EOF"},
	} {
		_, err := NewReader(bytes.NewReader(tc.data), 64, tc.limit).ReadFrame()
		if err == nil || err.Error() != tc.want {
			t.Errorf("ReadFrame of %x: %v; want %q", tc.data, err, tc.want)
		}
	}
}

// A frame over the limit is refused on its length: the body is not read
// (the source would fail if it were) and nothing is allocated for it.
func TestReaderRefusesAFrameOverTheLimitBeforeReadingItsBody(t *testing.T) {
	src := io.MultiReader(bytes.NewReader([]byte{0x7f, 0xff, 0xff, 0xff}), iotest.ErrReader(errors.New("the body was read")))
	r := NewReader(iotest.OneByteReader(src), 16, 1<<20)
	if _, err := r.ReadFrame(); !errors.Is(err, core.ErrMessageTooLarge) {
		t.Fatalf("ReadFrame: %v; want ErrMessageTooLarge", err)
	}
	if cap(r.buf) != 0 {
		t.Fatalf("%d bytes were allocated for the refused frame", cap(r.buf))
	}
}

// The frame buffer grows with the bytes that arrive, not with the length
// announced, and one large frame does not pin its memory.
func TestReaderBufferGrowsAsBytesArriveAndShrinksAfterALargeFrame(t *testing.T) {
	const announced = 1 << 30
	data := append(binary.BigEndian.AppendUint32(nil, announced), make([]byte, 100<<10)...)
	r := NewReader(bytes.NewReader(data), 64<<10, 0)
	if _, err := r.ReadFrame(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadFrame of a torn 1 GiB frame: %v", err)
	}
	if c := cap(r.buf); c > 256<<10 {
		t.Fatalf("the buffer grew to %d bytes for 100 KiB received", c)
	}

	r = NewReader(bytes.NewReader(wire(make([]byte, 1<<20), make([]byte, 100<<10), make([]byte, 10))), 64<<10, 0)
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if cap(r.buf) < 1<<20 {
		t.Fatalf("the buffer of a 1 MiB frame has %d bytes", cap(r.buf))
	}
	if _, err := r.ReadFrame(); err != nil { // 100 KiB: a new, smaller buffer
		t.Fatal(err)
	}
	if c := cap(r.buf); c > keepCap {
		t.Fatalf("after a 100 KiB frame the buffer still holds %d bytes", c)
	}
}

func TestReaderBufferedCountsBytesNotYetReturned(t *testing.T) {
	r := NewReader(bytes.NewReader(wire([]byte("ab"), []byte("cde"))), 64, 0)
	if n := r.Buffered(); n != 0 {
		t.Fatalf("Buffered before reading: %d", n)
	}
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if n := r.Buffered(); n != 7 {
		t.Fatalf("Buffered after the first frame: %d; want 7 (the second frame with its length)", n)
	}
}

// writeTargets are the kinds of writer a Writer meets: one that does
// writev (a TCP connection) and one that does not.
func writeTargets(t *testing.T) map[string]func() (io.Writer, func() []byte) {
	return map[string]func() (io.Writer, func() []byte){
		"bytes.Buffer": func() (io.Writer, func() []byte) {
			var b bytes.Buffer
			return &b, b.Bytes
		},
		"TCP": func() (io.Writer, func() []byte) {
			client, server := tcpPair(t)
			got := make(chan []byte, 1)
			go func() { // ends when client closes
				b, _ := io.ReadAll(server)
				got <- b
			}()
			return client, func() []byte {
				client.Close()
				return <-got
			}
		},
	}
}

func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func TestWriterWritesEachFrameAfterItsLength(t *testing.T) {
	batches := [][][]byte{
		{[]byte("a")},
		{filled(100, 1), filled(flushSize-4-100-4, 2), filled(3, 3)}, // the first write exactly full
		{filled(flushSize*2+5, 4), []byte("b"), filled(70<<10, 5)},
		{filled(1<<20+1, 6)},
	}
	var want []byte
	for _, b := range batches {
		want = append(want, wire(b...)...)
	}
	for name, target := range writeTargets(t) {
		t.Run(name, func(t *testing.T) {
			w, written := target()
			fw := NewWriter(w)
			if _, isTCP := w.(*net.TCPConn); fw.vectored != isTCP {
				t.Fatalf("vectored = %v for a %T", fw.vectored, w)
			}
			for _, b := range batches {
				if err := fw.WriteFrames(b); err != nil {
					t.Fatal(err)
				}
			}
			if got := written(); !bytes.Equal(got, want) {
				t.Fatalf("wrote %d bytes that differ from the %d expected", len(got), len(want))
			}
		})
	}
}

func TestWriterRefusesABatchWithAnEmptyFrameAndWritesNothing(t *testing.T) {
	for name, target := range writeTargets(t) {
		t.Run(name, func(t *testing.T) {
			w, written := target()
			err := NewWriter(w).WriteFrames([][]byte{[]byte("fine"), {}})
			if !errors.Is(err, core.ErrProtocol) {
				t.Fatalf("WriteFrames with an empty frame: %v; want ErrProtocol", err)
			}
			if got := written(); len(got) != 0 {
				t.Fatalf("%d bytes were written", len(got))
			}
		})
	}
}

// The Writer keeps no reference to the caller's frames once it returns.
func TestWriterKeepsNoFrameAfterItReturns(t *testing.T) {
	client, server := tcpPair(t)
	go io.Copy(io.Discard, server) // ends when the connections close
	w := NewWriter(client)
	if err := w.WriteFrames([][]byte{[]byte("one"), []byte("two")}); err != nil {
		t.Fatal(err)
	}
	for i, b := range w.vec[:cap(w.vec)] {
		if b != nil {
			t.Fatalf("slot %d of the writer's list still holds %q", i, b)
		}
	}
}

func TestWriterAllocatesNothingInSteadyState(t *testing.T) {
	client, server := tcpPair(t)
	go io.Copy(io.Discard, server) // ends when the connections close
	frames := [][]byte{filled(10, 1), filled(1000, 2), filled(70<<10, 3)}
	for name, w := range map[string]io.Writer{"writev": client, "gather": io.Discard} {
		fw := NewWriter(w)
		if n := testing.AllocsPerRun(100, func() {
			if err := fw.WriteFrames(frames); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per WriteFrames", name, n)
		}
	}
}

func TestReaderAllocatesNothingInSteadyState(t *testing.T) {
	frames := [][]byte{filled(10, 1), filled(1000, 2), filled(100<<10, 3)}
	data := bytes.Repeat(wire(frames...), 102)
	src := bytes.NewReader(data)
	r := NewReader(src, 64<<10, 0)
	for range frames { // the frame buffer grows once
		if _, err := r.ReadFrame(); err != nil {
			t.Fatal(err)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		for range frames {
			if _, err := r.ReadFrame(); err != nil {
				t.Fatal(err)
			}
		}
	}); n != 0 {
		t.Errorf("%v allocations per three frames", n)
	}
}
