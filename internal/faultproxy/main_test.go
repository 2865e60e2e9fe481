package faultproxy

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// safety bounds every wait, so that a broken proxy fails a test instead
// of hanging it. No test measures it.
const safety = 10 * time.Second

// tracer counts the events a proxy reports, for a test to wait on what it
// cannot observe from outside.
type tracer struct {
	mu      sync.Mutex
	n       map[traced]int
	changed chan struct{} // closed and replaced at every event
}

type traced struct {
	ev  event
	dir Direction
}

// newTracer returns a tracer and a default config that reports to it.
func newTracer() (*tracer, config) {
	tr := &tracer{n: make(map[traced]int), changed: make(chan struct{})}
	cfg := defaultConfig()
	cfg.hook = tr.hook
	return tr, cfg
}

func (tr *tracer) hook(ev event, d Direction) {
	tr.mu.Lock()
	tr.n[traced{ev, d}]++
	close(tr.changed)
	tr.changed = make(chan struct{})
	tr.mu.Unlock()
}

// await waits until the events of the given kinds add up to want.
func (tr *tracer) await(t *testing.T, want int, kinds ...traced) {
	t.Helper()
	bound := time.NewTimer(safety)
	defer bound.Stop()
	for {
		tr.mu.Lock()
		got := 0
		for _, k := range kinds {
			got += tr.n[k]
		}
		changed := tr.changed
		tr.mu.Unlock()
		if got >= want {
			return
		}
		select {
		case <-changed:
		case <-bound.C:
			t.Fatalf("saw %d of %d events %v within %v", got, want, kinds, safety)
		}
	}
}

// randomBytes returns n bytes from a seeded source, the same every run.
func randomBytes(seed byte, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readFull reads exactly n bytes from c.
func readFull(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

func write(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write %d bytes: %v", len(b), err)
	}
}
