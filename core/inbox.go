package core

import (
	"fmt"
	"runtime/debug"
	"sync"
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

// item is one entry of an inbox.
type item struct {
	kind   itemKind
	msg    any
	c      *Context
	remote string // network events
	err    error  // network errors
}

// ring is a FIFO of items; it holds no storage while empty for long.
type ring struct {
	buf  []item
	head int
	n    int
}

func (r *ring) push(it item) {
	if r.n == len(r.buf) {
		size := 2 * len(r.buf)
		if size == 0 {
			size = 4
		}
		buf := make([]item, size)
		for i := range r.n {
			buf[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = buf, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = it
	r.n++
}

func (r *ring) peek() *item { return &r.buf[r.head] }

func (r *ring) pop() item {
	it := r.buf[r.head]
	r.buf[r.head] = item{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	if r.n == 0 && len(r.buf) > 1024 {
		r.buf, r.head = nil, 0 // let a burst's storage go
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
	self     *Ref
	max      int
	observer NetworkObserver // nil unless impl is one
	sendCtx  *Context        // shared by every local send: it is immutable

	mu       sync.Mutex
	q        ring
	active   int  // workers inside run
	starting bool // OnStart queued or running: no other item may run
	stopping bool // the stop item is queued: nothing more is accepted
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
		ep.env.pool.run(ep)
	}
	return true
}

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
		ep.env.pool.run(ep)
	}
	return true
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

// run processes items until there is none this worker may take.
func (ep *endpoint) run() {
	for {
		ep.mu.Lock()
		it, ok := ep.take()
		if !ok {
			ep.active--
			ep.mu.Unlock()
			return
		}
		ep.mu.Unlock()
		ep.process(it)
	}
}

func (ep *endpoint) process(it item) {
	switch it.kind {
	case itemMessage:
		ep.receive(it.c, it.msg)
	case itemStart:
		ep.start()
	case itemStop:
		if s, ok := ep.impl.(Stopper); ok {
			ep.protect("OnStop", s.OnStop)
		}
		close(ep.done)
	case itemConnected:
		ep.protect("OnConnected", func() { ep.observer.OnConnected(it.remote) })
	case itemDisconnected:
		ep.protect("OnDisconnected", func() { ep.observer.OnDisconnected(it.remote) })
	case itemNetworkError:
		ep.protect("OnNetworkError", func() { ep.observer.OnNetworkError(it.remote, it.err) })
	}
}

func (ep *endpoint) start() {
	var err error
	if s, ok := ep.impl.(Starter); ok {
		ep.protect("OnStart", func() {
			if e := s.OnStart(ep.self); e != nil {
				err = fmt.Errorf("rpcenv: OnStart of %s: %w", ep.self, e)
			}
		})
	}
	if err != nil {
		ep.reportError(err)
		ep.env.failStart(ep)
	}
	// Let the items that queued up while starting run, up to max at once.
	ep.mu.Lock()
	ep.starting = false
	extra := min(ep.max-ep.active, ep.q.n)
	ep.active += extra
	ep.mu.Unlock()
	for range extra {
		ep.env.pool.run(ep)
	}
}

// receive calls Receive and makes sure an ask gets an answer whatever
// Receive does: returns an error, or panics.
func (ep *endpoint) receive(c *Context, msg any) {
	var err error
	panicked := ep.protect("Receive", func() { err = ep.impl.Receive(c, msg) })
	if panicked != nil {
		err = panicked
	}
	if err == nil {
		return
	}
	if c.ans != nil {
		if ferr := c.ans.fail(ep, err); ferr == nil && panicked == nil {
			return // the asker has it
		}
	}
	if panicked == nil {
		ep.reportError(fmt.Errorf("rpcenv: Receive of %s: %w", ep.self, err))
	}
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
	if h, ok := ep.impl.(ErrorHandler); ok {
		ep.protect("OnError", func() { h.OnError(err) })
		return
	}
	ep.env.log.Error("rpcenv: endpoint error", "endpoint", ep.self.String(), "err", err)
}

// pool runs inboxes on goroutines that outlive one inbox: a worker that
// finished an inbox waits idleTimeout for another before exiting. A busy or
// blocked endpoint holds its worker, so others never wait behind it: when
// no worker is free, a new one starts.
type pool struct {
	handoff chan *endpoint // unbuffered: a send succeeds only if a worker waits
	quit    chan struct{}  // closed by Env shutdown, after every endpoint stopped
	wg      sync.WaitGroup
	idle    time.Duration
}

func newPool(idle time.Duration) *pool {
	return &pool{handoff: make(chan *endpoint), quit: make(chan struct{}), idle: idle}
}

func (p *pool) run(ep *endpoint) {
	select {
	case p.handoff <- ep:
	default:
		p.wg.Add(1)
		go p.worker(ep)
	}
}

func (p *pool) worker(ep *endpoint) {
	defer p.wg.Done()
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		ep.run()
		t.Reset(p.idle)
		select {
		case ep = <-p.handoff:
		case <-t.C:
			return
		case <-p.quit:
			return
		}
	}
}

// close stops idle workers and waits for every worker to exit.
func (p *pool) close() {
	close(p.quit)
	p.wg.Wait()
}
