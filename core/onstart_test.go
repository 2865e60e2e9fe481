package core_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/inproc"
)

var errNotReady = errors.New("the database is not there")

// quiet drops the envs' log lines: the dead letters these tests cause are
// checked through Config.OnDeadLetter.
var quiet = slog.New(slog.DiscardHandler)

// starting is an endpoint whose OnStart waits for release, then returns
// startErr or panics with startPanic. Every callback reports on a channel.
type starting struct {
	entered    chan struct{} // closed when OnStart begins
	release    chan struct{} // closed by the test to let OnStart end
	startErr   error
	startPanic any
	received   chan any      // what Receive got
	errs       chan error    // what OnError got
	stopped    chan struct{} // closed by OnStop
}

func newStarting() *starting {
	return &starting{
		entered:  make(chan struct{}),
		release:  make(chan struct{}),
		received: make(chan any, 16),
		errs:     make(chan error, 16),
		stopped:  make(chan struct{}),
	}
}

func (s *starting) OnStart(*core.Ref) error {
	close(s.entered)
	<-s.release
	if s.startPanic != nil {
		panic(s.startPanic)
	}
	return s.startErr
}

func (s *starting) Receive(c *core.Context, msg any) error {
	s.received <- msg
	if c.IsAsk() {
		return c.Reply(msg)
	}
	return nil
}

func (s *starting) OnError(err error) { s.errs <- err }
func (s *starting) OnStop()           { close(s.stopped) }

// signalCtx tells when an ask made with it has been queued: Ref.Ask
// reads Done only once the ask is in the endpoint's inbox and it waits for
// the answer.
type signalCtx struct {
	context.Context
	once    sync.Once
	waiting chan struct{} // closed at the first Done
}

func newSignalCtx() *signalCtx {
	return &signalCtx{Context: context.Background(), waiting: make(chan struct{})}
}

func (c *signalCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.waiting) })
	return c.Context.Done()
}

// recv waits for a value on ch, failing the test if none comes.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("waited 10s for %s", what)
		panic("unreachable")
	}
}

// TestOnStartErrorStopsTheEndpointAndRejectsWhatQueued: an error from
// OnStart goes to OnError, wrapped; the messages that queued while
// OnStart ran are never delivered (a send is a dead letter, an ask fails
// naming the endpoint); OnStop runs; then the name is free: messages fail
// with ErrEndpointNotFound, lookups too, and it can be registered again.
func TestOnStartErrorStopsTheEndpointAndRejectsWhatQueued(t *testing.T) {
	dead := make(chan core.DeadLetter, 16)
	ns := inproc.New()
	e, err := core.NewEnv(core.Config{Name: "srv", Listen: "inproc://srv", Transports: []core.Transport{ns},
		OnDeadLetter: func(d core.DeadLetter) { dead <- d }, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())

	s := newStarting()
	s.startErr = errNotReady
	ref, err := e.Register("db", s)
	if err != nil {
		t.Fatalf("Register: %v (OnStart runs after Register returns: its error cannot be Register's)", err)
	}
	recv(t, s.entered, "OnStart to begin")

	// Queued behind OnStart: a send, then an ask.
	if err := ref.Send("queued send"); err != nil {
		t.Fatalf("a send while OnStart runs: %v; want it queued", err)
	}
	asked := make(chan error, 1)
	ctx := newSignalCtx()
	go func() {
		_, err := ref.Ask(ctx, "queued ask")
		asked <- err
	}()
	recv(t, ctx.waiting, "the ask to be queued")
	close(s.release)

	startErr := recv(t, s.errs, "OnError")
	if !errors.Is(startErr, errNotReady) || !strings.Contains(startErr.Error(), "OnStart of "+ref.String()) {
		t.Errorf("OnError got %v; want OnStart's error, wrapped, naming %s", startErr, ref)
	}
	d := recv(t, dead, "the queued send's dead letter")
	if d.Target != ref.String() || d.Type != "string" || d.Sender != "" || !errors.Is(d.Reason, core.ErrEndpointNotFound) || !strings.Contains(d.Reason.Error(), "OnStart failed") {
		t.Errorf("dead letter %+v; want the send to %s from this env (Sender \"\"), ErrEndpointNotFound because OnStart failed", d, ref)
	}
	err = recv(t, asked, "the queued ask's answer")
	if !errors.Is(err, core.ErrEndpointNotFound) || !strings.Contains(err.Error(), ref.String()) || !strings.Contains(err.Error(), "OnStart failed") {
		t.Errorf("the queued ask: %v; want ErrEndpointNotFound naming %s and saying OnStart failed", err, ref)
	}
	var remote *core.RemoteError
	if errors.As(err, &remote) {
		t.Errorf("the queued ask's error is a *RemoteError (%v): the env refused it, the endpoint did not fail it", err)
	}
	recv(t, s.stopped, "OnStop") // OnStop runs after a failed OnStart

	select {
	case msg := <-s.received:
		t.Errorf("Receive got %v from an endpoint whose OnStart failed", msg)
	default:
	}
	select {
	case err := <-s.errs:
		t.Errorf("OnError got a second error: %v", err)
	default:
	}

	// The endpoint is gone: later messages and lookups fail.
	if err := ref.Send("late send"); !errors.Is(err, core.ErrEndpointNotFound) {
		t.Errorf("a send after OnStart failed: %v; want ErrEndpointNotFound", err)
	}
	if _, err := ref.Ask(t.Context(), "late ask"); !errors.Is(err, core.ErrEndpointNotFound) {
		t.Errorf("an ask after OnStart failed: %v; want ErrEndpointNotFound", err)
	}
	cli, err := core.NewEnv(core.Config{Name: "cli", Transports: []core.Transport{ns}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Shutdown(context.Background())
	if _, err := cli.Lookup(t.Context(), ref.String()); !errors.Is(err, core.ErrEndpointNotFound) {
		t.Errorf("a lookup from another env after OnStart failed: %v; want ErrEndpointNotFound", err)
	}

	// The name is free again.
	again := newStarting()
	close(again.release)
	ref2, err := e.Register("db", again)
	if err != nil {
		t.Fatalf("Register the name again: %v", err)
	}
	if v, err := ref2.Ask(t.Context(), "hello"); err != nil || v != "hello" {
		t.Fatalf("an ask to the endpoint registered again: %v, %v", v, err)
	}
}

// TestOnStartErrorWithoutQueuedMessagesStillRunsOnStop: OnStop runs after
// a failed OnStart even when nothing was sent, and the endpoint never
// gets a message.
func TestOnStartErrorWithoutQueuedMessagesStillRunsOnStop(t *testing.T) {
	e, err := core.NewEnv(core.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	s := newStarting()
	s.startErr = errNotReady
	close(s.release)
	ref, err := e.Register("db", s)
	if err != nil {
		t.Fatal(err)
	}
	if err := recv(t, s.errs, "OnError"); !errors.Is(err, errNotReady) {
		t.Errorf("OnError got %v, want OnStart's error", err)
	}
	recv(t, s.stopped, "OnStop")
	if err := ref.Send("late"); !errors.Is(err, core.ErrEndpointNotFound) {
		t.Errorf("a send after OnStart failed: %v; want ErrEndpointNotFound", err)
	}
}

// TestOnStartPanicStopsTheEndpointAsAnError: a panic in OnStart is
// recovered, reported to OnError as a *PanicError, and stops the
// endpoint as a returned error does: what queued behind OnStart is
// rejected, OnStop runs, and the name is free.
func TestOnStartPanicStopsTheEndpointAsAnError(t *testing.T) {
	e, err := core.NewEnv(core.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	s := newStarting()
	s.startPanic = "no config"
	ref, err := e.Register("db", s)
	if err != nil {
		t.Fatal(err)
	}
	recv(t, s.entered, "OnStart to begin")
	asked := make(chan error, 1)
	go func() {
		_, err := ref.Ask(context.Background(), "queued ask")
		asked <- err
	}()
	close(s.release)

	var perr *core.PanicError
	if err := recv(t, s.errs, "OnError"); !errors.As(err, &perr) || perr.Value != "no config" || perr.Endpoint != ref.String() {
		t.Fatalf("OnError got %v; want a *PanicError from %s with the value %q", err, ref, "no config")
	}
	recv(t, s.stopped, "OnStop")
	if err := recv(t, asked, "the ask made during OnStart"); !errors.Is(err, core.ErrEndpointNotFound) {
		t.Errorf("an ask made during the OnStart that panicked: %v; want ErrEndpointNotFound", err)
	}
	select {
	case msg := <-s.received:
		t.Errorf("Receive got %v from an endpoint whose OnStart panicked", msg)
	default:
	}
	if err := ref.Send("late"); !errors.Is(err, core.ErrEndpointNotFound) {
		t.Errorf("a send after OnStart panicked: %v; want ErrEndpointNotFound", err)
	}
}
