package core

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Deadlock detection. An ask made while handling a message waits, and so
// holds its endpoint's worker. If the endpoint it asks handles one
// message at a time and is itself waiting for this ask (it is the asker,
// or it asked, through a chain of endpoints of this env, the endpoint that
// asks now), the ask can never be answered: it would wait for its
// deadline (Config.AskTimeout, 120s by default). Ref.Ask fails such an
// ask at once with ErrDeadlock.
//
// The chain is carried by the contexts handlers get: Context.Context
// holds the delivery being handled (a *Context), and a local ask made
// with it records that delivery as its asker. Each delivery counts the
// handlers running it (handling). An ask from delivery d0 to an endpoint
// T of concurrency 1 deadlocks when d0 is being handled and there is a
// chain d0, d1 = d0's asker, d2 = d1's asker, … ending at a delivery of T,
// in which every delivery is being handled and every ask along it is
// still unanswered (its asker still waits). Sends have no asker, so a
// chain ends at one; the sends an endpoint handles share one record
// (endpoint.sendCtx), counted per batch of messages a worker takes. That
// is exact for an endpoint of concurrency 1, the only kind that can close
// a cycle, but for a context kept past its handler, which the next send's
// handler cannot be told apart from.
//
// Out of scope, and documented on Ref.Ask: asks made with a context that
// does not come from the handler's Context (context.Background(), say),
// cycles through other envs, and endpoints of concurrency n > 1, which
// deadlock only when all n workers wait in such cycles. The check assumes
// that a handler waits for the asks it made while they are unanswered: a
// handler that asks from another goroutine and goes on may see
// ErrDeadlock for an ask that would have been answered once it returned.

// maxChain bounds the walk: a longer chain of waiting handlers is not
// reported.
const maxChain = 64

// invocationKey is the context key under which a handler's context holds
// its delivery.
type invocationKey struct{}

// invocation is the parent of an ask's handler context
// (handlerCtx.context): never done, and it carries the delivery. One
// pointer, so it is stored in an interface without an allocation.
type invocation struct{ c *Context }

func (invocation) Deadline() (deadline time.Time, ok bool) { return }
func (invocation) Done() <-chan struct{}                   { return nil }
func (invocation) Err() error                              { return nil }
func (i invocation) Value(key any) any {
	if key == (invocationKey{}) {
		return i.c
	}
	return nil
}

// sendContext is the context the handler of a send gets: the env's,
// carrying the endpoint's send record. Made once per endpoint.
type sendContext struct {
	context.Context
	c *Context
}

func (s *sendContext) Value(key any) any {
	if key == (invocationKey{}) {
		return s.c
	}
	return s.Context.Value(key)
}

// askerOf returns the delivery whose handler's context ctx derives from,
// or nil.
func askerOf(ctx context.Context) *Context {
	c, _ := ctx.Value(invocationKey{}).(*Context)
	return c
}

// record returns where c's handling is counted: c itself for an ask, the
// endpoint's shared send record for a send.
func (c *Context) record() *Context {
	if c.ans == nil {
		return c.ep.sendCtx
	}
	return c
}

// deadlock returns the chain of endpoints, in the order they asked, if an
// ask from the handler of delivery from to endpoint target can never be
// answered; nil otherwise.
func deadlock(from *Context, target *endpoint) []string {
	if target.max != 1 || from.ep == nil || from.ep.env != target.env {
		return nil
	}
	var names []string
	d := from.record()
	if d.handling.Load() == 0 {
		return nil // the context outlived its handler, which holds no worker
	}
	for range maxChain {
		names = append(names, d.ep.name)
		if d.ep == target {
			for l, r := 0, len(names)-1; l < r; l, r = l+1, r-1 {
				names[l], names[r] = names[r], names[l]
			}
			return append(names, target.name)
		}
		c, ok := d.ans.(*call)
		if !ok || d.asker == nil || c.completed.Load() {
			return nil // no asker waits for d (a send, a remote ask, answered or given up)
		}
		if d = d.asker; d.handling.Load() == 0 {
			return nil // the asker's handler returned: it holds no worker
		}
	}
	return nil
}

// deadlockError is an ask's ErrDeadlock, naming the chain.
func deadlockError(r *Ref, chain []string) error {
	return fmt.Errorf("rpcenv: ask %s: %w: %s (%s handles one message at a time and is waiting for this ask)",
		r, ErrDeadlock, strings.Join(chain, " -> "), chain[len(chain)-1])
}
