package core

import (
	"bytes"
	"errors"
	"testing"
)

// frameQueue is a Conn that reads the frames queued in it and records
// what is written to it.
type frameQueue struct {
	Conn
	in      [][]byte
	written [][]byte
}

func (q *frameQueue) ReadFrame() ([]byte, error) {
	if len(q.in) == 0 {
		return nil, errors.New("no more frames")
	}
	f := q.in[0]
	q.in = q.in[1:]
	return f, nil
}

func (q *frameQueue) WriteFrames(frames [][]byte) error {
	for _, f := range frames {
		q.written = append(q.written, append([]byte(nil), f...))
	}
	return nil
}

// sealedPair returns the dialer's and the listener's sealed ends over
// frameQueues, with keys from a fixed secret, nonces and ids.
func sealedPair(tb testing.TB) (dialer, listener *sealedConn, dq, lq *frameQueue) {
	tb.Helper()
	dl, ld, err := sealKeys([]byte("s3cret"), bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32), "dialer-id", "listener-id")
	if err != nil {
		tb.Fatal(err)
	}
	dq, lq = &frameQueue{}, &frameQueue{}
	d, err := newSealedConn(dq, dl, ld)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := newSealedConn(lq, ld, dl)
	if err != nil {
		tb.Fatal(err)
	}
	return d.(*sealedConn), l.(*sealedConn), dq, lq
}

// TestSealedFramesRoundTrip checks that frames sealed by one side open on
// the other, in order, and that the wire carries none of their bytes.
func TestSealedFramesRoundTrip(t *testing.T) {
	d, l, dq, lq := sealedPair(t)
	frames := [][]byte{[]byte("the first frame"), bytes.Repeat([]byte("x"), 70000), {0}}
	if err := d.WriteFrames(frames); err != nil {
		t.Fatal(err)
	}
	for i, w := range dq.written {
		if len(w) != len(frames[i])+sealOverhead || bytes.Contains(w, []byte("first frame")) {
			t.Fatalf("sealed frame %d: %d bytes (want %d), plain text inside: %v", i, len(w), len(frames[i])+sealOverhead, bytes.Contains(w, []byte("first frame")))
		}
	}
	lq.in = dq.written
	for i, want := range frames {
		got, err := l.ReadFrame()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("frame %d: %v, equal %v", i, err, bytes.Equal(got, want))
		}
	}
	// The listener's direction has keys of its own: the dialer's frames
	// do not open as the listener's.
	dq.in = [][]byte{append([]byte(nil), dq.written[0]...)}
	if _, err := d.ReadFrame(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("a frame reflected back to its sender: %v, want ErrProtocol", err)
	}
}

// TestSealedBatchesKeepTheirOrder writes small and large batches: the
// frames arrive in the order sealed, and open.
func TestSealedBatchesKeepTheirOrder(t *testing.T) {
	d, l, dq, lq := sealedPair(t)
	var want [][]byte
	for i := range 40 {
		n := 10
		if i%3 == 0 {
			n = 40 << 10
		}
		f := bytes.Repeat([]byte{byte(i)}, n)
		want = append(want, f)
		if err := d.WriteFrames([][]byte{f}); err != nil {
			t.Fatal(err)
		}
	}
	lq.in = dq.written
	for i, w := range want {
		got, err := l.ReadFrame()
		if err != nil || !bytes.Equal(got, w) {
			t.Fatalf("frame %d: %v, equal %v", i, err, bytes.Equal(got, w))
		}
	}
}

// TestEverySealedByteIsProtected flips each bit of a sealed frame in turn,
// one at a time: no altered frame opens.
func TestEverySealedByteIsProtected(t *testing.T) {
	d, _, dq, _ := sealedPair(t)
	if err := d.WriteFrames([][]byte{[]byte("a frame of a few bytes")}); err != nil {
		t.Fatal(err)
	}
	sealed := dq.written[0]
	for i := range sealed {
		for bit := range 8 {
			_, l, _, lq := sealedPair(t)
			f := append([]byte(nil), sealed...)
			f[i] ^= 1 << bit
			lq.in = [][]byte{f}
			if p, err := l.ReadFrame(); !errors.Is(err, ErrProtocol) {
				t.Fatalf("byte %d, bit %d flipped: %q, %v; want ErrProtocol", i, bit, p, err)
			}
		}
	}
}

// FuzzSealedFrameOpener feeds the opener arbitrary frames, after a valid
// one: none may panic, and anything but the next sealed frame fails with
// ErrProtocol.
func FuzzSealedFrameOpener(f *testing.F) {
	d, _, dq, _ := sealedPair(f)
	d.WriteFrames([][]byte{[]byte("first"), []byte("second")})
	f.Add(dq.written[0], dq.written[1])
	f.Add(dq.written[1], dq.written[0])
	f.Add([]byte{}, []byte{1, 2, 3})
	f.Add(dq.written[0][:sealOverhead], dq.written[1])
	f.Fuzz(func(t *testing.T, a, b []byte) {
		d, l, dq, lq := sealedPair(t)
		if err := d.WriteFrames([][]byte{[]byte("first"), []byte("second")}); err != nil {
			t.Fatal(err)
		}
		lq.in = [][]byte{append([]byte(nil), a...), append([]byte(nil), b...)}
		for i, want := range []string{"first", "second"} {
			got, err := l.ReadFrame()
			valid := bytes.Equal([][]byte{a, b}[i], dq.written[i])
			switch {
			case valid && (err != nil || string(got) != want):
				t.Fatalf("frame %d, the sealed one: %q, %v", i, got, err)
			case !valid && err == nil:
				t.Fatalf("frame %d, not the sealed one, opened: %q", i, got)
			case !valid && !errors.Is(err, ErrProtocol):
				t.Fatalf("frame %d: %v, want ErrProtocol", i, err)
			case err != nil:
				return // the connection would be closed
			}
		}
	})
}
