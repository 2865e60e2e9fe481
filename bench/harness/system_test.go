package harness

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// noAsks are the systems without asks (and without one-way messages):
// the floors of the stream workload only.
var noAsks = []string{"raw-quic"}

// TestSystemsEchoAndCount checks every system at every payload size:
// asks with one caller and with eight come back byte for byte, one-way
// messages are counted exactly where the system has them, and closing
// leaves no goroutine behind.
func TestSystemsEchoAndCount(t *testing.T) {
	for _, sys := range Systems() {
		for _, size := range Payloads {
			t.Run(BenchName(sys)+"/"+SizeName(size), func(t *testing.T) {
				req := payload(size)
				for _, callers := range []int{1, 8} {
					t.Run(fmt.Sprintf("ask-%d", callers), func(t *testing.T) { checkAsks(t, sys, req, callers) })
				}
				t.Run("oneway", func(t *testing.T) { checkOneWay(t, sys, req) })
				goleak.VerifyNone(t)
			})
		}
	}
}

func checkAsks(t *testing.T, sys System, req []byte, callers int) {
	a, err := sys.NewAsker(callers)
	if errors.Is(err, errors.ErrUnsupported) && slices.Contains(noAsks, sys.Name()) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := a.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	fns := a.Callers()
	if len(fns) != callers {
		t.Fatalf("%d callers, want %d", len(fns), callers)
	}
	var wg sync.WaitGroup
	for i, call := range fns {
		wg.Go(func() {
			for k := range 5 {
				reply, err := call(req)
				if err == nil {
					err = sameBytes(reply, req)
				}
				if err != nil {
					t.Errorf("caller %d, ask %d: %v", i, k, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func checkOneWay(t *testing.T, sys System, msg []byte) {
	s, err := sys.NewSender()
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("%s has no one-way messages", sys.Name())
	}
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	for _, n := range []int{1, 100, 37} { // batches in a row, each counted exactly
		if err := s.SendN(msg, n); err != nil {
			t.Fatalf("batch of %d: %v", n, err)
		}
	}
}

// supportsStream are the systems with the stream workload; the others
// must say errors.ErrUnsupported.
var supportsStream = []string{"rpcenv-inproc", "rpcenv-tcp", "rpcenv-quic", "grpc-stream", "raw-tcp", "raw-quic", "rpcenv-tcp-sealed", "rpcenv-tcp-tls", "rpcenv-tcp-otel"}

// TestSystemsStreamEveryByte checks every system's stream setup: streams
// one after another on one setup, of sizes that are and are not a
// multiple of the chunk, the empty one included, each counted exactly by
// the server; and closing leaves no goroutine behind.
func TestSystemsStreamEveryByte(t *testing.T) {
	chunk := payload(StreamChunk)
	for _, sys := range Systems() {
		t.Run(BenchName(sys), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			st, err := sys.NewStreamer()
			if errors.Is(err, errors.ErrUnsupported) {
				if slices.Contains(supportsStream, sys.Name()) {
					t.Fatalf("unsupported: %v", err)
				}
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(supportsStream, sys.Name()) {
				t.Errorf("%s has streams: add it to supportsStream", sys.Name())
			}
			defer func() {
				if err := st.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			}()
			for _, n := range []int64{3<<20 + 5, 0, 1, StreamChunk, 4 * StreamChunk} {
				got, err := st.Stream(chunk, n)
				if err != nil {
					t.Fatalf("stream of %d bytes: %v", n, err)
				}
				if got != n {
					t.Errorf("stream of %d bytes: the server counted %d", n, got)
				}
			}
		})
	}
}

// TestStreamFailsOnceClosed checks that a Stream after Close fails
// instead of hanging, on every system with streams.
func TestStreamFailsOnceClosed(t *testing.T) {
	chunk := payload(StreamChunk)
	for _, sys := range Systems() {
		if !slices.Contains(supportsStream, sys.Name()) {
			continue
		}
		t.Run(BenchName(sys), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			st, err := sys.NewStreamer()
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			if _, err := st.Stream(chunk, 1<<20); err == nil {
				t.Errorf("a stream after Close succeeded")
			}
		})
	}
}
