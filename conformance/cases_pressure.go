package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
)

// Frame kinds of docs/PROTOCOL.md that the pressure cases watch for on
// the accepting side of a connection.
const (
	wireSend  = 10
	wireAsk   = 11
	wireChunk = 17
	wireLast  = 18

	wireStreamData = 21
)

// frameKind returns a frame's kind: an envelope is a CBOR array of 8
// elements and a chunk one of 3, each with its kind first (small kinds
// fit in the array's next byte).
func frameKind(f []byte) byte {
	if len(f) < 2 || (f[0] != 0x88 && f[0] != 0x83 && f[0] != 0x84) {
		return 0
	}
	return f[1]
}

// chunkWatch follows, in the frames the accepting side reads, which
// chunked frames are in flight, and counts the frames of one kind read
// meanwhile.
type chunkWatch struct {
	kind      byte
	first     chan struct{} // closed at the first chunk
	firstOnce sync.Once
	mu        sync.Mutex
	chunking  map[uint64]bool
	seen      int // frames of kind read
	amid      int // ... of which while a chunked frame was in flight
}

// watchChunks installs a chunkWatch for frames of kind on h's wire.
func watchChunks(h *harness, kind byte) *chunkWatch {
	w := &chunkWatch{kind: kind, first: make(chan struct{}), chunking: map[uint64]bool{}}
	hook := w.read
	h.wire.onRead.Store(&hook)
	return w
}

func (w *chunkWatch) read(f []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch k := frameKind(f); {
	case k == wireChunk:
		w.chunking[chunkID(f)] = true
		w.firstOnce.Do(func() { close(w.first) })
	case k == wireLast:
		delete(w.chunking, chunkID(f))
	case k == w.kind:
		w.seen++
		if len(w.chunking) > 0 {
			w.amid++
		}
	}
}

// counts returns the frames of the kind read, and how many of them while
// a chunked frame was in flight.
func (w *chunkWatch) counts() (seen, amid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen, w.amid
}

// chunkID returns a chunk frame's id, the CBOR unsigned integer after its
// kind (docs/PROTOCOL.md, "Chunks").
func chunkID(f []byte) uint64 {
	info := f[2] & 0x1f
	if info < 24 {
		return uint64(info)
	}
	n := 1 << (info - 24) // 24..27: 1, 2, 4 or 8 bytes follow
	var id uint64
	for _, b := range f[3 : 3+n] {
		id = id<<8 | uint64(b)
	}
	return id
}

// sendTarget returns the endpoint name of a Send frame ("" if f is not
// one, or names it in a form this quick parser skips).
func sendTarget(f []byte) string {
	if frameKind(f) != wireSend || len(f) < 4 || f[2] != 0x00 { // id 0
		return ""
	}
	n := int(f[3] & 0x1f)
	if f[3]>>5 != 3 || n >= 24 || len(f) < 4+n {
		return ""
	}
	return string(f[4 : 4+n])
}

// pattern fills a blob whose content the receiver can check.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

func freshCtx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

var pressureCases = []testCase{
	// Interleaving: asks to one endpoint cross while a 32 MiB message to
	// another is on its way, on the same connection. The accepting side
	// sees at least one ask between a chunk and the last chunk of a bulk
	// message: it was not held behind it.
	{"SmallAsksPassALargeMessageInFlight", func(t *testing.T, h *harness) {
		at, from := h.server("at"), h.client("from")
		const bulkSize, bulks = 32 << 20, 3
		watch := watchChunks(h, wireAsk)
		bulkGot := make(chan error, bulks)
		h.register(at, "bulk", &probe{receive: func(_ *core.Context, msg any) error {
			b := msg.(Blob)
			if len(b.Data) != bulkSize || !bytes.Equal(b.Data[:4096], pattern(4096, 1)) || !bytes.Equal(b.Data[bulkSize-4096:], pattern(bulkSize, 1)[bulkSize-4096:]) {
				bulkGot <- fmt.Errorf("bulk message of %d bytes arrived damaged", len(b.Data))
				return nil
			}
			bulkGot <- nil
			return nil
		}})
		h.register(at, "echo", echo())
		bulk, echoRef := h.lookup(from, at, "bulk"), h.lookup(from, at, "echo")
		sendErrs := make(chan error, 1)
		go func() {
			blob := Blob{Data: pattern(bulkSize, 1)}
			for range bulks {
				if err := bulk.Send(blob); err != nil {
					sendErrs <- err
					return
				}
			}
			sendErrs <- nil
		}()
		closed(t, watch.first, "the first chunk of a bulk message")
		for i := range 50 {
			if v, err := ask(t, echoRef, Ping{N: i}); err != nil || v != (Pong{N: i + 1}) {
				t.Fatalf("ask %d during bulk sends = %v, %v", i, v, err)
			}
		}
		if err := recv(t, sendErrs, "the bulk sender"); err != nil {
			t.Fatalf("bulk Send: %v", err)
		}
		for range bulks {
			if err := recv(t, bulkGot, "a bulk message"); err != nil {
				t.Fatal(err)
			}
		}
		if _, amid := watch.counts(); amid == 0 {
			t.Errorf("no ask crossed while a bulk message was in flight: asks wait behind large messages")
		}
	}},

	// A peer that stops reading and writing (a stopped process) while we
	// write at full speed: asks end by their deadlines, the peer is
	// declared dead after PeerTimeout although our writes are stuck, and
	// a sender blocked on it is released with ErrDisconnected.
	{"AStalledPeerIsDeclaredDeadWhileWritesAreStuck", func(t *testing.T, h *harness) {
		quick := func(c *core.Config) {
			c.HeartbeatInterval = 20 * time.Millisecond
			c.PeerTimeout = 200 * time.Millisecond
		}
		// at hears nothing either: with the same settings it gives the
		// connection up soon too, instead of waiting for its peer's
		// Goodbye answer at Shutdown for the default PeerTimeout.
		at := h.server("at", quick)
		lost := make(chan string, 4)
		from := h.client("from", quick)
		h.register(from, "watch", &probe{disc: func(remote string) { lost <- remote }})
		h.register(at, "sink", &probe{})
		h.register(at, "echo", echo())
		sink, echoRef := h.lookup(from, at, "sink"), h.lookup(from, at, "echo")
		h.wire.freeze(0)
		sendErr := make(chan error, 1)
		go func() {
			blob := Blob{Data: make([]byte, 64<<10)}
			for range 100000 { // 6 GiB: far more than any buffer
				if err := sink.Send(blob); err != nil {
					sendErr <- err
					return
				}
			}
			sendErr <- nil
		}()
		var asks []<-chan error
		for i := range 4 {
			ctx, cancel := freshCtx(time.Duration(50*(i+1)) * time.Millisecond)
			defer cancel()
			asks = append(asks, askLater(ctx, echoRef, Ping{}))
		}
		for i, ch := range asks {
			err := recv(t, ch, fmt.Sprintf("ask %d to the stalled peer", i))
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, core.ErrDisconnected) {
				t.Errorf("ask %d to a stalled peer: %v; want its deadline or ErrDisconnected", i, err)
			}
		}
		if remote := recv(t, lost, "OnDisconnected for the stalled peer"); remote != at.Address() {
			t.Errorf("OnDisconnected(%q), want %q", remote, at.Address())
		}
		if err := recv(t, sendErr, "the blocked sender"); !errors.Is(err, core.ErrDisconnected) {
			t.Errorf("a Send blocked on the stalled peer returned %v; want ErrDisconnected", err)
		}
	}},

	// Both envs write bulk to each other while each asks an endpoint the
	// other has stopped: both read loops answer failures while their
	// writers are busy, and nothing deadlocks.
	{"BothSidesWritingBulkStillAnswerFailures", func(t *testing.T, h *harness) {
		a, b := h.server("a"), h.client("b")
		refs := make(chan *core.Ref, 2)
		h.register(a, "reg", &probe{receive: func(c *core.Context, msg any) error {
			refs <- msg.(Carry).Ref
			return c.Reply(true)
		}})
		h.register(a, "sink", &probe{})
		aGone := h.register(a, "gone", &probe{})
		bSink, bGone := h.register(b, "sink", &probe{}), h.register(b, "gone", &probe{})
		reg := h.lookup(b, a, "reg")
		for _, r := range []*core.Ref{bSink, bGone} {
			if _, err := ask(t, reg, Carry{Ref: r}); err != nil {
				t.Fatal(err)
			}
		}
		toBSink, toBGone := recv(t, refs, "b's sink"), recv(t, refs, "b's gone")
		toASink, toAGone := h.lookup(b, a, "sink"), h.lookup(b, a, "gone")
		a.Stop(aGone)
		b.Stop(bGone)
		errs := make(chan error, 4)
		blob := Blob{Data: make([]byte, 256<<10)}
		for _, pair := range [][2]*core.Ref{{toBSink, toBGone}, {toASink, toAGone}} {
			sink, gone := pair[0], pair[1]
			go func() {
				for range 64 {
					if err := sink.Send(blob); err != nil {
						errs <- fmt.Errorf("bulk to %s: %w", sink, err)
						return
					}
				}
				errs <- nil
			}()
			go func() {
				for i := range 200 {
					if _, err := ask(t, gone, Ping{}); !errors.Is(err, core.ErrEndpointNotFound) {
						errs <- fmt.Errorf("ask %d to stopped %s: %v, want ErrEndpointNotFound", i, gone, err)
						return
					}
				}
				errs <- nil
			}()
		}
		for range 4 {
			if err := recv(t, errs, "bulk and failing asks both ways"); err != nil {
				t.Error(err)
			}
		}
	}},

	// Shutdown ends although the connection it has frames queued on is
	// being set up with a peer that stops reading right after its hello.
	{"ShutdownEndsWhileAPeerStopsReadingDuringSetUp", func(t *testing.T, h *harness) {
		at, from := h.server("at"), h.client("from")
		var refs []*core.Ref
		for i := range 32 {
			h.register(at, fmt.Sprint("sink", i), &probe{})
			refs = append(refs, h.lookup(from, at, fmt.Sprint("sink", i)))
		}
		h.wire.freeze(1) // accepted connections write their hello, then stop
		h.wire.sever()
		errs := make(chan error, len(refs))
		blob := Blob{Data: make([]byte, 1<<20)}
		for _, r := range refs {
			go func() {
				var err error
				for range 4 {
					if err = r.Send(blob); err != nil {
						break
					}
				}
				errs <- err
			}()
		}
		ctx, cancel := freshCtx(waitLimit)
		defer cancel()
		if err := from.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown with a peer that stopped reading during set-up: %v", err)
		}
		closed(t, from.Done(), "Done after Shutdown")
		for range refs {
			err := recv(t, errs, "a sender to the stalled peer")
			if err != nil && !errors.Is(err, core.ErrEnvStopped) && !errors.Is(err, core.ErrDisconnected) {
				t.Errorf("a sender released by Shutdown returned %v; want nil, ErrEnvStopped or ErrDisconnected", err)
			}
		}
	}},

	// Close ends at once although its connection is stuck: the peer stopped
	// reading while large messages were in flight and senders were
	// blocked. Close releases the senders and the writer, and Done closes
	// (no endpoint code is running).
	{"CloseEndsWhileAPeerStopsReadingWithLargeMessagesInFlight", func(t *testing.T, h *harness) {
		at, from := h.server("at"), h.client("from")
		h.register(at, "sink", &probe{})
		ref := h.lookup(from, at, "sink")
		h.wire.freeze(1) // accepted connections write their hello, then stop
		h.wire.sever()
		errs := make(chan error, 4)
		blob := Blob{Data: make([]byte, 32<<20)}
		for range cap(errs) {
			go func() {
				var err error
				for range 4 {
					if err = ref.Send(blob); err != nil {
						break
					}
				}
				errs <- err
			}()
		}
		if err := from.Close(); err != nil {
			t.Fatalf("Close with a peer that stopped reading: %v", err)
		}
		closed(t, from.Done(), "Done after Close")
		for range cap(errs) {
			err := recv(t, errs, "a sender to the stalled peer")
			if err != nil && !errors.Is(err, core.ErrEnvStopped) && !errors.Is(err, core.ErrDisconnected) {
				t.Errorf("a sender released by Close returned %v; want nil, ErrEnvStopped or ErrDisconnected", err)
			}
		}
	}},

	// Flow control: a slow endpoint holds at most its inbox limit (or the
	// initial window) plus one message from a fast remote sender, which
	// waits; another endpoint on the same connection keeps receiving; and
	// once the endpoint goes on, every message arrives.
	{"ASlowEndpointHoldsBoundedBytesAndOthersFlow", func(t *testing.T, h *harness) {
		at, from := h.server("at"), h.client("from")
		const (
			limit   = 32 << 10
			window  = 64 << 10 // docs/PROTOCOL.md: the initial credit
			msgSize = 1 << 10
			count   = 1000
		)
		var slowBytes atomic.Int64
		filling := make(chan struct{})
		var fillOnce sync.Once
		hook := func(f []byte) {
			if sendTarget(f) == "slow" && slowBytes.Add(int64(len(f))) >= window/2 {
				fillOnce.Do(func() { close(filling) })
			}
		}
		h.wire.onRead.Store(&hook)
		release := make(chan struct{})
		var got atomic.Int64
		all := make(chan struct{})
		h.register(at, "slow", &probe{receive: func(_ *core.Context, msg any) error {
			<-release
			if got.Add(1) == count {
				close(all)
			}
			return nil
		}}, core.WithInboxLimit(limit))
		h.register(at, "fast", echo())
		slow, fast := h.lookup(from, at, "slow"), h.lookup(from, at, "fast")
		sent := make(chan error, 1)
		go func() {
			blob := Blob{Data: make([]byte, msgSize)}
			for range count {
				if err := slow.Send(blob); err != nil {
					sent <- err
					return
				}
			}
			sent <- nil
		}()
		closed(t, filling, "sends reaching the slow endpoint")
		for i := range 20 {
			if v, err := ask(t, fast, Ping{N: i}); err != nil || v != (Pong{N: i + 1}) {
				t.Fatalf("ask %d to another endpoint while one is slow = %v, %v", i, v, err)
			}
		}
		bound := int64(max(limit, window) + msgSize + 64)
		if n := slowBytes.Load(); n > bound {
			t.Errorf("the slow endpoint's env read %d bytes for it while it was stuck; want at most %d (limit or initial window, plus one message)", n, bound)
		}
		close(release)
		if err := recv(t, sent, "the sender to the slow endpoint"); err != nil {
			t.Fatalf("Send to a slow endpoint: %v", err)
		}
		closed(t, all, fmt.Sprintf("all %d messages at the slow endpoint (got %d)", count, got.Load()))
	}},
}

// sendThenAskCases: an ask to an endpoint arrives after every send that
// the same goroutine made to it before, large or small.
var sendThenAskCases = across("SendThenAskArriveInOrder", all, func(t *testing.T, h *harness, at, from *core.Env) {
	var seen atomic.Int64
	h.register(at, "ord", &probe{receive: func(c *core.Context, msg any) error {
		if c.IsAsk() {
			return c.Reply(Pong{N: int(seen.Load())})
		}
		seen.Add(1)
		return nil
	}})
	ref := h.lookup(from, at, "ord")
	n := 0
	for round := range 3 {
		for i := range 100 {
			if err := ref.Send(Seq{N: i}); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if err := ref.Send(Blob{Data: make([]byte, 1<<20+round)}); err != nil {
			t.Fatal(err)
		}
		n++
		v, err := ask(t, ref, Ping{})
		if err != nil || v != (Pong{N: n}) {
			t.Fatalf("round %d: ask after %d sends saw %v, %v; want Pong{%d}: the ask overtook a send", round, n, v, err, n)
		}
	}
})
