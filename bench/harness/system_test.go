package harness

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

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
