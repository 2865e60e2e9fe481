package inproc

import (
	"errors"
	"testing"
	"time"
)

// waitForWaiter polls until a pusher waits on q's space: no signal tells
// a test that a goroutine has parked.
func waitForWaiter(t *testing.T, q *queue) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		q.mu.Lock()
		n := q.waiters
		q.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the pusher never waited for space")
		}
		time.Sleep(time.Millisecond)
	}
}

// fill pushes 1 KiB frames until more than maxUnread bytes are unread.
func fill(t *testing.T, q *queue) int {
	t.Helper()
	n := 0
	for q.bytes <= maxUnread {
		if err := q.push(make([]byte, 1<<10)); err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func TestAFullQueueMakesTheWriterWaitUntilTheReaderDrainsIt(t *testing.T) {
	q := newQueue()
	n := fill(t, q)
	pushed := make(chan error, 1)
	go func() { pushed <- q.push([]byte("last")) }()
	waitForWaiter(t, q)
	for range n {
		if _, err := q.pop(); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-pushed; err != nil {
		t.Fatalf("push after the reader drained the queue: %v", err)
	}
	if f, err := q.pop(); err != nil || string(f) != "last" {
		t.Fatalf("pop = %q, %v; want the frame pushed while the queue was full", f, err)
	}
}

func TestClosingEitherEndReleasesAWaitingWriter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		close func(*queue)
		want  error
	}{
		{"reader closed", (*queue).shut, errReset},
		{"writer closed", (*queue).finish, nil}, // net.ErrClosed, checked below
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue()
			fill(t, q)
			pushed := make(chan error, 1)
			go func() { pushed <- q.push([]byte("x")) }()
			waitForWaiter(t, q)
			tc.close(q)
			err := <-pushed
			if err == nil {
				t.Fatal("push into a closed queue succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("push: %v, want %v", err, tc.want)
			}
		})
	}
}
