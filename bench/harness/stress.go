package harness

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync/atomic"
	"time"
)

// The stress workloads, BulkAsk and SlowHeap, put a system under a load
// that the others do not: a connection busy with large messages, a
// receiver slower than its sender. Each run does a fixed amount of work
// (asks, or time) instead of a calibrated one, and a failure, hanging
// included, is one of the things they measure: Run reports it as the
// case's result instead of ending. The Stream workload (stream.go) is
// run the same way.

// Stress configures the stress workloads, and Stream. The zero value is
// the defaults below.
type Stress struct {
	// BulkAsks is the number of timed asks of a bulk-ask run.
	// 0 means DefaultBulkAsks.
	BulkAsks int
	// BulkSize is the size of a bulk message. 0 means DefaultBulkSize.
	BulkSize int
	// SlowFor is how long the sender of a slow-heap run sends.
	// 0 means DefaultSlowFor.
	SlowFor time.Duration
	// HeapCap cuts a slow-heap run short when the heap has grown by this
	// many bytes, so that a system that queues without bound cannot
	// exhaust the machine. 0 means DefaultHeapCap.
	HeapCap uint64
	// StreamBytes is how many bytes a stream run moves through its
	// stream. 0 means DefaultStreamBytes.
	StreamBytes int64
	// Timeout bounds a run: a bulk-ask or stream run, or what a
	// slow-heap run does beyond SlowFor. A run that takes longer is
	// closed and reported as failed. 0 means Timeout.
	Timeout time.Duration
}

// The defaults of Stress.
const (
	DefaultBulkAsks = 200
	DefaultBulkSize = 32 << 20
	DefaultSlowFor  = 2 * time.Second
	DefaultHeapCap  = 1 << 30

	DefaultStreamBytes = 1 << 30
)

// SlowDelay is how long the slow receiver of a slow-heap run takes over
// each message.
const SlowDelay = time.Millisecond

const (
	// bulkWindow bounds the bulk messages sent and not yet received, so
	// that a system that accepts sends without bound does not fill the
	// memory with bulk: with two, one is always waiting behind the one
	// being received, and the connection is never idle.
	bulkWindow = 2
	// heapInterval is how often a slow-heap run samples the heap.
	heapInterval = 10 * time.Millisecond
	// heapMetric is the heap's objects: live ones, and dead ones that the
	// collector has not yet swept.
	heapMetric = "/memory/classes/heap/objects:bytes"
)

// withDefaults returns o with its zero fields set to the defaults.
func (o Stress) withDefaults() Stress {
	if o.BulkAsks <= 0 {
		o.BulkAsks = DefaultBulkAsks
	}
	if o.BulkSize <= 0 {
		o.BulkSize = DefaultBulkSize
	}
	if o.SlowFor <= 0 {
		o.SlowFor = DefaultSlowFor
	}
	if o.HeapCap == 0 {
		o.HeapCap = DefaultHeapCap
	}
	if o.StreamBytes <= 0 {
		o.StreamBytes = DefaultStreamBytes
	}
	if o.Timeout <= 0 {
		o.Timeout = Timeout
	}
	return o
}

// closerFunc makes a function an io.Closer, for guarded.
type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// measureBulkAsk sets sys up for a bulk-ask run and makes it: a goroutine
// sends bulk messages back to back, and once the first has arrived, the
// calling goroutine makes o.BulkAsks asks, each timed; then the bulk
// sender stops and is waited for. An unsupported workload returns an
// error wrapping errors.ErrUnsupported.
func measureBulkAsk(sys System, c Case, o Stress) (s sample, err error) {
	goroutines := runtime.NumGoroutine()
	var received atomic.Int64
	first := make(chan struct{}) // closed by the first onBulk
	// credits holds a token per bulk message sent and not yet received:
	// the sender puts one before each send, the receiver takes it.
	credits := make(chan struct{}, bulkWindow)
	onBulk := func() {
		if received.Add(1) == 1 {
			close(first)
		}
		select {
		case <-credits:
		default: // not sent by this run's sender; nothing to give back
		}
	}
	ba, err := sys.NewBulkAsker(onBulk)
	if err != nil {
		return s, err
	}
	defer func() {
		if cerr := ba.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close: %w", cerr)
		}
		if err == nil {
			err = awaitGoroutines(goroutines)
		}
	}()
	req := payload(c.Payload)
	bulk := &bulkSender{ba: ba, msg: make([]byte, o.BulkSize), credits: credits, stop: make(chan struct{}), done: make(chan struct{})}
	halt := closerFunc(func() error {
		bulk.halt()
		return ba.Close()
	})
	lat := make([]time.Duration, o.BulkAsks)
	var b0, b1 int64
	err = guarded(halt, o.Timeout, func() error {
		for k := range warmCalls {
			reply, err := ba.Ask(req)
			if err == nil {
				err = sameBytes(reply, req)
			}
			if err != nil {
				return fmt.Errorf("warm-up ask %d: %w", k+1, err)
			}
		}
		go bulk.run() // stopped by halt; waited for below
		defer func() {
			bulk.halt()
			<-bulk.done // a send in progress ends, or guarded's timer closes ba
		}()
		select {
		case <-first:
		case <-bulk.done:
			return fmt.Errorf("the bulk sender stopped before any bulk message arrived: %v", bulk.err)
		}
		b0 = received.Load()
		err := ask(ba.Ask, req, len(lat), lat)
		b1 = received.Load()
		return err
	})
	if err == nil && bulk.err != nil {
		err = bulk.err
	}
	if err != nil {
		return s, err
	}
	slices.Sort(lat)
	s.n = len(lat)
	s.p50, s.p99, s.max = percentile(lat, 50), percentile(lat, 99), lat[len(lat)-1]
	s.bulk = int(b1 - b0)
	return s, nil
}

// bulkSender sends bulk messages, one after another, until halted or a
// send fails. measureBulkAsk owns it: it starts run, halts it, and waits
// for done.
type bulkSender struct {
	ba      BulkAsker
	msg     []byte
	credits chan struct{}
	stop    chan struct{} // closed by halt
	halted  atomic.Bool
	done    chan struct{} // closed when run returns
	err     error         // set before done is closed
}

func (b *bulkSender) run() {
	defer close(b.done)
	for i := 1; ; i++ {
		select {
		case b.credits <- struct{}{}:
		case <-b.stop:
			return
		}
		if b.halted.Load() {
			return
		}
		if err := b.ba.SendBulk(b.msg); err != nil {
			if !b.halted.Load() {
				b.err = fmt.Errorf("bulk message %d: %w", i, err)
			}
			return
		}
	}
}

// halt stops the sender after the send in progress. It is safe to call
// more than once, and from any goroutine.
func (b *bulkSender) halt() {
	if b.halted.CompareAndSwap(false, true) {
		close(b.stop)
	}
}

// measureSlowHeap sets sys up for a slow-heap run and makes it: the
// calling goroutine sends as fast as Send returns until o.SlowFor has
// passed (or the heap has grown by o.HeapCap), while another goroutine
// samples the heap; then the receiver stops taking its time, and the
// setup is closed and timed. An unsupported workload returns an error
// wrapping errors.ErrUnsupported.
func measureSlowHeap(sys System, c Case, o Stress) (s sample, err error) {
	goroutines := runtime.NumGoroutine()
	var over atomic.Bool      // the run is over: receive no longer sleeps nor counts
	var received atomic.Int64 // messages the receiver took during the run
	receive := func() {
		if !over.Load() {
			time.Sleep(SlowDelay)
			received.Add(1)
		}
	}
	snd, err := sys.NewSlowSender(receive)
	if err != nil {
		return s, err
	}
	defer func() {
		over.Store(true) // on every path, so that Close never waits a SlowDelay per queued message
		t0 := time.Now()
		cerr := snd.Close()
		s.closing = time.Since(t0)
		if cerr != nil && err == nil {
			err = fmt.Errorf("close: %w", cerr)
		}
		if err == nil {
			err = awaitGoroutines(goroutines)
		}
	}()
	msg := payload(c.Payload)

	runtime.GC()
	base := heapBytes()
	h := &heapSampler{base: base, peak: base, limit: o.HeapCap, stop: make(chan struct{}), done: make(chan struct{})}
	go h.run() // stopped and waited for below

	var sent int
	start := time.Now()
	deadline := start.Add(o.SlowFor)
	err = guarded(snd, o.SlowFor+o.Timeout, func() error {
		for !h.over.Load() && time.Now().Before(deadline) {
			if err := snd.Send(msg); err != nil {
				return fmt.Errorf("send %d: %w", sent+1, err)
			}
			sent++
		}
		return nil
	})
	s.elapsed = time.Since(start)
	s.received = int(received.Load())
	over.Store(true)
	close(h.stop)
	<-h.done
	h.sample()
	if err != nil {
		return s, err
	}
	s.n, s.sent = sent, sent
	s.heap = h.peak - h.base
	s.capped = h.over.Load()
	return s, nil
}

// leftoverWait is how long a stress run waits, after closing its setup,
// for the goroutines it started to exit.
const leftoverWait = 5 * time.Second

// awaitGoroutines waits until no more than n goroutines run, polling for
// at most leftoverWait, since a closed setup's last goroutines may take a
// moment to notice. More than n then is an error: a stress run must leave
// nothing behind, or the next run measures it too.
func awaitGoroutines(n int) error {
	deadline := time.Now().Add(leftoverWait)
	for {
		now := runtime.NumGoroutine()
		if now <= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d goroutines still running %v after close", now-n, leftoverWait)
		}
		time.Sleep(time.Millisecond)
	}
}

// heapSampler keeps the peak of the heap's objects, sampled every
// interval (0 means heapInterval), and sets over once it exceeds base by
// limit. Its owner starts run, closes stop, waits for done, and only then
// reads peak.
type heapSampler struct {
	base, peak, limit uint64
	interval          time.Duration
	over              atomic.Bool
	stop              chan struct{}
	done              chan struct{} // closed when run returns
}

func (h *heapSampler) run() {
	defer close(h.done)
	every := h.interval
	if every <= 0 {
		every = heapInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			h.sample()
		}
	}
}

func (h *heapSampler) sample() {
	h.peak = max(h.peak, heapBytes())
	if h.peak-h.base > h.limit {
		h.over.Store(true)
	}
}

// heapBytes returns the size of the heap's objects, live or not yet
// swept. Unlike runtime.ReadMemStats, it does not stop the world.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
