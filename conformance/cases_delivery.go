package conformance

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rpcenv/rpcenv/core"
)

// topology places the sender relative to the endpoint.
type topology struct {
	name string
	// make returns the env that holds the endpoint and the env that
	// sends to it.
	make func(h *harness) (at, from *core.Env)
}

var (
	sameEnv    = topology{"SameEnv", func(h *harness) (*core.Env, *core.Env) { e := h.server("solo"); return e, e }}
	remote     = topology{"Remote", func(h *harness) (*core.Env, *core.Env) { return h.server("at"), h.server("from") }}
	clientMode = topology{"FromClientMode", func(h *harness) (*core.Env, *core.Env) { return h.server("at"), h.client("from") }}
)

// across makes one case per topology.
func across(name string, tops []topology, run func(t *testing.T, h *harness, at, from *core.Env)) []testCase {
	var cs []testCase
	for _, top := range tops {
		cs = append(cs, testCase{name + "/" + top.name, func(t *testing.T, h *harness) {
			at, from := top.make(h)
			run(t, h, at, from)
		}})
	}
	return cs
}

var (
	all      = []topology{sameEnv, remote, clientMode}
	networks = []topology{remote, clientMode}
)

func concat(lists ...[]testCase) []testCase {
	var out []testCase
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

var deliveryCases = concat(
	across("SendsArriveInOrder", all, func(t *testing.T, h *harness, at, from *core.Env) {
		got := make(chan Seq, 100)
		h.register(at, "sink", &probe{receive: func(c *core.Context, msg any) error {
			got <- msg.(Seq)
			return nil
		}})
		ref := h.lookup(from, at, "sink")
		for i := range 100 {
			if err := ref.Send(Seq{N: i}); err != nil {
				t.Fatalf("Send %d: %v", i, err)
			}
		}
		for i := range 100 {
			if s := recv(t, got, fmt.Sprintf("message %d", i)); s.N != i {
				t.Fatalf("message %d arrived as number %d: out of order", i, s.N)
			}
		}
	}),
	across("AskGetsTheReply", all, func(t *testing.T, h *harness, at, from *core.Env) {
		h.register(at, "echo", echo())
		ref := h.lookup(from, at, "echo")
		v, err := ask(t, ref, Ping{N: 41})
		if err != nil {
			t.Fatalf("Ask: %v", err)
		}
		if v != (Pong{N: 42}) {
			t.Fatalf("Ask returned %#v, want Pong{N: 42}", v)
		}
		pong, err := core.Ask[Pong](t.Context(), ref, Ping{N: 1})
		if err != nil || pong.N != 2 {
			t.Fatalf("core.Ask[Pong] = %v, %v; want Pong{2}", pong, err)
		}
		if _, err := core.Ask[Ping](t.Context(), ref, Ping{N: 1}); err == nil {
			t.Fatal("core.Ask[Ping] accepted a Pong reply")
		}
	}),
	across("TenSendersOfAHundredEachArriveInOrderOneAtATime", all, func(t *testing.T, h *harness, at, from *core.Env) {
		const senders, each = 10, 100
		var inside atomic.Int32
		var overlap atomic.Bool
		last := make([]int, senders)
		for i := range last {
			last[i] = -1
		}
		done := make(chan struct{})
		var count int
		var orderErr error
		h.register(at, "seq", &probe{receive: func(c *core.Context, msg any) error {
			if inside.Add(1) != 1 {
				overlap.Store(true)
			}
			runtime.Gosched() // give an overlapping delivery the chance to show
			s := msg.(Seq)
			if s.N != last[s.Sender]+1 && orderErr == nil {
				orderErr = fmt.Errorf("sender %d: message %d after %d", s.Sender, s.N, last[s.Sender])
			}
			last[s.Sender] = s.N
			count++
			inside.Add(-1)
			if count == senders*each {
				close(done)
			}
			return nil
		}})
		ref := h.lookup(from, at, "seq")
		var wg sync.WaitGroup
		for s := range senders {
			wg.Go(func() {
				for n := range each {
					if err := ref.Send(Seq{Sender: s, N: n}); err != nil {
						t.Errorf("sender %d: Send %d: %v", s, n, err)
						return
					}
				}
			})
		}
		wg.Wait()
		closed(t, done, "all 1000 messages")
		if overlap.Load() {
			t.Error("two messages were handled at once by an endpoint with the default concurrency")
		}
		if orderErr != nil {
			t.Error(orderErr)
		}
	}),
	across("ConcurrentAsksEachGetTheirOwnReply", all, func(t *testing.T, h *harness, at, from *core.Env) {
		h.register(at, "echo", echo(), core.WithConcurrency(8))
		ref := h.lookup(from, at, "echo")
		var wg sync.WaitGroup
		for g := range 32 {
			wg.Go(func() {
				for i := range 20 {
					n := g*1000 + i
					v, err := ask(t, ref, Ping{N: n})
					if err != nil || v != (Pong{N: n + 1}) {
						t.Errorf("asker %d: Ask(Ping{%d}) = %v, %v; want Pong{%d}", g, n, v, err, n+1)
						return
					}
				}
			})
		}
		wg.Wait()
	}),
	across("WithConcurrencyHandlesNAtOnce", all, func(t *testing.T, h *harness, at, from *core.Env) {
		const n = 4
		var inside atomic.Int32
		all := make(chan struct{})
		h.register(at, "wide", &probe{receive: func(c *core.Context, msg any) error {
			if inside.Add(1) == n {
				close(all)
			}
			<-all // only returns once n handlers are inside together
			return c.Reply(Pong{})
		}}, core.WithConcurrency(n))
		ref := h.lookup(from, at, "wide")
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if _, err := ask(t, ref, Ping{}); err != nil {
					t.Errorf("Ask: %v", err)
				}
			})
		}
		wg.Wait()
		if _, err := at.Register("bad", echo(), core.WithConcurrency(0)); err == nil {
			t.Error("Register with WithConcurrency(0) succeeded")
		}
	}),
	across("SenderNamesTheSendingEnv", all, func(t *testing.T, h *harness, at, from *core.Env) {
		senders := make(chan string, 1)
		h.register(at, "who", &probe{receive: func(c *core.Context, msg any) error {
			senders <- c.Sender()
			return c.Reply(true)
		}})
		if _, err := ask(t, h.lookup(from, at, "who"), Ping{}); err != nil {
			t.Fatalf("Ask: %v", err)
		}
		got := recv(t, senders, "the sender")
		switch {
		case from.Address() != "" && got != from.Address():
			t.Errorf("Sender() = %q, want the sending env's address %q", got, from.Address())
		case from.Address() == "" && (got == "" || got == at.Address()):
			t.Errorf("Sender() = %q for a client-mode sender, want its connection's address", got)
		}
	}),
)

var errBoom = errors.New("boom")

var lifecycleCases = []testCase{
	{"OnStartRunsBeforeTheFirstMessageAndOnStopAfterTheLast", func(t *testing.T, h *harness) {
		e := h.server("life")
		ev := newEvents()
		release := make(chan struct{})
		var selfInStart *core.Ref
		ref := h.register(e, "life", &probe{
			start: func(self *core.Ref) error {
				selfInStart = self
				<-release
				ev.add("start")
				return nil
			},
			receive: func(c *core.Context, msg any) error {
				ev.add("msg %d", msg.(Seq).N)
				return nil
			},
			stop: func() { ev.add("stop") },
		})
		for i := range 5 {
			if err := ref.Send(Seq{N: i}); err != nil {
				t.Fatalf("Send: %v", err)
			}
		}
		close(release)
		ev.until(t, "msg 4")
		if err := e.Stop(ref); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		ev.until(t, "stop")
		want := []string{"start", "msg 0", "msg 1", "msg 2", "msg 3", "msg 4", "stop"}
		if got := ev.snapshot(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("events %q, want %q", got, want)
		}
		if selfInStart == nil || selfInStart.String() != ref.String() {
			t.Fatalf("OnStart got self %v, want %v", selfInStart, ref)
		}
	}},
	{"SelfIsTheEndpointsOwnRef", func(t *testing.T, h *harness) {
		e := h.server("self")
		selves := make(chan string, 2)
		ref := h.register(e, "me", &probe{
			start: func(self *core.Ref) error { return self.Send(Ping{}) }, // usable already in OnStart
			receive: func(c *core.Context, msg any) error {
				selves <- c.Self().String()
				return nil
			},
		})
		if got := recv(t, selves, "the message OnStart sent to itself"); got != ref.String() {
			t.Fatalf("Context.Self() = %s, want %s", got, ref)
		}
		if want := e.Address() + "/me"; ref.String() != want {
			t.Fatalf("ref.String() = %q, want %q", ref.String(), want)
		}
	}},
	{"OnStartErrorGoesToOnErrorAndStopsTheEndpoint", func(t *testing.T, h *harness) {
		e := h.server("failstart")
		errs := make(chan error, 1)
		stopped := make(chan struct{})
		ref := h.register(e, "bad", &probe{
			start:   func(*core.Ref) error { return errBoom },
			onError: func(err error) { errs <- err },
			stop:    func() { close(stopped) },
		})
		if err := recv(t, errs, "OnError"); !errors.Is(err, errBoom) {
			t.Fatalf("OnError got %v, want the OnStart error", err)
		}
		closed(t, stopped, "OnStop after a failed OnStart")
		if _, err := ask(t, ref, Ping{}); !errors.Is(err, core.ErrEndpointNotFound) {
			t.Fatalf("Ask after a failed OnStart: %v, want ErrEndpointNotFound", err)
		}
	}},
	{"ReceiveErrorOnASendGoesToOnError", func(t *testing.T, h *harness) {
		e := h.server("recverr")
		errs := make(chan error, 1)
		ref := h.register(e, "bad", &probe{
			receive: func(*core.Context, any) error { return errBoom },
			onError: func(err error) { errs <- err },
		})
		if err := ref.Send(Ping{}); err != nil {
			t.Fatal(err)
		}
		if err := recv(t, errs, "OnError"); !errors.Is(err, errBoom) {
			t.Fatalf("OnError got %v, want the Receive error", err)
		}
	}},
	{"PanicInOnStopGoesToOnError", func(t *testing.T, h *harness) {
		e := h.server("stoppanic")
		errs := make(chan error, 1)
		ref := h.register(e, "bad", &probe{
			stop:    func() { panic("in OnStop") },
			onError: func(err error) { errs <- err },
		})
		if err := e.Stop(ref); err != nil {
			t.Fatal(err)
		}
		var pe *core.PanicError
		if err := recv(t, errs, "OnError"); !errors.As(err, &pe) || pe.Value != "in OnStop" {
			t.Fatalf("OnError got %v, want a *core.PanicError with the panic value", err)
		}
	}},
	{"StopIsReentrantAndASecondStopIsANoop", func(t *testing.T, h *harness) {
		e := h.server("reentrant")
		var stops atomic.Int32
		stopped := make(chan struct{})
		ref := h.register(e, "quitter", &probe{
			receive: func(c *core.Context, msg any) error {
				if err := c.Env().Stop(c.Self()); err != nil {
					return err
				}
				if err := c.Env().Stop(c.Self()); err != nil {
					return err
				}
				return c.Reply(true)
			},
			stop: func() {
				if stops.Add(1) == 1 {
					close(stopped)
				}
			},
		})
		if _, err := ask(t, ref, Ping{}); err != nil {
			t.Fatalf("Ask to an endpoint stopping itself: %v", err)
		}
		closed(t, stopped, "OnStop")
		if err := e.Stop(ref); err != nil {
			t.Fatalf("third Stop: %v", err)
		}
		if _, err := ask(t, ref, Ping{}); !errors.Is(err, core.ErrEndpointNotFound) {
			t.Fatalf("Ask after Stop: %v, want ErrEndpointNotFound", err)
		}
		h.shutdown(e)
		if n := stops.Load(); n != 1 {
			t.Fatalf("OnStop ran %d times, want once", n)
		}
	}},
	{"QueuedMessagesAreHandledBeforeOnStop", func(t *testing.T, h *harness) {
		e := h.server("drain")
		ev := newEvents()
		release := make(chan struct{})
		ref := h.register(e, "slow", &probe{
			receive: func(c *core.Context, msg any) error {
				if msg.(Seq).N == 0 {
					<-release
				}
				ev.add("msg %d", msg.(Seq).N)
				return nil
			},
			stop: func() { ev.add("stop") },
		})
		for i := range 4 {
			if err := ref.Send(Seq{N: i}); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.Stop(ref); err != nil {
			t.Fatal(err)
		}
		if err := ref.Send(Seq{N: 99}); !errors.Is(err, core.ErrEndpointNotFound) {
			t.Errorf("Send after Stop: %v, want ErrEndpointNotFound", err)
		}
		close(release)
		got := ev.until(t, "stop")
		if want := []string{"msg 0", "msg 1", "msg 2", "msg 3"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("before OnStop: %q, want %q", got, want)
		}
	}},
	{"RegisterOfATakenNameFails", func(t *testing.T, h *harness) {
		e := h.server("names")
		ref := h.register(e, "x", echo())
		if _, err := e.Register("x", echo()); !errors.Is(err, core.ErrNameTaken) {
			t.Fatalf("second Register: %v, want ErrNameTaken", err)
		}
		if err := e.Stop(ref); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Register("x", echo()); err != nil {
			t.Fatalf("Register after Stop freed the name: %v", err)
		}
		for _, bad := range []string{"", "a/b", "a b"} {
			if _, err := e.Register(bad, echo()); err == nil {
				t.Errorf("Register(%q) succeeded", bad)
			}
		}
	}},
}
