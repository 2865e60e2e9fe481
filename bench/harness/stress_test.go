package harness

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// supportsBulkAsk and supportsSlowHeap say which systems have each stress
// workload; the others must say errors.ErrUnsupported.
var (
	supportsBulkAsk  = []string{"rpcenv-inproc", "rpcenv-tcp", "rpcenv-quic", "grpc-unary", "grpc-stream", "net/rpc", "rpcenv-tcp-sealed", "rpcenv-tcp-tls", "rpcenv-tcp-otel"}
	supportsSlowHeap = []string{"rpcenv-inproc", "rpcenv-tcp", "rpcenv-quic", "grpc-stream", "raw-tcp", "chan", "rpcenv-tcp-sealed", "rpcenv-tcp-tls", "rpcenv-tcp-otel"}
)

// TestSystemsCarryBulkBesideAsks checks every system's bulk-ask setup:
// asks come back byte for byte while bulk messages cross the same
// connection, every bulk message reaches the receiver, and closing leaves
// no goroutine behind.
func TestSystemsCarryBulkBesideAsks(t *testing.T) {
	const bulks = 3
	for _, sys := range Systems() {
		t.Run(BenchName(sys), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			var got atomic.Int64
			all := make(chan struct{})
			ba, err := sys.NewBulkAsker(func() {
				if got.Add(1) == bulks {
					close(all)
				}
			})
			if errors.Is(err, errors.ErrUnsupported) {
				if slices.Contains(supportsBulkAsk, sys.Name()) {
					t.Fatalf("unsupported: %v", err)
				}
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := ba.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			}()
			sent := make(chan error, 1)
			go func() { // ends after bulks sends, each bounded by the system
				bulk := payload(1 << 20)
				for range bulks {
					if err := ba.SendBulk(bulk); err != nil {
						sent <- err
						return
					}
				}
				sent <- nil
			}()
			req := payload(64)
			for k := range 10 {
				reply, err := ba.Ask(req)
				if err == nil {
					err = sameBytes(reply, req)
				}
				if err != nil {
					t.Fatalf("ask %d: %v", k, err)
				}
			}
			if err := <-sent; err != nil {
				t.Fatalf("bulk: %v", err)
			}
			select {
			case <-all:
			case <-time.After(Timeout):
				t.Fatalf("the receiver got %d bulk messages of %d", got.Load(), bulks)
			}
		})
	}
}

// TestSlowSendersReachTheReceiverOneAtATime checks every system's
// slow-heap setup: the receiver gets messages one at a time, and Close
// returns promptly with a backlog queued, leaving no goroutine behind.
func TestSlowSendersReachTheReceiverOneAtATime(t *testing.T) {
	const want = 10 // messages received before the sender stops
	for _, sys := range Systems() {
		t.Run(BenchName(sys), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			var fast atomic.Bool
			var got, inside, overlaps atomic.Int64
			enough := make(chan struct{})
			snd, err := sys.NewSlowSender(func() {
				if inside.Add(1) > 1 {
					overlaps.Add(1)
				}
				if !fast.Load() {
					time.Sleep(100 * time.Microsecond)
				}
				inside.Add(-1)
				if got.Add(1) == want {
					close(enough)
				}
			})
			if errors.Is(err, errors.ErrUnsupported) {
				if slices.Contains(supportsSlowHeap, sys.Name()) {
					t.Fatalf("unsupported: %v", err)
				}
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			msg := payload(1 << 10)
			deadline := time.Now().Add(Timeout)
		send: // until the receiver has enough: raw-tcp's buffer holds 64 messages
			for {
				select {
				case <-enough:
					break send
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("the receiver got %d messages in %v", got.Load(), Timeout)
				}
				if err := snd.Send(msg); err != nil {
					t.Fatalf("send: %v", err)
				}
			}
			fast.Store(true)
			start := time.Now()
			if err := snd.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("close took %v", d)
			}
			if n := overlaps.Load(); n > 0 {
				t.Errorf("receive ran concurrently with itself %d times", n)
			}
		})
	}
}

// TestBulkAskRunsEndToEnd runs the bulk-ask case through Run on every
// system, with tiny parameters.
func TestBulkAskRunsEndToEnd(t *testing.T) {
	c := Case{BulkAsk, BulkAskPayload, 1}
	var progress strings.Builder
	res, err := Run(Options{Systems: Systems(), Cases: Cases(BulkAsk), Rounds: 1, Benchtime: time.Millisecond,
		Stress: Stress{BulkAsks: 10, BulkSize: 1 << 20}, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	for _, sys := range Systems() {
		x, ok := res.Get(sys.Name(), c)
		switch {
		case !ok:
			t.Errorf("%s: no result", sys.Name())
		case !slices.Contains(supportsBulkAsk, sys.Name()):
			if !x.NA {
				t.Errorf("%s: %+v, want n/a", sys.Name(), x)
			}
		case x.NA || x.Err != "":
			t.Errorf("%s: n/a %v, failed %q", sys.Name(), x.NA, x.Err)
		case x.N != 10 || x.P50 <= 0 || x.P99 < x.P50 || x.Max < x.P99 || x.Bulk < 0:
			t.Errorf("%s: %+v", sys.Name(), x)
		}
	}
	if !strings.Contains(progress.String(), "bulk meanwhile") {
		t.Errorf("no progress lines:\n%s", progress.String())
	}
}

// TestSlowHeapRunsEndToEnd runs the slow-heap case through Run on one
// system of each kind, briefly, and checks that the receiver was slow and
// the figures are in range.
func TestSlowHeapRunsEndToEnd(t *testing.T) {
	systems, err := SelectSystems("rpcenv-tcp,grpc-unary,grpc-stream,chan")
	if err != nil {
		t.Fatal(err)
	}
	c := Case{SlowHeap, SlowHeapPayload, 1}
	const slowFor = 100 * time.Millisecond
	res, err := Run(Options{Systems: systems, Cases: Cases(SlowHeap), Rounds: 1, Benchtime: time.Millisecond, Stress: Stress{SlowFor: slowFor}})
	if err != nil {
		t.Fatal(err)
	}
	for _, sys := range systems {
		x, ok := res.Get(sys.Name(), c)
		switch {
		case !ok:
			t.Errorf("%s: no result", sys.Name())
		case sys.Name() == "grpc-unary":
			if !x.NA {
				t.Errorf("%s: %+v, want n/a", sys.Name(), x)
			}
		case x.NA || x.Err != "":
			t.Errorf("%s: n/a %v, failed %q", sys.Name(), x.NA, x.Err)
		case x.Received < 1 || x.Sent < x.Received || x.Sending < slowFor || x.Closing <= 0 || x.HeapGrowth < 0 || x.Capped:
			t.Errorf("%s: %+v", sys.Name(), x)
		case x.Received > int(x.Sending/SlowDelay)+1:
			t.Errorf("%s: received %d in %v: the receiver was not slow", sys.Name(), x.Received, x.Sending)
		}
	}
}

// hoarder is a system whose slow sender keeps a copy of every message:
// a queue without bound.
type hoarder struct{ chanSystem }

func (hoarder) Name() string { return "hoarder" }

func (hoarder) NewSlowSender(func()) (SlowSender, error) { return &hoard{}, nil }

type hoard struct{ kept [][]byte }

func (h *hoard) Send(msg []byte) error {
	h.kept = append(h.kept, append([]byte(nil), msg...))
	return nil
}

func (h *hoard) Close() error { return nil }

func TestSlowHeapCutsARunShortAtTheHeapCap(t *testing.T) {
	c := Case{SlowHeap, 64 << 10, 1}
	const heapCap = 16 << 20
	res, err := Run(Options{Systems: []System{hoarder{}}, Cases: []Case{c}, Rounds: 1, Benchtime: time.Millisecond,
		Stress: Stress{SlowFor: Timeout, HeapCap: heapCap}})
	if err != nil {
		t.Fatal(err)
	}
	x, _ := res.Get("hoarder", c)
	if x.Err != "" || !x.Capped || x.HeapGrowth <= heapCap || x.Sending >= Timeout || x.Sent < heapCap/c.Payload {
		t.Errorf("%+v: want a run cut short past %d bytes", x, heapCap)
	}
	md := strings.Join(strings.Fields(Markdown(res, fakeMachine())), " ")
	if !strings.Contains(md, "| hoarder | ≥ ") {
		t.Errorf("the report does not show the cut:\n%s", md)
	}
}

// stuck is a system whose asks and sends wait until Close.
type stuck struct{ chanSystem }

func (stuck) Name() string { return "stuck" }

func (stuck) NewBulkAsker(onBulk func()) (BulkAsker, error) {
	return &stuckSetup{onBulk: onBulk, closed: make(chan struct{})}, nil
}

func (stuck) NewSlowSender(func()) (SlowSender, error) {
	return &stuckSetup{closed: make(chan struct{})}, nil
}

func (stuck) NewStreamer() (Streamer, error) {
	return &stuckSetup{closed: make(chan struct{})}, nil
}

type stuckSetup struct {
	onBulk func()
	closed chan struct{}
	once   sync.Once
	warm   int
}

// Ask answers the warm-up asks, then waits for Close.
func (s *stuckSetup) Ask(req []byte) ([]byte, error) {
	if s.warm < warmCalls {
		s.warm++
		return req, nil
	}
	<-s.closed
	return nil, errClosed
}

func (s *stuckSetup) SendBulk([]byte) error {
	select {
	case <-s.closed:
		return errClosed
	default:
		s.onBulk()
		return nil
	}
}

func (s *stuckSetup) Send([]byte) error {
	<-s.closed
	return errClosed
}

// Stream answers the warm-up stream, then waits for Close.
func (s *stuckSetup) Stream(_ []byte, n int64) (int64, error) {
	if n == streamWarm {
		return n, nil
	}
	<-s.closed
	return 0, errClosed
}

func (s *stuckSetup) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func TestStressRunsThatHangAreReportedAsFailed(t *testing.T) {
	const timeout = 200 * time.Millisecond
	var progress strings.Builder
	start := time.Now()
	res, err := Run(Options{Systems: []System{stuck{}}, Cases: Cases(BulkAsk, SlowHeap, Stream), Rounds: 3, Benchtime: time.Millisecond,
		Stress: Stress{BulkAsks: 5, BulkSize: 1, SlowFor: 10 * time.Millisecond, StreamBytes: 1 << 30, Timeout: timeout}, Progress: &progress})
	if err != nil {
		t.Fatalf("Run failed instead of reporting: %v", err)
	}
	if d := time.Since(start); d > 10*timeout {
		t.Errorf("Run took %v: the failed cases ran again", d)
	}
	for _, c := range Cases(BulkAsk, SlowHeap, Stream) {
		x, _ := res.Get("stuck", c)
		if !strings.Contains(x.Err, "no result within") {
			t.Errorf("%s: %+v, want a failure for want of a result", c, x)
		}
	}
	if n := strings.Count(progress.String(), "FAILED"); n != 3 {
		t.Errorf("%d failures in the progress, want 3:\n%s", n, progress.String())
	}
	md := strings.Join(strings.Fields(Markdown(res, fakeMachine())), " ")
	for _, want := range []string{"| stuck | failed | failed | failed | failed |", "- stuck: no result within"} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
	if stream := section(md, "Bulk data through a stream"); !strings.Contains(stream, "| stuck | failed | failed | Failed: - stuck: no result within") {
		t.Errorf("the stream table does not show the failure:\n%s", stream)
	}
}

// TestStreamRunsEndToEnd runs the stream case through Run on every
// system, in the report's short form: each system with streams moves
// every byte and has a rate and a heap growth; the others are n/a.
func TestStreamRunsEndToEnd(t *testing.T) {
	const bytes = 32 << 20 // the report's -short
	c := Case{Stream, StreamChunk, 1}
	var progress strings.Builder
	res, err := Run(Options{Systems: Systems(), Cases: Cases(Stream), Rounds: 1, Benchtime: time.Millisecond,
		Stress: Stress{StreamBytes: bytes}, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	for _, sys := range Systems() {
		x, ok := res.Get(sys.Name(), c)
		switch {
		case !ok:
			t.Errorf("%s: no result", sys.Name())
		case !slices.Contains(supportsStream, sys.Name()):
			if !x.NA {
				t.Errorf("%s: %+v, want n/a", sys.Name(), x)
			}
		case x.NA || x.Err != "":
			t.Errorf("%s: n/a %v, failed %q", sys.Name(), x.NA, x.Err)
		case x.N != bytes || x.Rate <= 0 || x.HeapGrowth < 0:
			t.Errorf("%s: %+v", sys.Name(), x)
		}
	}
	if !strings.Contains(progress.String(), "32 MiB in ") {
		t.Errorf("no progress lines:\n%s", progress.String())
	}
	md := strings.Join(strings.Fields(Markdown(res, fakeMachine())), " ")
	for _, want := range []string{"### Bulk data through a stream", "| chan | n/a | n/a |", "| rpcenv-tcp | "} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
}
