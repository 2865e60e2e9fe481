package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
)

// The Conn cases check the core.Conn, Listener and Transport contract
// directly on the transport under test, with no env and no wrapper: what
// the env relies on but cannot always see (its own frames never exceed
// its limit, and it closes a connection after any error).

// envFrameLimit is the frame limit every env puts in ConnOptions
// (docs/PROTOCOL.md, "Limits").
const envFrameLimit = 65600

// rawAddr returns the address part of a fresh Factory.ListenURI, the
// form Transport.Listen takes.
func rawAddr(t *testing.T, f Factory) string {
	t.Helper()
	uri := f.ListenURI(t)
	_, rest, ok := strings.Cut(uri, "://")
	if !ok {
		t.Fatalf("Factory.ListenURI returned %q, want scheme://address", uri)
	}
	addr, _, _ := strings.Cut(rest, "/")
	return addr
}

// rawListen listens on a fresh address of the transport under test; the
// listener is closed when the case ends.
func rawListen(t *testing.T, tr core.Transport, f Factory, opts core.ConnOptions) core.Listener {
	t.Helper()
	l, err := tr.Listen(rawAddr(t, f), opts)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { within(t, "Listener.Close", l.Close) })
	return l
}

type accepted struct {
	c   core.Conn
	err error
}

// within runs f (a Close) in another goroutine and returns its error,
// failing the case if it does not return within waitLimit.
func within(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	return recv(t, done, what+" to return")
}

// acceptOne accepts one connection. It ends when one comes or the
// listener closes; it is a named function so that waitParked finds it
// in goroutine stacks.
func acceptOne(l core.Listener, acc chan<- accepted) {
	c, err := l.Accept()
	acc <- accepted{c, err}
}

// rawPair dials l and returns both ends of the connection; they are
// closed when the case ends.
func rawPair(t *testing.T, tr core.Transport, l core.Listener, opts core.ConnOptions) (dialer, acceptor core.Conn) {
	t.Helper()
	acc := make(chan accepted, 1)
	go acceptOne(l, acc)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	d, err := tr.Dial(ctx, l.Addr(), opts)
	if err != nil {
		t.Fatalf("Dial(%q): %v", l.Addr(), err)
	}
	t.Cleanup(func() { within(t, "the dialer's Close", d.Close) })
	a := recv(t, acc, "Accept of a dialed connection")
	if a.err != nil {
		t.Fatalf("Accept: %v", a.err)
	}
	t.Cleanup(func() { within(t, "the acceptor's Close", a.c.Close) })
	return d, a.c
}

// read is one ReadFrame's result, the frame copied.
type read struct {
	frame []byte
	err   error
}

// reader reads from c in a goroutine until an error or n frames, sending
// each result (copied: the transport owns its slice) on the channel it
// returns. The goroutine ends when c's ReadFrame returns an error, which
// it must once c is closed.
func reader(c core.Conn, n int) <-chan read {
	ch := make(chan read, n+1)
	go readFrames(c, n, ch)
	return ch
}

// readFrames is reader's goroutine, a named function so that waitParked
// finds it in goroutine stacks.
func readFrames(c core.Conn, n int, ch chan<- read) {
	for range n {
		f, err := c.ReadFrame()
		ch <- read{append([]byte(nil), f...), err}
		if err != nil {
			return
		}
	}
}

// frameAt is frame number i of a stream: its first 4 bytes say i, the
// rest is noise of its size and i.
func frameAt(i, size int) []byte {
	f := noise(size, uint64(i))
	if size >= 4 {
		f[0], f[1], f[2], f[3] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	}
	return f
}

// writeAll writes frames in batches of the given sizes, scribbling over
// each frame once WriteFrames returns (it is the caller's again), and
// sends the first error, or nil, on the channel it returns.
func writeAll(c core.Conn, frames [][]byte, batches []int) <-chan error {
	done := make(chan error, 1)
	go func() {
		for i, k := 0, 0; i < len(frames); k++ {
			n := min(batches[k%len(batches)], len(frames)-i)
			batch := make([][]byte, n)
			for j := range batch {
				batch[j] = append([]byte(nil), frames[i+j]...)
			}
			if err := c.WriteFrames(batch); err != nil {
				done <- fmt.Errorf("WriteFrames of frames %d to %d: %w", i, i+n-1, err)
				return
			}
			for _, f := range batch {
				for j := range f {
					f[j] = 0xee
				}
			}
			i += n
		}
		done <- nil
	}()
	return done
}

// expectFrames reads want from ch (a reader's) and reports the first
// frame lost, repeated, moved or damaged.
func expectFrames(t *testing.T, dir string, ch <-chan read, want [][]byte) {
	t.Helper()
	for i, w := range want {
		r := recv(t, ch, fmt.Sprintf("%s: frame %d of %d (%d bytes)", dir, i, len(want), len(w)))
		if r.err != nil {
			t.Fatalf("%s: ReadFrame of frame %d of %d: %v", dir, i, len(want), r.err)
		}
		if d := damage(r.frame, w); d != "" {
			if len(r.frame) >= 4 && len(w) >= 4 && !bytes.Equal(r.frame[:4], w[:4]) {
				t.Fatalf("%s: frame %d of %d arrived as frame %d: lost, repeated or out of order (%s)", dir, i, len(want), int(r.frame[0])<<24|int(r.frame[1])<<16|int(r.frame[2])<<8|int(r.frame[3]), d)
			}
			t.Fatalf("%s: frame %d of %d, of %d bytes, arrived damaged: %s", dir, i, len(want), len(w), d)
		}
	}
}

var connCases = []testCase{
	// Frames of every size up to the env's limit cross both ways at once,
	// alone and in batches, whole and byte-exact, although the writer
	// reuses its buffers as soon as WriteFrames returns.
	{"FramesCrossWholeAndByteExactBothWays", func(t *testing.T, h *harness) {
		tr := h.f.NewTransport(t)
		opts := core.ConnOptions{MaxFrameSize: envFrameLimit}
		d, a := rawPair(t, tr, rawListen(t, tr, h.f, opts), opts)
		sizes := []int{1, 2, 3, 4, 5, 100, 4095, 4096, 4097, 65535, 65536, 65537, envFrameLimit - 1, envFrameLimit}
		var frames [][]byte
		rev := slices.Clone(sizes)
		slices.Reverse(rev)
		for _, n := range append(sizes, rev...) {
			frames = append(frames, frameAt(len(frames), n))
		}
		batches := []int{1, 1, 2, 1, 5, 3, len(frames)}
		fromD, fromA := reader(a, len(frames)), reader(d, len(frames))
		wd, wa := writeAll(d, frames, batches), writeAll(a, frames, batches)
		expectFrames(t, "dialer to acceptor", fromD, frames)
		expectFrames(t, "acceptor to dialer", fromA, frames)
		for _, w := range []<-chan error{wd, wa} {
			if err := recv(t, w, "the writer"); err != nil {
				t.Fatal(err)
			}
		}
	}},

	// Thousands of frames of mixed sizes in batches of mixed lengths, both
	// ways at once: none is lost, repeated, moved or changed.
	{"ThousandsOfFramesArriveInOrderExactlyOnceBothWays", func(t *testing.T, h *harness) {
		tr := h.f.NewTransport(t)
		opts := core.ConnOptions{MaxFrameSize: envFrameLimit}
		d, a := rawPair(t, tr, rawListen(t, tr, h.f, opts), opts)
		const n = 4000
		rng := rand.New(rand.NewPCG(1, 2))
		frames := make([][]byte, n)
		for i := range frames {
			size := 4 + rng.IntN(600)
			if i%500 == 499 {
				size = 20000 + rng.IntN(envFrameLimit-20000)
			}
			frames[i] = frameAt(i, size)
		}
		var batches []int
		for range 64 {
			batches = append(batches, 1+rng.IntN(40))
		}
		fromD, fromA := reader(a, n), reader(d, n)
		wd, wa := writeAll(d, frames, batches), writeAll(a, frames, batches)
		expectFrames(t, "dialer to acceptor", fromD, frames)
		expectFrames(t, "acceptor to dialer", fromA, frames)
		for _, w := range []<-chan error{wd, wa} {
			if err := recv(t, w, "the writer"); err != nil {
				t.Fatal(err)
			}
		}
	}},

	// A peer's Close ends this side's ReadFrame with io.EOF itself (not
	// wrapped), after every frame written before the Close, whichever end
	// closes; and no frame comes after it.
	{"APeersCloseGivesEveryFrameThenIOEOF", func(t *testing.T, h *harness) {
		tr := h.f.NewTransport(t)
		opts := core.ConnOptions{MaxFrameSize: envFrameLimit}
		l := rawListen(t, tr, h.f, opts)
		for _, closer := range []string{"dialer", "acceptor"} {
			d, a := rawPair(t, tr, l, opts)
			w, r := d, a
			if closer == "acceptor" {
				w, r = a, d
			}
			var frames [][]byte
			for i := range 20 {
				frames = append(frames, frameAt(i, []int{7, 1000, 5000}[i%3]))
			}
			frames = append(frames, frameAt(20, envFrameLimit))
			got := reader(r, len(frames)+2)
			if err := recv(t, writeAll(w, frames, []int{1, 4}), "the writer"); err != nil {
				t.Fatal(err)
			}
			if err := within(t, "Close", w.Close); err != nil {
				t.Errorf("Close: %v", err)
			}
			expectFrames(t, closer+" closes", got, frames)
			end := recv(t, got, "the end of the stream after the "+closer+"'s Close")
			if end.err != io.EOF {
				t.Fatalf("%s closed: ReadFrame after its last frame returned (%d bytes, %v); want io.EOF itself (not wrapped)", closer, len(end.frame), end.err)
			}
			if again := recv(t, reader(r, 1), "ReadFrame after io.EOF"); again.err == nil || len(again.frame) > 0 {
				t.Errorf("%s closed: ReadFrame after io.EOF returned (%d bytes, %v); want no frame and an error", closer, len(again.frame), again.err)
			}
		}
	}},

	// After Close, ReadFrame returns an error wrapping net.ErrClosed and
	// no frame, even with frames received and not yet read; a ReadFrame
	// waiting when Close is called returns one too; WriteFrames fails and
	// a second Close is harmless. On either end.
	{"AfterCloseReadFrameFailsWithErrClosedEvenWithFramesWaiting", func(t *testing.T, h *harness) {
		tr := h.f.NewTransport(t)
		opts := core.ConnOptions{MaxFrameSize: envFrameLimit}
		l := rawListen(t, tr, h.f, opts)
		for _, closer := range []string{"acceptor", "dialer"} {
			d, a := rawPair(t, tr, l, opts)
			w, c := d, a
			if closer == "dialer" {
				w, c = a, d
			}
			var frames [][]byte
			for i := range 16 {
				frames = append(frames, frameAt(i, 10+i))
			}
			if err := recv(t, writeAll(w, frames, []int{len(frames)}), "the writer"); err != nil {
				t.Fatal(err)
			}
			expectFrames(t, "before Close", reader(c, 1), frames[:1]) // the rest have arrived or are on their way
			if err := within(t, "Close", c.Close); err != nil {
				t.Errorf("Close: %v", err)
			}
			for i := range 2 {
				r := recv(t, reader(c, 1), "ReadFrame after Close")
				if !errors.Is(r.err, net.ErrClosed) || len(r.frame) > 0 {
					t.Fatalf("%s closed: ReadFrame %d after Close returned (%d bytes, %v); want no frame and an error wrapping net.ErrClosed", closer, i, len(r.frame), r.err)
				}
			}
			if err := c.WriteFrames([][]byte{{1}}); err == nil {
				t.Errorf("%s closed: WriteFrames after Close succeeded", closer)
			}
			if err := within(t, "a second Close", c.Close); err != nil {
				t.Errorf("%s closed: a second Close: %v", closer, err)
			}
		}
		d, _ := rawPair(t, tr, l, opts)
		waiting := reader(d, 1)
		waitParked(t, "conformance.readFrames(", "", 1, "a ReadFrame waiting for a frame")
		within(t, "Close", d.Close)
		if r := recv(t, waiting, "a waiting ReadFrame to return after Close"); !errors.Is(r.err, net.ErrClosed) || len(r.frame) > 0 {
			t.Fatalf("a ReadFrame waiting when Close was called returned (%d bytes, %v); want no frame and an error wrapping net.ErrClosed", len(r.frame), r.err)
		}
	}},

	// A frame over the reader's ConnOptions.MaxFrameSize fails ReadFrame
	// with an error wrapping core.ErrMessageTooLarge, from the very first
	// frame of a connection and on either end; a frame of exactly the
	// limit crosses. (A writer that knows the peer's limit may refuse the
	// frame itself, with the same error.)
	{"AFrameOverMaxFrameSizeIsRefusedFromTheFirstFrame", func(t *testing.T, h *harness) {
		tr := h.f.NewTransport(t)
		for _, tc := range []struct {
			name       string
			limit      int
			fromDialer bool
			before     []int // frame sizes that cross first
			over       int
		}{
			{"first frame to the acceptor", envFrameLimit, true, nil, envFrameLimit + 1},
			{"first frame to the dialer", envFrameLimit, false, nil, envFrameLimit + 1},
			{"after frames of the limit, to the acceptor", envFrameLimit, true, []int{envFrameLimit, 1, envFrameLimit}, 1 << 20},
			{"after frames of the limit, to the dialer", envFrameLimit, false, []int{envFrameLimit, envFrameLimit}, envFrameLimit + 1},
			{"a small limit", 1000, true, []int{1000}, 1001},
		} {
			opts := core.ConnOptions{MaxFrameSize: tc.limit}
			d, a := rawPair(t, tr, rawListen(t, tr, h.f, opts), opts)
			w, r := d, a
			if !tc.fromDialer {
				w, r = a, d
			}
			var frames [][]byte
			for i, n := range tc.before {
				frames = append(frames, frameAt(i, n))
			}
			got := reader(r, len(frames)+1)
			if err := recv(t, writeAll(w, frames, []int{1}), "the writer"); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			expectFrames(t, tc.name, got, frames)
			over := make(chan error, 1)
			go func() { over <- w.WriteFrames([][]byte{frameAt(len(frames), tc.over)}) }()
			// The reader fails without reading the body, so the writer
			// may stay blocked: wait for whichever answers first.
			var res read
			select {
			case err := <-over:
				if errors.Is(err, core.ErrMessageTooLarge) {
					continue // the writer refused it
				}
				res = recv(t, got, fmt.Sprintf("%s: ReadFrame of a frame over the limit", tc.name))
			case res = <-got:
			case <-time.After(waitLimit):
				t.Fatalf("%s: waited %v for ReadFrame or WriteFrames of a frame over the limit", tc.name, waitLimit)
			}
			if !errors.Is(res.err, core.ErrMessageTooLarge) || len(res.frame) > 0 {
				t.Errorf("%s: ReadFrame of a frame of %d bytes with MaxFrameSize %d returned (%d bytes, %v); want no frame and an error wrapping core.ErrMessageTooLarge", tc.name, tc.over, tc.limit, len(res.frame), res.err)
			}
		}
	}},

	// Listener.Close makes a waiting Accept, and every later one, return
	// an error wrapping net.ErrClosed; connections accepted before stay
	// open.
	{"ListenerCloseEndsAcceptWithErrClosedAndSparesItsConnections", func(t *testing.T, h *harness) {
		tr := h.f.NewTransport(t)
		l := rawListen(t, tr, h.f, core.ConnOptions{})
		d, a := rawPair(t, tr, l, core.ConnOptions{})
		acc := make(chan accepted, 1)
		go acceptOne(l, acc)
		waitParked(t, "conformance.acceptOne(", "", 1, "an Accept waiting for a connection")
		if err := within(t, "Listener.Close", l.Close); err != nil {
			t.Errorf("Listener.Close: %v", err)
		}
		if r := recv(t, acc, "Accept to return after Listener.Close"); !errors.Is(r.err, net.ErrClosed) {
			if r.c != nil {
				r.c.Close()
			}
			t.Errorf("Accept waiting at Listener.Close returned (%v, %v); want an error wrapping net.ErrClosed", r.c, r.err)
		}
		go acceptOne(l, acc)
		if r := recv(t, acc, "Accept after Listener.Close"); !errors.Is(r.err, net.ErrClosed) {
			if r.c != nil {
				r.c.Close()
			}
			t.Errorf("Accept after Listener.Close returned (%v, %v); want an error wrapping net.ErrClosed", r.c, r.err)
		}
		frames := [][]byte{frameAt(0, 100), frameAt(1, envFrameLimit)}
		got := reader(a, len(frames))
		if err := recv(t, writeAll(d, frames, []int{2}), "the writer"); err != nil {
			t.Fatalf("a connection accepted before Listener.Close: %v", err)
		}
		expectFrames(t, "a connection accepted before Listener.Close", got, frames)
	}},

	// Listen on a ":0"-style address binds a real one: Addr is what
	// Dial takes, and another Listen on it fails with an error naming it.
	{"AddrIsTheBoundAddressAndDialable", func(t *testing.T, h *harness) {
		tr := h.f.NewTransport(t)
		asked := rawAddr(t, h.f)
		l, err := tr.Listen(asked, core.ConnOptions{})
		if err != nil {
			t.Fatalf("Listen(%q): %v", asked, err)
		}
		t.Cleanup(func() { within(t, "Listener.Close", l.Close) })
		addr := l.Addr()
		if addr == "" || (strings.HasSuffix(asked, ":0") && strings.HasSuffix(addr, ":0")) {
			t.Fatalf("Listen(%q).Addr() = %q; want the address actually bound", asked, addr)
		}
		if l2, err := tr.Listen(addr, core.ConnOptions{}); err == nil {
			l2.Close()
			t.Errorf("a second Listen(%q) while the first listens succeeded", addr)
		} else if !strings.Contains(err.Error(), addr) {
			t.Errorf("a second Listen(%q) failed with %q, which does not name the address", addr, err)
		}
		d, a := rawPair(t, tr, l, core.ConnOptions{})
		frames := [][]byte{frameAt(0, 33)}
		got := reader(a, 1)
		if err := recv(t, writeAll(d, frames, []int{1}), "the writer"); err != nil {
			t.Fatal(err)
		}
		expectFrames(t, "over a connection dialed to Addr()", got, frames)
	}},

	// Two connections open at the same time have distinct, non-empty
	// RemoteAddr labels on the accepting side (they name client-mode
	// peers), and a dialer's RemoteAddr is not empty.
	{"TwoConnectionsOpenAtOnceHaveDistinctRemoteAddrs", func(t *testing.T, h *harness) {
		tr := h.f.NewTransport(t)
		l := rawListen(t, tr, h.f, core.ConnOptions{})
		d1, a1 := rawPair(t, tr, l, core.ConnOptions{})
		d2, a2 := rawPair(t, tr, l, core.ConnOptions{})
		r1, r2 := a1.RemoteAddr(), a2.RemoteAddr()
		if r1 == "" || r1 == r2 {
			t.Errorf("the accepted ends of two open connections have RemoteAddr %q and %q; want two distinct labels", r1, r2)
		}
		if d1.RemoteAddr() == "" || d2.RemoteAddr() == "" {
			t.Errorf("dialed ends have RemoteAddr %q and %q; want labels of the listener", d1.RemoteAddr(), d2.RemoteAddr())
		}
	}},

	// A writer blocked because the peer reads nothing is released with an
	// error when its own end closes, and Close returns although the peer
	// still reads nothing: on either end. It is released too when the
	// peer closes its end instead (the connection is broken).
	{"CloseReleasesAWriterBlockedOnAPeerThatDoesNotRead", func(t *testing.T, h *harness) {
		tr := h.f.NewTransport(t)
		opts := core.ConnOptions{MaxFrameSize: envFrameLimit}
		l := rawListen(t, tr, h.f, opts)
		for _, tc := range []struct {
			name      string
			dialer    bool // the dialer writes
			peerClose bool // the reading end closes, not the writer's
		}{
			{"the dialer writes and closes", true, false},
			{"the acceptor writes and closes", false, false},
			{"the dialer writes, the acceptor closes", true, true},
			{"the acceptor writes, the dialer closes", false, true},
		} {
			d, a := rawPair(t, tr, l, opts)
			w, r := a, d
			if tc.dialer {
				w, r = d, a
			}
			var written atomic.Int64
			var closing atomic.Bool
			res := make(chan error, 1)
			go writeUntilBlocked(w, &written, &closing, res)
			if !waitBlocked(t, "conformance.writeUntilBlocked(", &written, res) {
				t.Fatalf("%s: WriteFrames to a peer that reads nothing never blocked (%d MiB accepted; a transport must push back, not hold without bound)", tc.name, written.Load()>>20)
			}
			closer := w
			if tc.peerClose {
				closer = r
			}
			closing.Store(true)
			if err := within(t, tc.name+": Close with a blocked writer and a peer that does not read", closer.Close); err != nil {
				t.Errorf("%s: Close: %v", tc.name, err)
			}
			if err := recv(t, res, tc.name+": the blocked WriteFrames to return after Close"); err == nil {
				t.Fatalf("%s: a WriteFrames blocked at Close returned no error", tc.name)
			}
		}
	}},

	// Dial with a context already done fails, even to a listener that
	// would accept: the context bounds the whole dial.
	{"DialWithADoneContextFails", func(t *testing.T, h *harness) {
		tr := h.f.NewTransport(t)
		l := rawListen(t, tr, h.f, core.ConnOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		type dialed struct {
			c   core.Conn
			err error
		}
		res := make(chan dialed, 1)
		go func() {
			c, err := tr.Dial(ctx, l.Addr(), core.ConnOptions{})
			res <- dialed{c, err}
		}()
		if r := recv(t, res, "Dial with a done context"); r.err == nil {
			within(t, "Close", r.c.Close)
			t.Fatal("Dial with a context already canceled returned a connection; want an error")
		}
	}},

	// Once a listener and the connections it accepted are closed, its
	// address is free: an env can listen there again.
	{"AClosedListenersAddressCanBeListenedOnAgain", func(t *testing.T, h *harness) {
		tr := h.f.NewTransport(t)
		l, err := tr.Listen(rawAddr(t, h.f), core.ConnOptions{})
		if err != nil {
			t.Fatalf("Listen: %v", err)
		}
		addr := l.Addr()
		d, a := rawPair(t, tr, l, core.ConnOptions{})
		got := reader(a, 1)
		if err := recv(t, writeAll(d, [][]byte{frameAt(0, 10)}, []int{1}), "the writer"); err != nil {
			t.Fatal(err)
		}
		expectFrames(t, "before the closes", got, [][]byte{frameAt(0, 10)})
		for _, c := range []struct {
			what string
			f    func() error
		}{{"the dialer's Close", d.Close}, {"the acceptor's Close", a.Close}, {"Listener.Close", l.Close}} {
			within(t, c.what, c.f)
		}
		l2, err := tr.Listen(addr, core.ConnOptions{})
		if err != nil {
			t.Fatalf("Listen(%q) after its listener and connections closed: %v; want the address free again", addr, err)
		}
		within(t, "Listener.Close", l2.Close)
	}},
}

// blockedLimit is how much writeUntilBlocked writes at most: far more
// than any transport's buffers, kernel's or library's.
const blockedLimit = 64 << 20

// writeUntilBlocked writes 64 KiB frames to c until WriteFrames fails,
// counting bytes written in written; it sends the error on res, or nil
// if it wrote blockedLimit before closing was set, or 16 times that in
// all. Once closing is set it writes on: a peer's Close may read what it
// has before it ends the connection, so the writer may go on for a while
// before its error. It is a named function so that waitBlocked finds it
// in goroutine stacks.
func writeUntilBlocked(c core.Conn, written *atomic.Int64, closing *atomic.Bool, res chan<- error) {
	frame := noise(64<<10, 7)
	for n := written.Load(); n < blockedLimit || closing.Load() && n < 16*blockedLimit; n = written.Load() {
		if err := c.WriteFrames([][]byte{frame}); err != nil {
			res <- err
			return
		}
		written.Add(int64(len(frame)))
	}
	res <- nil
}

// waitBlocked waits until the goroutine running marker is parked with
// written unchanged across three looks, and reports true; or reports
// false if it ended first (res then still holds its result). There is no
// signal for "blocked in a call": this is the polling STYLE.md allows
// where no signal exists. A false positive only makes the case check
// less, never fail.
func waitBlocked(t *testing.T, marker string, written *atomic.Int64, res chan error) bool {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	still, last := 0, int64(-1)
	for time.Now().Before(deadline) {
		select {
		case err := <-res:
			res <- err
			return false
		default:
		}
		n := written.Load()
		if countParked(marker, "") == 1 && n == last {
			if still++; still == 3 {
				return true
			}
		} else {
			still = 0
		}
		last = n
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("waited %v for the writer to block or end", waitLimit)
	return false
}

// waitParked waits until at least n goroutines whose stacks hold marker
// and not except ("": no exception) are parked, in two looks in a row.
// Like waitBlocked, it polls where no signal exists.
func waitParked(t *testing.T, marker, except string, n int, what string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	seen := 0
	for time.Now().Before(deadline) {
		if countParked(marker, except) >= n {
			if seen++; seen == 2 {
				return
			}
		} else {
			seen = 0
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("waited %v for %s", waitLimit, what)
}

// countParked counts the goroutines whose stacks hold marker and not
// except, and whose state is a wait (a channel, a select, a lock, the
// network), from runtime.Stack's text ("goroutine 7 [select]:").
func countParked(marker, except string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		head, body, _ := strings.Cut(g, "\n")
		_, state, ok := strings.Cut(head, "[")
		if !ok || !strings.Contains(body, marker) || (except != "" && strings.Contains(body, except)) {
			continue
		}
		state, _, _ = strings.Cut(state, "]")
		state, _, _ = strings.Cut(state, ",")
		switch state {
		case "running", "runnable", "syscall", "preempted", "copystack", "idle", "dead":
		default:
			count++
		}
	}
	return count
}

// sendThenBlock sends first, which spends the credit for r's endpoint,
// then msg, which waits for credit that does not come, in blockedSend.
func sendThenBlock(r *core.Ref, first, msg any, errs chan<- error) {
	if err := r.Send(first); err != nil {
		errs <- fmt.Errorf("the first Send: %w", err)
		return
	}
	blockedSend(r, msg, errs)
}

// blockedSend sends msg to r and sends the result on errs. It is a named
// function so that waitParked finds it in goroutine stacks.
//
//go:noinline
func blockedSend(r *core.Ref, msg any, errs chan<- error) { errs <- r.Send(msg) }

// watchLoss registers an observer in e and returns the channel its
// OnDisconnected calls go to. A case waits for it after a cut before it
// asks again: the env forgets the broken connection before it fires it.
func watchLoss(h *harness, e *core.Env) <-chan string {
	lost := make(chan string, 16)
	h.register(e, "watch-loss", &probe{disc: func(r string) { lost <- r }})
	return lost
}

// noBeats turns heartbeats (and PeerTimeout) off: only the transport can
// tell an env that a connection is gone.
func noBeats(c *core.Config) { c.HeartbeatInterval = -1 }

var cutCases = concat(
	// Senders blocked on a peer that stopped reading and writing (their
	// endpoints' credit spent, megabytes waiting for the connection's
	// window) are released by the cut with ErrDisconnected, and the env
	// works again afterwards. (The env never writes more than its
	// connection window ahead of the peer, so its writer need not block
	// in WriteFrames: group Conn checks a blocked WriteFrames.)
	across("SendersBlockedOnAStalledPeerFailWithErrDisconnectedWhenCut", networks, func(t *testing.T, h *harness, at, from *core.Env) {
		const senders = 8
		var refs []*core.Ref
		for i := range senders {
			h.register(at, fmt.Sprint("sink", i), &probe{})
			refs = append(refs, h.lookup(from, at, fmt.Sprint("sink", i)))
		}
		h.register(at, "echo", echo())
		echoRef := h.lookup(from, at, "echo")
		lost := watchLoss(h, from)
		h.wire.freeze(0)
		errs := make(chan error, senders)
		first := Blob{Data: make([]byte, 256<<10)} // over the initial credit: no Send after it goes
		for _, r := range refs[:senders] {
			go sendThenBlock(r, first, Seq{}, errs)
		}
		waitParked(t, "conformance.blockedSend(", "", senders, "every sender to block on the stalled peer")
		h.wire.freeze(-1) // connections made from now on work
		if n := h.wire.sever(); n == 0 {
			t.Fatal("no connection to cut")
		}
		for i := range senders {
			if err := recv(t, errs, "a blocked sender to return after the cut"); !errors.Is(err, core.ErrDisconnected) {
				t.Errorf("sender %d blocked on a stalled peer returned %v after the cut; want ErrDisconnected", i, err)
			}
		}
		recv(t, lost, "OnDisconnected after the cut")
		if v, err := ask(t, echoRef, Ping{N: 1}); err != nil || v != (Pong{N: 2}) {
			t.Fatalf("Ask after the cut = %v, %v; want a new connection", v, err)
		}
	}),

	// A sender blocked by a slow endpoint (it handles nothing, so no
	// credit comes back) is released by the cut with ErrDisconnected; the
	// endpoint and the env go on afterwards.
	across("SenderBlockedOnASlowEndpointFailsWithErrDisconnectedWhenCut", networks, func(t *testing.T, h *harness, at, from *core.Env) {
		release := make(chan struct{})
		h.register(at, "slow", &probe{receive: func(c *core.Context, msg any) error {
			<-release
			if c.IsAsk() {
				return c.Reply(true)
			}
			return nil
		}}, core.WithInboxLimit(4<<10))
		slow := h.lookup(from, at, "slow")
		lost := watchLoss(h, from)
		errs := make(chan error, 1)
		go sendThenBlock(slow, Blob{Data: make([]byte, 128<<10)}, Seq{}, errs)
		waitParked(t, "conformance.blockedSend(", "", 1, "the sender to block on the slow endpoint")
		h.wire.sever()
		if err := recv(t, errs, "the blocked sender to return after the cut"); !errors.Is(err, core.ErrDisconnected) {
			t.Errorf("a sender blocked on a slow endpoint returned %v after the cut; want ErrDisconnected", err)
		}
		recv(t, lost, "OnDisconnected after the cut")
		close(release)
		if _, err := ask(t, slow, Ping{}); err != nil {
			t.Fatalf("Ask after the cut: %v; want a new connection", err)
		}
	}),

	// With heartbeats off, a peer env's Shutdown still fails the asks in
	// flight to it with ErrDisconnected and fires OnDisconnected: the
	// transport's Close reaches the other end. Both ways.
	across("APeersShutdownFailsInFlightAsksWithoutHeartbeats", networksWith(noBeats), func(t *testing.T, h *harness, at, from *core.Env) {
		inside := make(chan struct{}, 1)
		h.register(at, "mute", &probe{receive: func(*core.Context, any) error {
			inside <- struct{}{}
			return nil // no answer: the ask stays in flight
		}})
		fromEv := newEvents()
		h.register(from, "watch", &probe{disc: func(r string) { fromEv.add("disconnected %s", r) }})
		mute := h.lookup(from, at, "mute")
		errs := askLater(context.Background(), mute, Ping{})
		recv(t, inside, "the ask to reach the endpoint")
		h.shutdown(at)
		if err := recv(t, errs, "the ask in flight to a peer that shut down"); !errors.Is(err, core.ErrDisconnected) {
			t.Errorf("an ask in flight when its peer shut down returned %v; want ErrDisconnected", err)
		}
		if ev := fromEv.next(t, "OnDisconnected when the peer shut down"); ev != "disconnected "+at.Address() {
			t.Errorf("event %q; want OnDisconnected(%s)", ev, at.Address())
		}

		// The other way: the listener loses a peer that shuts down.
		at2 := h.server("at2", noBeats)
		atEv := newEvents()
		h.register(at2, "watch", &probe{
			receive: func(c *core.Context, _ any) error { return c.Reply(c.Sender()) },
			disc:    func(r string) { atEv.add("disconnected %s", r) },
		})
		label, err := ask(t, h.lookup(from, at2, "watch"), Ping{})
		if err != nil {
			t.Fatal(err)
		}
		h.shutdown(from)
		if ev := atEv.next(t, "OnDisconnected when the dialer shut down"); ev != fmt.Sprint("disconnected ", label) {
			t.Errorf("event %q at the listener; want OnDisconnected(%v)", ev, label)
		}
	}),

	// With heartbeats off, closing one end of a connection (as a peer
	// process would) is seen at the other end through the transport
	// alone: asks in flight over it fail with ErrDisconnected, the
	// handler of an ask from the gone peer sees its context end, and
	// OnDisconnected fires. Then the envs connect again.
	across("OneEndClosingIsSeenAtTheOtherWithoutHeartbeats", networksWith(noBeats), func(t *testing.T, h *harness, at, from *core.Env) {
		inside := make(chan struct{}, 2)
		ended := make(chan struct{}, 2)
		atEv, fromEv := newEvents(), newEvents()
		h.register(at, "hang", &probe{
			receive: func(c *core.Context, msg any) error {
				if _, ok := msg.(Ping); ok {
					return c.Reply(c.Sender())
				}
				inside <- struct{}{}
				<-c.Context().Done() // ends when the asker's connection is gone
				ended <- struct{}{}
				return nil
			},
			disc: func(r string) { atEv.add("disconnected %s", r) },
		}, core.WithConcurrency(2))
		h.register(from, "watch", &probe{disc: func(r string) { fromEv.add("disconnected %s", r) }})
		hang := h.lookup(from, at, "hang")
		for _, side := range []string{"accepted", "dialed"} {
			label, err := ask(t, hang, Ping{})
			if err != nil {
				t.Fatalf("%s: Ask: %v", side, err)
			}
			errs := askLater(context.Background(), hang, Seq{})
			recv(t, inside, "the ask to reach the handler")
			if n := h.wire.cut(side == "accepted"); n != 1 {
				t.Fatalf("cut %d %s ends, want 1", n, side)
			}
			if err := recv(t, errs, "the ask in flight when the "+side+" end closed"); !errors.Is(err, core.ErrDisconnected) {
				t.Errorf("%s end closed: the ask in flight returned %v; want ErrDisconnected", side, err)
			}
			recv(t, ended, "the handler's context to end when the "+side+" end closed")
			if ev := fromEv.next(t, "the dialer's OnDisconnected"); ev != "disconnected "+at.Address() {
				t.Errorf("%s end closed: the dialer saw %q; want OnDisconnected(%s)", side, ev, at.Address())
			}
			if ev := atEv.next(t, "the listener's OnDisconnected"); ev != fmt.Sprint("disconnected ", label) {
				t.Errorf("%s end closed: the listener saw %q; want OnDisconnected(%v)", side, ev, label)
			}
		}
		if _, err := ask(t, hang, Ping{}); err != nil {
			t.Fatalf("Ask after the cuts: %v; want a new connection", err)
		}
	}),
)

var clientPeerCases = []testCase{
	// Two client-mode envs connected to one listener at the same time get
	// distinct labels there (Context.Sender, OnConnected, OnDisconnected),
	// and each gets its own replies and messages.
	{"TwoClientModePeersAreToldApart", func(t *testing.T, h *harness) {
		at := h.server("at")
		ev := newEvents()
		got := make(chan string, 2)
		h.register(at, "who", &probe{
			receive: func(c *core.Context, msg any) error {
				if carry, ok := msg.(Carry); ok { // a client's inbox: tell it its label
					if err := carry.Ref.Send(c.Sender()); err != nil {
						return err
					}
					return c.Reply(true)
				}
				return c.Reply(Pong{N: msg.(Ping).N})
			},
			conn: func(r string) { ev.add("connected %s", r) },
			disc: func(r string) { ev.add("disconnected %s", r) },
		})
		clients := []*core.Env{h.client("c1"), h.client("c2")}
		labels := make([]string, 2)
		for i, c := range clients {
			inbox := h.register(c, "inbox", &probe{receive: func(_ *core.Context, msg any) error {
				got <- fmt.Sprint(i, " ", msg)
				return nil
			}})
			if _, err := ask(t, h.lookup(c, at, "who"), Carry{Ref: inbox}); err != nil {
				t.Fatal(err)
			}
			s := recv(t, got, "the label sent to a client's inbox")
			l, ok := strings.CutPrefix(s, fmt.Sprint(i, " "))
			if !ok {
				t.Fatalf("client %d's inbox got %q: another client's message", i, s)
			}
			labels[i] = l
			if e := ev.next(t, "OnConnected for a client"); e != "connected "+l {
				t.Errorf("client %d: the listener's event %q; want OnConnected with its Sender %q", i, e, l)
			}
		}
		if labels[0] == "" || labels[0] == labels[1] {
			t.Fatalf("two client-mode peers have Sender labels %q and %q at the listener; want two distinct labels", labels[0], labels[1])
		}
		errs := make(chan error, 2)
		for i, c := range clients {
			ref := h.lookup(c, at, "who")
			go func() {
				for n := range 50 {
					k := 1000*i + n
					if v, err := ask(t, ref, Ping{N: k}); err != nil || v != (Pong{N: k}) {
						errs <- fmt.Errorf("client %d: Ask(Ping{%d}) = %v, %v", i, k, v, err)
						return
					}
				}
				errs <- nil
			}()
		}
		for range 2 {
			if err := recv(t, errs, "both clients' asks"); err != nil {
				t.Error(err)
			}
		}
		h.shutdown(clients[0])
		if e := ev.next(t, "OnDisconnected for the first client"); e != "disconnected "+labels[0] {
			t.Errorf("after the first client shut down the listener saw %q; want OnDisconnected(%s)", e, labels[0])
		}
	}},
}
