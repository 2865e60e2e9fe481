package core

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

type itemKind uint8

const (
	itemMessage itemKind = iota
	itemStart
	itemStop
	itemConnected
	itemDisconnected
	itemNetworkError
)

// item is one entry of an inbox (40 bytes: network events, which are
// rare, live behind a pointer).
type item struct {
	kind itemKind
	size uint32 // a message's bytes counted against the inbox limit (flow.go), 0 if none
	msg  any
	c    *Context
	ev   *netEvent
}

type netEvent struct {
	remote string
	err    error
}

// ring is the FIFO of an inbox: a list of fixed-size chunks, so that a
// growing queue never copies what it holds. Chunks come from a pool and go
// back when drained: an idle endpoint holds no storage.
type ring struct {
	head, tail *chunk
	hi, ti     int // next pop in head, next push in tail
	n          int
}

const chunkItems = 32

type chunk struct {
	items [chunkItems]item
	next  *chunk
}

var chunks = sync.Pool{New: func() any { return new(chunk) }}

func (r *ring) push(it item) {
	if r.tail == nil || r.ti == chunkItems {
		c := chunks.Get().(*chunk)
		if r.tail == nil {
			r.head, r.hi = c, 0
		} else {
			r.tail.next = c
		}
		r.tail, r.ti = c, 0
	}
	r.tail.items[r.ti] = it
	r.ti++
	r.n++
}

func (r *ring) peek() *item { return &r.head.items[r.hi] }

func (r *ring) pop() item {
	c := r.head
	it := c.items[r.hi]
	c.items[r.hi] = item{}
	r.hi++
	r.n--
	switch {
	case r.n == 0:
		chunks.Put(c)
		r.head, r.tail, r.hi, r.ti = nil, nil, 0, 0
	case r.hi == chunkItems:
		r.head, r.hi = c.next, 0
		c.next = nil
		chunks.Put(c)
	}
	return it
}

// endpoint is a registered Endpoint and its inbox. The inbox is processed
// by pool workers, at most max at a time; an idle endpoint holds no
// goroutine.
type endpoint struct {
	env      *Env
	name     string
	impl     Endpoint
	hooks    any // where the optional interfaces are looked up: impl, or what it delegates to
	self     *Ref
	pool     *pool // the env's shared pool, or its own (WithIsolation)
	max      int
	observer NetworkObserver // nil unless impl is one
	sendCtx  *Context        // shared by every local send; counts the sends being handled (deadlock.go)
	ctx      context.Context // the context of a send's handler: the env's, carrying sendCtx
	limit    int             // inbox limit in bytes (WithInboxLimit)
	borrow   bool            // messages lend their large []byte fields (WithBorrowedBytes)
	local    atomic.Int64    // bytes of local messages in the inbox
	handled  atomic.Uint64   // messages handled (Env.Stats), added per batch
	failed   atomic.Uint64   // of those, the ones whose handler failed

	mu       sync.Mutex
	q        ring
	active   int         // workers inside run
	starting bool        // OnStart queued or running: no other item may run
	stopping bool        // the stop item is queued: nothing more is accepted
	aborted  atomic.Bool // the env's hard stage: messages not yet handled are dropped
	done     chan struct{}
}

// post appends it to the inbox. It returns false when the endpoint is
// stopping and accepts nothing more.
func (ep *endpoint) post(it item) bool {
	ep.mu.Lock()
	if ep.stopping {
		ep.mu.Unlock()
		return false
	}
	ep.q.push(it)
	schedule := !ep.starting && ep.active < ep.max
	if schedule {
		ep.active++
	}
	ep.mu.Unlock()
	if schedule {
		ep.pool.run(ep)
	}
	return true
}

// undeliverable drops a message that arrived in chunks and failed to
// decode: an ask gets the error, a send is a dead letter.
func (ep *endpoint) undeliverable(it item, err error) {
	if it.c.stream != nil {
		it.c.stream.fail(err)
	}
	if it.c.ans != nil {
		it.c.ans.fail(ep, envError{fmt.Errorf("%s: %w", ep.self, err)})
	} else {
		ep.env.deadLetter(DeadLetter{Target: ep.self.String(), Type: it.msg.(*deferred).typ, Sender: it.c.sender, Reason: err})
	}
}

// consumption adds up what the messages a worker handled in one batch
// counted against the inbox limit, so that it is given back (credit to
// the peer they came from, room for local senders) once per batch and
// peer rather than once per message.
type consumption struct {
	from  *peer
	bytes int
}

func (c *consumption) add(ep *endpoint, it item) {
	if p := it.c.from; p != c.from {
		c.flush(ep)
		c.from = p
	}
	c.bytes += int(it.size)
}

func (c *consumption) flush(ep *endpoint) {
	switch {
	case c.bytes == 0:
	case c.from != nil:
		c.from.consumed(ep.name, ep.limit, c.bytes)
	default:
		ep.local.Add(-int64(c.bytes))
	}
	c.bytes = 0
}

// postLocalMessage posts a local message unless the local messages
// waiting already fill the inbox limit: a local sender never waits (so
// an endpoint that sends to itself, or to one that sends back, cannot
// deadlock), it gets ErrInboxFull instead.
func (ep *endpoint) postLocalMessage(it item) (ok bool, err error) {
	if ep.local.Add(localMessageCost) > int64(ep.limit) {
		ep.local.Add(-localMessageCost)
		return false, ErrInboxFull
	}
	it.size = localMessageCost
	if !ep.post(it) {
		ep.local.Add(-localMessageCost)
		return false, nil
	}
	return true, nil
}

// localMessageCost is what a local message, which is never encoded,
// counts against its endpoint's inbox limit.
const localMessageCost = 128

// stop queues OnStop behind every item already accepted. It returns false
// if the endpoint was already stopping.
func (ep *endpoint) stop() bool {
	ep.mu.Lock()
	if ep.stopping {
		ep.mu.Unlock()
		return false
	}
	ep.stopping = true
	ep.q.push(item{kind: itemStop})
	schedule := ep.active == 0
	if schedule {
		ep.active++
	}
	ep.mu.Unlock()
	if schedule {
		ep.pool.run(ep)
	}
	return true
}

// abort drops every message waiting in the inbox (asks fail with
// ErrEnvStopped, sends are dead letters), and those a worker has taken but not
// yet handled; OnStop still runs, after the message being handled, if
// any. For the env's hard stage: the endpoint must be stopping.
func (ep *endpoint) abort() {
	ep.aborted.Store(true)
	reason := errAborted(ep.env)
	var dropped []item
	stop := false
	ep.mu.Lock()
	for ep.q.n > 0 {
		it := ep.q.pop()
		if it.kind == itemStop {
			stop = true
			continue
		}
		dropped = append(dropped, it)
	}
	if stop {
		// It was last: OnStop keeps its place. (A worker may have taken it
		// already, in a batch: then it must not be queued twice.)
		ep.q.push(item{kind: itemStop})
	}
	ep.mu.Unlock()
	for _, it := range dropped {
		ep.drop(it, reason)
	}
}

// errAborted is why the hard stage drops a message.
func errAborted(e *Env) error { return fmt.Errorf("%w: env %s closed", ErrEnvStopped, e.name) }

// drop answers a message that will not be handled: an ask fails, a send
// is a dead letter. Other items are dropped, but the stop item, which
// abort keeps.
func (ep *endpoint) drop(it item, reason error) {
	if it.kind == itemMessage {
		ep.env.reject(ep.self.String(), it, reason)
		var used consumption
		used.add(ep, it)
		used.flush(ep)
	}
}

// take returns the next item this worker may process. Called with mu held.
func (ep *endpoint) take() (item, bool) {
	if ep.q.n == 0 {
		return item{}, false
	}
	if ep.q.peek().kind == itemStop && ep.active > 1 {
		return item{}, false // the last worker out runs OnStop
	}
	return ep.q.pop(), true
}

// run processes items until there is none this worker may take. An
// endpoint that takes one message at a time gets its items in batches, so
// the worker takes the lock once per batch rather than once per item.
// When other inboxes wait for a worker of the pool (it is at its cap),
// run returns true after a batch, staying scheduled: the worker puts the
// endpoint behind them, so that a long backlog cannot keep them waiting.
func (ep *endpoint) run() (more bool) {
	var batch [32]item
	for batches := 0; ; batches++ {
		if batches > 0 && ep.pool.waiting.Load() > 0 {
			return true
		}
		ep.mu.Lock()
		n := 0
		if ep.max == 1 {
			for n < len(batch) && ep.q.n > 0 {
				batch[n] = ep.q.pop()
				n++
				if batch[n-1].kind == itemStart {
					break // nothing runs beside OnStart, nor is batched with it
				}
			}
		} else if it, ok := ep.take(); ok {
			batch[0], n = it, 1
		}
		if n == 0 {
			ep.active--
			ep.mu.Unlock()
			return false
		}
		ep.mu.Unlock()
		// The sends of the batch count as handled throughout: cheaper than
		// per message, and as exact (deadlock.go).
		ep.sendCtx.handling.Add(1)
		var used consumption
		handled, failed := 0, 0
		for i := range n {
			it := batch[i]
			if it.kind != itemStop && it.kind != itemStart && ep.aborted.Load() {
				ep.drop(it, errAborted(ep.env))
				batch[i] = item{}
				continue
			}
			if ep.process(it) {
				failed++
			}
			if it.kind == itemMessage {
				handled++
				if it.size > 0 {
					used.add(ep, it)
				}
			}
			batch[i] = item{}
		}
		ep.sendCtx.handling.Add(-1)
		if handled > 0 {
			ep.handled.Add(uint64(handled))
			if failed > 0 {
				ep.failed.Add(uint64(failed))
			}
		}
		used.flush(ep)
	}
}

// process runs one item. For a message, it reports whether it failed:
// undecodable, or its handler returned an error or panicked.
func (ep *endpoint) process(it item) (failed bool) {
	switch it.kind {
	case itemMessage:
		msg := it.msg
		d, _ := msg.(*deferred)
		if d != nil {
			var err error
			if msg, err = d.decode(ep.env); err != nil {
				ep.undeliverable(it, err)
				d.done()
				return true
			}
		}
		if it.c.ans != nil {
			it.c.handling.Add(1)
			failed = ep.receive(it.c, msg) // run gives back what it counted (consumption)
			it.c.handling.Add(-1)
		} else {
			failed = ep.receive(it.c, msg) // counted in sendCtx by run, per batch
		}
		if d != nil {
			d.done()
		}
	case itemStart:
		ep.start()
	case itemStop:
		if s, ok := ep.hooks.(Stopper); ok {
			ep.protect("OnStop", s.OnStop)
		}
		close(ep.done)
		if ep.pool != ep.env.pool {
			ep.pool.stopIdle() // its workers end: this one once it returns
		}
	case itemConnected:
		ep.protect("OnConnected", func() { ep.observer.OnConnected(it.ev.remote) })
	case itemDisconnected:
		ep.protect("OnDisconnected", func() { ep.observer.OnDisconnected(it.ev.remote) })
	case itemNetworkError:
		ep.protect("OnNetworkError", func() { ep.observer.OnNetworkError(it.ev.remote, it.ev.err) })
	}
	return failed
}

func (ep *endpoint) start() {
	var err error
	if s, ok := ep.hooks.(Starter); ok {
		if perr := ep.protect("OnStart", func() {
			if e := s.OnStart(ep.self); e != nil {
				err = fmt.Errorf("rpcenv: OnStart of %s: %w", ep.self, e)
			}
		}); perr != nil {
			ep.env.failStart(ep) // protect reported the panic
		} else if err != nil {
			ep.reportError(err)
			ep.env.failStart(ep)
		}
	}
	// Let the items that queued up while starting run, up to max at once.
	ep.mu.Lock()
	ep.starting = false
	extra := min(ep.max-ep.active, ep.q.n)
	ep.active += extra
	ep.mu.Unlock()
	for range extra {
		ep.pool.run(ep)
	}
}

// receive calls Receive and makes sure an ask gets an answer whatever
// Receive does: returns an error, or panics. It reports whether Receive
// failed.
func (ep *endpoint) receive(c *Context, msg any) (failed bool) {
	if c.stream != nil {
		return ep.receiveStream(c, msg)
	}
	var err error
	panicked := ep.protect("Receive", func() {
		if ep.env.inbound != nil {
			err = ep.intercepted(c, msg)
		} else {
			err = ep.impl.Receive(c, msg)
		}
	})
	if panicked != nil {
		err = panicked
	}
	if err == nil {
		return false
	}
	if c.ans != nil {
		if ferr := c.ans.fail(ep, err); ferr == nil && panicked == nil {
			return true // the asker has it
		}
	}
	if panicked == nil {
		ep.reportError(fmt.Errorf("rpcenv: Receive of %s: %w", ep.self, err))
	}
	return true
}

// protect runs f, recovering a panic: it is reported to OnError and
// returned.
func (ep *endpoint) protect(what string, f func()) (perr *PanicError) {
	defer func() {
		if v := recover(); v != nil {
			perr = &PanicError{Endpoint: ep.self.String(), Value: v, Stack: debug.Stack()}
			if what == "OnError" {
				ep.env.log.Error("rpcenv: OnError panicked", "endpoint", ep.self.String(), "panic", fmt.Sprint(v))
				return
			}
			ep.reportError(perr)
		}
	}()
	f()
	return nil
}

// reportError gives err to OnError, or logs it.
func (ep *endpoint) reportError(err error) {
	if h, ok := ep.hooks.(ErrorHandler); ok {
		ep.protect("OnError", func() { h.OnError(err) })
		return
	}
	ep.env.log.Error("rpcenv: endpoint error", "endpoint", ep.self.String(), "err", err)
}

// pool runs inboxes on goroutines that outlive one inbox. A busy or
// blocked endpoint holds its worker. While fewer than max workers exist,
// an inbox that finds no idle worker starts a new one, so others never
// wait behind a blocked endpoint; at max, it waits in pending, first in
// first out, for a worker to finish an inbox, and an endpoint with a long
// backlog gives its worker up after each batch while others wait
// (endpoint.run). Idle workers wait on a channel of their own (the
// cheapest wake-up there is), most recently idle first, and a reaper ends
// those idle longer than timeout, so an idle env holds no goroutine for
// long.
//
// An env has one shared pool, capped by Config.MaxWorkers, and one more
// for each endpoint registered WithIsolation, whose own limit is its
// concurrency.
type pool struct {
	mu      sync.Mutex
	idle    []*worker    // a stack: the top is the most recently idle
	pending []*endpoint  // inboxes waiting for a worker, oldest first
	waiting atomic.Int32 // len(pending), read without the lock by endpoint.run
	workers int          // live workers, idle or busy
	max     int          // the cap on workers; 0: none
	peak    int          // the most workers there have been at once
	closed  bool
	reaping bool // the reaper timer is armed
	reaper  *time.Timer
	epoch   uint64          // reaper rounds so far: a coarse clock that costs no clock read
	wg      *sync.WaitGroup // the env's: Shutdown waits for the workers of all its pools
	timeout time.Duration
}

type worker struct {
	next      chan *endpoint // capacity 1; nil tells the worker to exit
	idleEpoch uint64         // pool.epoch when it last went idle
}

// newPool returns a pool of at most max workers (0: no cap) that end
// after idle without work; wg counts them.
func newPool(idle time.Duration, max int, wg *sync.WaitGroup) *pool {
	p := &pool{timeout: idle, max: max, wg: wg}
	p.reaper = time.AfterFunc(time.Hour, p.reap)
	p.reaper.Stop()
	return p
}

// run has ep's inbox processed by an idle worker or a new one, or, at the
// cap, by the first worker to finish its inbox.
func (p *pool) run(ep *endpoint) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.next <- ep // never blocks: w waits for exactly this
		return
	}
	if p.max > 0 && p.workers >= p.max {
		p.pending = append(p.pending, ep)
		p.waiting.Store(int32(len(p.pending)))
		p.mu.Unlock()
		return
	}
	p.workers++
	p.peak = max(p.peak, p.workers)
	p.wg.Add(1)
	p.mu.Unlock()
	go p.work(&worker{next: make(chan *endpoint, 1)}, ep)
}

func (p *pool) work(w *worker, ep *endpoint) {
	defer p.wg.Done()
	for ep != nil {
		more := ep.run()
		p.mu.Lock()
		if more {
			p.pending = append(p.pending, ep) // its turn again after those waiting
		}
		if len(p.pending) > 0 {
			ep = p.pending[0]
			p.pending[0] = nil
			p.pending = p.pending[1:]
			p.waiting.Store(int32(len(p.pending)))
			p.mu.Unlock()
			continue
		}
		if p.closed {
			p.workers--
			p.mu.Unlock()
			return
		}
		w.idleEpoch = p.epoch
		p.idle = append(p.idle, w)
		if !p.reaping {
			p.reaping = true
			p.reaper.Reset(p.timeout)
		}
		p.mu.Unlock()
		ep = <-w.next
	}
}

// reap runs every timeout while workers are idle, and ends those that
// were already idle at the previous round: idle for between one and two
// timeouts. The longest idle are at the bottom of the stack.
func (p *pool) reap() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.epoch++
	n := 0
	for n < len(p.idle) && p.idle[n].idleEpoch < p.epoch-1 {
		p.idle[n].next <- nil
		n++
	}
	p.workers -= n
	clear(p.idle[:n])
	p.idle = append(p.idle[:0], p.idle[n:]...)
	if len(p.idle) > 0 {
		p.reaper.Reset(p.timeout)
	} else {
		p.reaping = false
	}
}

// stopIdle ends the idle workers, and has every busy one end once no
// inbox waits for it. Inboxes scheduled later still get a worker, which
// ends after it.
func (p *pool) stopIdle() {
	p.mu.Lock()
	p.closed = true
	p.reaper.Stop()
	for _, w := range p.idle {
		w.next <- nil
	}
	p.workers -= len(p.idle)
	p.idle = nil
	p.mu.Unlock()
}

// close ends the idle workers and waits for every worker of the env to
// exit. Called on the env's shared pool once every endpoint has stopped,
// so no inbox is scheduled any more.
func (p *pool) close() {
	p.stopIdle()
	p.wg.Wait()
}
