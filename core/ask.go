package core

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	v   any
	err error
}

// handlerCtx is the context.Context a handler gets for an ask, made only
// if the handler asks for it. end, on every ask's path, takes no lock
// unless the context was made: over and made are a Dekker pair (each side
// stores its flag, then loads the other's), so one of end and context
// always sees the other and the context is canceled exactly when both
// happened.
type handlerCtx struct {
	deadline time.Time
	over     atomic.Bool // the asker gave up or the ask was answered
	made     atomic.Bool // ctx exists
	mu       sync.Mutex  // guards ctx and cancel
	ctx      context.Context
	cancel   context.CancelFunc
}

func (h *handlerCtx) context(c *Context) context.Context {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx == nil {
		h.ctx, h.cancel = context.WithDeadline(invocation{c}, h.deadline)
		h.made.Store(true)
		if h.over.Load() {
			h.cancel()
		}
	}
	return h.ctx
}

// end cancels the handler's context, if it was made.
func (h *handlerCtx) end() {
	h.over.Store(true)
	if !h.made.Load() {
		return
	}
	h.mu.Lock()
	cancel := h.cancel
	h.mu.Unlock()
	cancel()
}

// call is an ask this env made and waits on. For an ask to an endpoint of
// the same env it is also the answerer the endpoint replies through.
//
// The answer reaches the asker without a channel when the asker finds it
// already there (the common case for a local ask): the asker makes the
// wake channel only when it has to wait, and state tells the completer
// whether to use it.
type call struct {
	answered  atomic.Bool   // the first Reply or Fail won
	completed atomic.Bool   // res is decided: an answer, or the deadline
	state     atomic.Uint32 // callPending, callDone or callWaiting
	res       result        // written once, before state becomes callDone
	wake      chan result   // capacity 1; made by the asker before callWaiting
	target    string
	hctx      Context // the handler's Context, for a local ask
	handlerCtx
}

// wakes recycles wake channels: a channel is put back only after its one
// value was received.
var wakes = sync.Pool{New: func() any { return make(chan result, 1) }}

const (
	callPending uint32 = iota
	callDone           // res is set
	callWaiting        // the asker waits on wake
)

// complete settles the call with r, unless it is settled already.
func (c *call) complete(r result) {
	if !c.completed.CompareAndSwap(false, true) {
		return // the deadline got there first: this answer is late
	}
	c.res = r
	if c.state.Swap(callDone) == callWaiting {
		c.wake <- r // never blocks: capacity 1, one send
	}
}

// done returns the result if the call is settled.
func (c *call) done() (result, bool) {
	if c.state.Load() == callDone {
		return c.res, true
	}
	return result{}, false
}

// prepareWait makes the wake channel; it returns the result instead if
// the call was settled meanwhile.
func (c *call) prepareWait() (result, bool) {
	c.wake = wakes.Get().(chan result)
	if c.state.CompareAndSwap(callPending, callWaiting) {
		return result{}, false
	}
	return c.res, true
}

// deliver hands the asker its answer, once.
func (c *call) deliver(v any, err error) bool {
	if !c.answered.CompareAndSwap(false, true) {
		return false
	}
	c.complete(result{v, err})
	c.end()
	return true
}

func (c *call) giveUp() { c.end() }

func (c *call) reply(ep *endpoint, v any) error {
	if _, _, err := checkType(v); err != nil {
		err = fmt.Errorf("rpcenv: reply from %s: %w", ep.self, err)
		c.deliver(nil, remoteErrorFrom(ep, err))
		return err
	}
	if !c.deliver(v, nil) {
		return fmt.Errorf("rpcenv: reply from %s: %w", ep.self, ErrAlreadyAnswered)
	}
	return nil
}

func (c *call) fail(ep *endpoint, err error) error {
	var rerr error = remoteErrorFrom(ep, err)
	if ep.self == nil || isEnvError(err) {
		rerr = fmt.Errorf("rpcenv: ask %s: %w", ep.self, err)
	}
	if !c.deliver(nil, rerr) {
		return fmt.Errorf("rpcenv: fail from %s: %w", ep.self, ErrAlreadyAnswered)
	}
	return nil
}

// envError marks a failure decided by the env (the endpoint is gone),
// which the asker sees as a plain wrapped sentinel, not a RemoteError.
type envError struct{ err error }

func (e envError) Error() string { return e.err.Error() }
func (e envError) Unwrap() error { return e.err }

func isEnvError(err error) bool {
	_, ok := err.(envError)
	return ok
}

// inCall is an ask received from a peer, answered over the same connection.
type inCall struct {
	p        *peer
	id       uint64
	answered atomic.Bool
	hctx     Context // the handler's Context: one allocation for both
	handlerCtx
}

func (c *inCall) reply(ep *endpoint, v any) error {
	if !c.answered.CompareAndSwap(false, true) {
		return fmt.Errorf("rpcenv: reply from %s: %w", ep.self, ErrAlreadyAnswered)
	}
	defer c.finish()
	wire, mt, err := checkType(v)
	var frame []byte
	if err == nil {
		frame, err = encodeFrame(&header{kind: kindReply, id: c.id, typ: wire, mt: mt}, v, c.p.env.maxMsg)
	}
	if err != nil {
		err = fmt.Errorf("rpcenv: reply from %s: %w", ep.self, err)
		c.p.sendFail(c.id, ep.self.String(), err)
		return err
	}
	if err := c.p.reply(c.id, frame); err != nil {
		c.p.env.log.Debug("rpcenv: reply dropped", "endpoint", ep.self.String(), "peer", c.p.label(), "err", err)
	}
	return nil
}

func (c *inCall) fail(ep *endpoint, err error) error {
	if !c.answered.CompareAndSwap(false, true) {
		return fmt.Errorf("rpcenv: fail from %s: %w", ep.self, ErrAlreadyAnswered)
	}
	defer c.finish()
	from := ep.self.String()
	if isEnvError(err) {
		from = "" // the env answered, not the endpoint
	}
	c.p.sendFail(c.id, from, err)
	return nil
}

func (c *inCall) finish() {
	c.p.takeInCall(c.id)
	c.end()
}

// waiter holds an ask's deadline and where it came from.
type waiter struct {
	start    time.Time
	deadline time.Time
	fromCtx  bool // the deadline is the caller's; otherwise Config.AskTimeout
}

func (e *Env) newWait(ctx context.Context) waiter {
	w := waiter{start: time.Now()}
	if d, ok := ctx.Deadline(); ok {
		w.deadline, w.fromCtx = d, true
	} else {
		w.deadline = w.start.Add(e.askTimeout)
	}
	return w
}

// errTimedOut is what a deadline timer delivers into a call.
var errTimedOut = errors.New("rpcenv: ask timed out")

// deadline is a reusable timer that answers a call with errTimedOut. It
// keeps the timer out of the asker's select (which then waits on fewer
// channels) and off the allocator.
type deadline struct {
	t *time.Timer
	c atomic.Pointer[call]
}

var deadlines = sync.Pool{New: func() any {
	d := new(deadline)
	d.t = time.AfterFunc(time.Hour, func() {
		if c := d.c.Load(); c != nil {
			c.complete(result{err: errTimedOut}) // not deliver: a reply after this is late, not a second answer
		}
	})
	d.t.Stop()
	return d
}}

func armDeadline(c *call, after time.Duration) *deadline {
	d := deadlines.Get().(*deadline)
	d.c.Store(c)
	d.t.Reset(after)
	return d
}

func (d *deadline) disarm() {
	if d.t.Stop() {
		d.c.Store(nil)
		deadlines.Put(d) // its function will not run: safe to reuse
	}
	// Otherwise it fired, and its function may still be running with c:
	// harmless for c, which is answered once, but d is not reused.
}

// await waits for c's answer, the deadline, the caller's cancellation or
// the env's shutdown. giveUp, if set, runs when the asker stops waiting.
func (e *Env) await(ctx context.Context, w *waiter, target string, c *call, giveUp func()) (any, error) {
	if giveUp == nil {
		// A local ask: the worker it woke is usually runnable on this P
		// right now. Yield once and the answer is often there already,
		// with no timer armed, no channel made and no park.
		runtime.Gosched()
		if r, ok := c.done(); ok {
			return r.v, r.err
		}
	}
	var d *deadline
	if !w.fromCtx {
		d = armDeadline(c, e.askTimeout) // w.deadline is start+askTimeout: no second clock read
	}
	r, ok := c.prepareWait()
	var err error
	if !ok {
		select {
		case r = <-c.wake:
			ok = true
			wakes.Put(c.wake) // drained, and complete sends only once: safe to reuse
		case <-ctx.Done():
			err = e.waitErr(ctx, w, target, "")
		case <-e.ctx.Done():
			err = fmt.Errorf("rpcenv: ask %s: %w", target, ErrEnvStopped)
		}
	}
	if d != nil {
		d.disarm()
	}
	if ok {
		if r.err != errTimedOut {
			if d, ok := r.v.(*deferred); ok {
				return e.decodeReply(d, target)
			}
			return r.v, r.err
		}
		err = e.waitErr(ctx, w, target, "")
	}
	if giveUp != nil {
		giveUp()
	}
	c.giveUp()
	return nil, err
}

// waitErr is the error of an ask that stopped waiting at its deadline or
// because its caller canceled it; why adds to the message.
func (e *Env) waitErr(ctx context.Context, w *waiter, target, why string) error {
	switch {
	case ctx.Err() == nil || !w.fromCtx && !errors.Is(ctx.Err(), context.Canceled):
		return fmt.Errorf("rpcenv: ask %s: no reply within %v (deadline set by Config.AskTimeout, as the caller's context had none)%s: %w",
			target, e.askTimeout, why, context.DeadlineExceeded)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("rpcenv: ask %s: no reply within %v (deadline set by the caller's context)%s: %w",
			target, w.deadline.Sub(w.start).Round(time.Millisecond), why, context.DeadlineExceeded)
	default:
		return fmt.Errorf("rpcenv: ask %s: canceled by the caller after %v%s: %w", target, time.Since(w.start).Round(time.Millisecond), why, ctx.Err())
	}
}

// decodeReply decodes a large reply in the asker's goroutine, which the
// read loop handed over undecoded (deferred).
func (e *Env) decodeReply(d *deferred, target string) (any, error) {
	v, err := d.decode(e)
	if err != nil {
		return nil, fmt.Errorf("rpcenv: ask %s: reply: %w", target, err)
	}
	return v, nil
}
