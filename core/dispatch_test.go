package core

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// handlerFunc is an Endpoint from a function, for the package's own tests.
type handlerFunc func(c *Context, msg any) error

func (f handlerFunc) Receive(c *Context, msg any) error { return f(c, msg) }

// TestMaxWorkersHoldsUnder10000QueuedMessages: 10,000 messages queued
// for 8 endpoints of concurrency 4 (32 could run at once) run on at most
// Config.MaxWorkers workers, every one is handled, and the cap is reached.
func TestMaxWorkersHoldsUnder10000QueuedMessages(t *testing.T) {
	const cap, endpoints, messages = 4, 8, 10000
	e, err := NewEnv(Config{MaxWorkers: cap})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())

	gate := make(chan struct{})
	entered := make(chan struct{}, messages)
	var inside, most atomic.Int32
	var handled sync.WaitGroup
	handled.Add(messages)
	h := handlerFunc(func(c *Context, msg any) error {
		n := inside.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		entered <- struct{}{}
		<-gate
		inside.Add(-1)
		handled.Done()
		return nil
	})
	var refs []*Ref
	for i := range endpoints {
		r, err := e.Register(fmt.Sprintf("e%d", i), h, WithConcurrency(4))
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	for i := range messages {
		if err := refs[i%endpoints].Send(i); err != nil {
			t.Fatal(err)
		}
	}
	for range cap {
		<-entered // the pool is saturated: cap handlers wait on the gate
	}
	close(gate)
	handled.Wait()
	if got := most.Load(); got != cap {
		t.Errorf("at most %d handlers ran at once; want exactly MaxWorkers (%d)", got, cap)
	}
	e.pool.mu.Lock()
	peak := e.pool.peak
	e.pool.mu.Unlock()
	if peak > cap {
		t.Errorf("the pool had %d workers at once; MaxWorkers is %d", peak, cap)
	}
}

// TestIsolatedEndpointAnswersWhileThePoolIsSaturated: with every worker
// of the shared pool held by blocking handlers, an endpoint registered
// WithIsolation still answers an ask, while a plain endpoint's message
// waits for a worker.
func TestIsolatedEndpointAnswersWhileThePoolIsSaturated(t *testing.T) {
	const cap = 2
	e, err := NewEnv(Config{MaxWorkers: cap})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())

	gate := make(chan struct{})
	entered := make(chan struct{}, cap)
	blocker, err := e.Register("blocker", handlerFunc(func(c *Context, msg any) error {
		entered <- struct{}{}
		<-gate
		return nil
	}), WithConcurrency(cap))
	if err != nil {
		t.Fatal(err)
	}
	var plainRan atomic.Bool
	plainDone := make(chan struct{})
	plain, err := e.Register("plain", handlerFunc(func(c *Context, msg any) error {
		plainRan.Store(true)
		close(plainDone)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	heartbeat, err := e.Register("heartbeat", handlerFunc(func(c *Context, msg any) error {
		return c.Reply("alive")
	}), WithIsolation())
	if err != nil {
		t.Fatal(err)
	}

	for range cap {
		if err := blocker.Send(1); err != nil {
			t.Fatal(err)
		}
	}
	for range cap {
		<-entered
	}
	if err := plain.Send(1); err != nil { // no worker for it: it waits
		t.Fatal(err)
	}
	got, err := heartbeat.Ask(context.Background(), "ping")
	if err != nil || got != "alive" {
		t.Fatalf("ask to the isolated endpoint with the pool saturated: %v, %v", got, err)
	}
	if plainRan.Load() {
		t.Fatal("a plain endpoint ran while MaxWorkers handlers held every worker")
	}
	close(gate)
	<-plainDone // the first worker free takes it
}

// TestABacklogGivesItsWorkerUpToThoseWaiting: at the cap, an endpoint
// with a long backlog yields its worker after a batch, so an endpoint
// that queued later runs before the backlog is drained.
func TestABacklogGivesItsWorkerUpToThoseWaiting(t *testing.T) {
	e, err := NewEnv(Config{MaxWorkers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())

	const backlog = 1000
	gate := make(chan struct{})
	var order []string // appended by one worker at a time: MaxWorkers is 1
	var mu sync.Mutex
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	done := make(chan struct{})
	busy, err := e.Register("busy", handlerFunc(func(c *Context, msg any) error {
		if msg.(int) == 0 {
			<-gate
		}
		note("busy")
		if msg.(int) == backlog-1 {
			close(done)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	other, err := e.Register("other", handlerFunc(func(c *Context, msg any) error {
		note("other")
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	for i := range backlog {
		if err := busy.Send(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Send(0); err != nil { // waits for the only worker, held by busy
		t.Fatal(err)
	}
	close(gate)
	<-done
	mu.Lock()
	defer mu.Unlock()
	at := -1
	for i, s := range order {
		if s == "other" {
			at = i
		}
	}
	if at < 0 || at >= backlog {
		t.Fatalf("the waiting endpoint ran at position %d of %d: the backlog kept the only worker", at, len(order))
	}
}
