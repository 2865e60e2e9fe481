package core_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rpcenv/rpcenv/core"
)

// askResult is what a handler's own ask returned.
type askResult struct {
	v   any
	err error
}

func newEnvT(t *testing.T) *core.Env {
	t.Helper()
	e, err := core.NewEnv(core.Config{Name: "dl"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Shutdown(context.Background()) })
	return e
}

func register(t *testing.T, e *core.Env, name string, f endpointFunc, opts ...core.EndpointOption) *core.Ref {
	t.Helper()
	r, err := e.Register(name, f, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestAnEndpointThatAsksItselfGetsErrDeadlock: a handler of concurrency 1
// that asks its own endpoint fails at once, the error naming the chain.
func TestAnEndpointThatAsksItselfGetsErrDeadlock(t *testing.T) {
	e := newEnvT(t)
	got := make(chan askResult, 1)
	register(t, e, "a", func(c *core.Context, msg any) error {
		if msg == "inner" {
			return c.Reply("unreachable")
		}
		v, err := c.Self().Ask(c.Context(), "inner")
		got <- askResult{v, err}
		return nil
	}).Send("outer")
	r := <-got
	if !errors.Is(r.err, core.ErrDeadlock) || !strings.Contains(r.err.Error(), "a -> a") {
		t.Fatalf("self-ask from a handler: %v, %v; want ErrDeadlock naming a -> a", r.v, r.err)
	}
}

// TestATwoEndpointCycleGetsErrDeadlock: a (handling a send) asks b, and
// b's handler asks a back: b's ask fails at once with ErrDeadlock naming
// a -> b -> a, and a gets b's failure instead of waiting for its deadline.
func TestATwoEndpointCycleGetsErrDeadlock(t *testing.T) {
	e := newEnvT(t)
	inB := make(chan askResult, 1)
	inA := make(chan askResult, 1)
	var a *core.Ref
	b := register(t, e, "b", func(c *core.Context, msg any) error {
		v, err := a.Ask(c.Context(), "back")
		inB <- askResult{v, err}
		return err
	})
	a = register(t, e, "a", func(c *core.Context, msg any) error {
		if msg == "back" {
			return c.Reply("unreachable")
		}
		v, err := b.Ask(c.Context(), "forth")
		inA <- askResult{v, err}
		return nil
	})
	if err := a.Send("start"); err != nil {
		t.Fatal(err)
	}
	r := <-inB
	if !errors.Is(r.err, core.ErrDeadlock) || !strings.Contains(r.err.Error(), "a -> b -> a") {
		t.Fatalf("b asking a back: %v, %v; want ErrDeadlock naming a -> b -> a", r.v, r.err)
	}
	if r := <-inA; !errors.Is(r.err, core.ErrDeadlock) {
		t.Fatalf("a's ask to b: %v, %v; want b's ErrDeadlock", r.v, r.err)
	}
}

// TestALongerCycleGetsErrDeadlock: a asks b, b asks c, c asks a.
func TestALongerCycleGetsErrDeadlock(t *testing.T) {
	e := newEnvT(t)
	inC := make(chan error, 1)
	var a, b, c *core.Ref
	forward := func(next **core.Ref, report chan error) endpointFunc {
		return func(cx *core.Context, msg any) error {
			if msg == "reply" {
				return cx.Reply("ok")
			}
			_, err := (*next).Ask(cx.Context(), msg)
			if report != nil {
				report <- err
			}
			return err
		}
	}
	a = register(t, e, "a", forward(&b, nil))
	b = register(t, e, "b", forward(&c, nil))
	c = register(t, e, "c", forward(&a, inC))
	_, err := a.Ask(context.Background(), "go")
	if cerr := <-inC; !errors.Is(cerr, core.ErrDeadlock) || !strings.Contains(cerr.Error(), "a -> b -> c -> a") {
		t.Fatalf("c asking a: %v; want ErrDeadlock naming a -> b -> c -> a", cerr)
	}
	if !errors.Is(err, core.ErrDeadlock) {
		t.Fatalf("the outer ask: %v; want the ErrDeadlock passed back", err)
	}
}

// TestAsksThatCanBeAnsweredAreNotDeadlocks: the check reports only asks
// that can never be answered.
func TestAsksThatCanBeAnsweredAreNotDeadlocks(t *testing.T) {
	t.Run("SelfAskWithConcurrency2", func(t *testing.T) {
		e := newEnvT(t)
		a := register(t, e, "a", func(c *core.Context, msg any) error {
			if msg == "inner" {
				return c.Reply("inner done")
			}
			v, err := c.Self().Ask(c.Context(), "inner")
			if err != nil {
				return err
			}
			return c.Reply(v)
		}, core.WithConcurrency(2))
		if v, err := a.Ask(context.Background(), "outer"); err != nil || v != "inner done" {
			t.Fatalf("self-ask with a second worker free: %v, %v", v, err)
		}
	})
	t.Run("AskBackAfterTheAskerReturned", func(t *testing.T) {
		// a sends to b and returns; b's handler asks a, which is free.
		e := newEnvT(t)
		got := make(chan askResult, 1)
		var a *core.Ref
		b := register(t, e, "b", func(c *core.Context, msg any) error {
			v, err := a.Ask(c.Context(), "question")
			got <- askResult{v, err}
			return nil
		})
		a = register(t, e, "a", func(c *core.Context, msg any) error {
			if msg == "question" {
				return c.Reply("answer")
			}
			return b.Send("go")
		})
		if err := a.Send("start"); err != nil {
			t.Fatal(err)
		}
		if r := <-got; r.err != nil || r.v != "answer" {
			t.Fatalf("b asking a, which is not waiting: %v, %v", r.v, r.err)
		}
	})
	t.Run("ChainThroughAnEndpointThatDidNotWait", func(t *testing.T) {
		// a asks b; b replies at once and only then asks a, from a
		// goroutine, with its handler's context: a is waiting for nothing
		// of b's any more once its ask returned.
		e := newEnvT(t)
		got := make(chan askResult, 1)
		var a *core.Ref
		b := register(t, e, "b", func(c *core.Context, msg any) error {
			if err := c.Reply("ok"); err != nil {
				return err
			}
			ctx := c.Context()
			go func() {
				v, err := a.Ask(context.WithoutCancel(ctx), "question")
				got <- askResult{v, err}
			}()
			return nil
		})
		a = register(t, e, "a", func(c *core.Context, msg any) error {
			if msg == "question" {
				return c.Reply("answer")
			}
			_, err := b.Ask(c.Context(), "go")
			return err
		})
		if err := a.Send("start"); err != nil {
			t.Fatal(err)
		}
		if r := <-got; r.err != nil || r.v != "answer" {
			t.Fatalf("b asking a after a's ask returned: %v, %v", r.v, r.err)
		}
	})
}
