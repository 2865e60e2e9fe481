package core

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// recordLog keeps the records logged through it.
type recordLog struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *recordLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *recordLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *recordLog) WithGroup(string) slog.Handler            { return l }
func (l *recordLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r.Clone())
	l.mu.Unlock()
	return nil
}

// deadLines returns the dead-letter lines logged so far, each as the
// value of its not_logged_since_last attribute (0 when absent).
func (l *recordLog) deadLines() []uint64 { return l.lines("rpcenv: dead letter") }

// lines returns the lines with message msg logged so far, each as the
// value of its not_logged_since_last attribute (0 when absent).
func (l *recordLog) lines(msg string) []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var lines []uint64
	for _, r := range l.recs {
		if r.Message != msg {
			continue
		}
		var skipped uint64
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "not_logged_since_last" {
				skipped = a.Value.Uint64()
			}
			return true
		})
		lines = append(lines, skipped)
	}
	return lines
}

func TestDeadLettersAreAllCountedButLoggedAtMostOncePerInterval(t *testing.T) {
	log := &recordLog{}
	var seen int
	e, err := NewEnv(Config{Name: "dl", Logger: slog.New(log), OnDeadLetter: func(d DeadLetter) {
		if !errors.Is(d.Reason, ErrEndpointNotFound) {
			t.Errorf("dead letter %+v, want reason ErrEndpointNotFound", d)
		}
		seen++ // sends from this goroutine: OnDeadLetter runs on it
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	e.deadLog.every = time.Hour // no two lines in this test by the clock

	missing := newRef(e, "missing", e.addr, e.id, e.name)
	const n = 100
	for range n {
		if err := missing.Send("x"); !errors.Is(err, ErrEndpointNotFound) {
			t.Fatalf("Send to a missing endpoint: %v, want ErrEndpointNotFound", err)
		}
	}
	if got := e.DeadLetters(); got != n {
		t.Fatalf("DeadLetters = %d, want %d", got, n)
	}
	if seen != n {
		t.Fatalf("OnDeadLetter saw %d, want %d", seen, n)
	}
	if lines := log.deadLines(); len(lines) != 1 || lines[0] != 0 {
		t.Fatalf("dead-letter log lines (their not_logged_since_last): %v, want one line, the first", lines)
	}

	// Once the interval has passed, the next dead letter is logged with
	// the number left out since the last line.
	e.deadLog.last.Store(1) // long ago
	if err := missing.Send("x"); !errors.Is(err, ErrEndpointNotFound) {
		t.Fatal(err)
	}
	if lines := log.deadLines(); len(lines) != 2 || lines[1] != n-1 {
		t.Fatalf("dead-letter log lines (their not_logged_since_last): %v, want a second line saying %d", lines, n-1)
	}
}

func TestConnectionsLimitFramesToOneChunk(t *testing.T) {
	for _, secret := range [][]byte{nil, []byte("s3cret")} {
		e := newTestEnv(t, "limits", secret)
		want := maxFrame
		if secret != nil {
			want += sealOverhead // a chunk frame, sealed
		}
		if o := e.connOptions(); o.MaxFrameSize != want || want >= e.maxMsg {
			t.Errorf("secret %q: connOptions = %+v; want frames of at most %d bytes (one chunk), below MaxMessageSize %d", secret, o, want, e.maxMsg)
		}
	}
}

// A flood of failed handshakes is counted whole but logged once per
// interval, the next line saying how many were left out.
func TestRefusedConnectionsAreAllCountedButLoggedAtMostOncePerInterval(t *testing.T) {
	log := &recordLog{}
	e, err := NewEnv(Config{Name: "refuser", Logger: slog.New(log)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	e.refusedLog.every = time.Hour // no two lines in this test by the clock
	refuse := func() {
		ours, theirs := newPipe()
		theirs.Close() // the peer hangs up before its hello
		e.wg.Add(1)
		e.accept(ours)
	}
	const n = 50
	for range n {
		refuse()
	}
	if got := e.RefusedConnections(); got != n {
		t.Fatalf("RefusedConnections = %d, want %d", got, n)
	}
	if lines := log.lines("rpcenv: refused connection"); len(lines) != 1 || lines[0] != 0 {
		t.Fatalf("refused-connection lines (their not_logged_since_last): %v, want one line, the first", lines)
	}
	e.refusedLog.last.Store(1) // long ago
	refuse()
	if lines := log.lines("rpcenv: refused connection"); len(lines) != 2 || lines[1] != n-1 {
		t.Fatalf("refused-connection lines (their not_logged_since_last): %v, want a second line saying %d", lines, n-1)
	}
}
