package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure Run.
type Options struct {
	Systems   []System
	Cases     []Case
	Rounds    int           // rounds over every case and system; at least 1
	Benchtime time.Duration // about how long one timed run takes
	Stress    Stress        // the stress workloads' parameters
	Progress  io.Writer     // gets a line per run; nil for none
}

// A Result is what one system measured on one case: for each metric, the
// median over the rounds.
type Result struct {
	System string
	Case   Case
	// NA says the system does not support the workload: the other
	// fields are zero.
	NA bool
	// N is the number of operations (asks or messages) of every timed
	// run, fixed in the first round; for Stream, the bytes of a run.
	N int
	// P50, P99 and Mean are the latencies of single asks, for Latency.
	P50, P99, Mean time.Duration
	// Rate is operations per second: asks completed, or for OneWay
	// messages counted by the receiver; for Stream, bytes per second.
	Rate float64
	// AllocsPerOp and BytesPerOp are heap allocations per operation,
	// client and server together (both live in this process).
	AllocsPerOp, BytesPerOp float64

	// Err says why a stress or stream case failed, in the round where
	// it first did; the figures are then zero.
	Err string
	// For BulkAsk, P50 and P99 are those of the asks, Max is the slowest
	// ask, and Bulk the bulk messages received while the asks ran.
	Max  time.Duration
	Bulk int
	// For SlowHeap: HeapGrowth is the peak size of the heap's objects
	// during the run minus their size just before it, in bytes; Sent and
	// Received count the messages of the run; Sending is how long the
	// sender sent, less than Stress.SlowFor if the heap grew past
	// Stress.HeapCap (Capped in any round); Closing is how long tearing
	// the setup down took after the run. For Stream, HeapGrowth is the
	// same, sampled while the stream runs, and Rate is the bytes of the
	// run over its time, from before the stream is opened to the
	// server's answer.
	HeapGrowth       float64
	Sent, Received   int
	Sending, Closing time.Duration
	Capped           bool
}

// Results are the outcome of Run.
type Results struct {
	Systems   []System
	Cases     []Case
	Rounds    int
	Benchtime time.Duration
	Stress    Stress // with the defaults filled in
	// Codecs holds the codec micro-benchmarks, when the caller ran them
	// (MeasureCodecs); Run does not.
	Codecs []CodecResult
	byKey  map[resultKey]Result
}

type resultKey struct {
	system string
	c      Case
}

// Get returns the result of the named system on c; ok is false if the
// system or the case was not run.
func (r *Results) Get(system string, c Case) (res Result, ok bool) {
	res, ok = r.byKey[resultKey{system, c}]
	return res, ok
}

// Set records a result, replacing any for the same system and case. It
// is for building Results by hand, in tests and for rendering.
func (r *Results) Set(res Result) {
	if r.byKey == nil {
		r.byKey = map[resultKey]Result{}
	}
	r.byKey[resultKey{res.System, res.Case}] = res
}

// sample is one timed run.
type sample struct {
	n              int
	elapsed        time.Duration
	p50, p99, mean time.Duration
	allocs, bytes  uint64 // in the timed part, all goroutines

	max            time.Duration // BulkAsk
	bulk           int           // BulkAsk
	heap           uint64        // SlowHeap, Stream
	sent, received int           // SlowHeap
	closing        time.Duration // SlowHeap; elapsed is the sending
	capped         bool          // SlowHeap
}

// Run measures every system on every case, Rounds times. Round one fixes
// each (system, case)'s operation count by calibration, so that every
// round does the same work; each round runs every case on every system,
// in an order of systems that rotates from round to round, so that noise
// from the machine falls on all of them alike. Each run sets its system
// up afresh and closes it after. The first error (a failed call, a wrong
// echo, a count that never arrives, anything slower than Timeout) ends
// Run with an error naming the system and the case, except in a stress
// case (BulkAsk, SlowHeap) or a Stream case, which does a fixed amount of
// work in every round, and whose errors are results: the case is
// reported as failed (Result.Err), and not run again in later rounds.
func Run(opts Options) (*Results, error) {
	if opts.Rounds < 1 {
		return nil, fmt.Errorf("rounds = %d: want at least 1", opts.Rounds)
	}
	if opts.Benchtime <= 0 {
		return nil, fmt.Errorf("benchtime = %v: want more than 0", opts.Benchtime)
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	stress := opts.Stress.withDefaults()
	res := &Results{Systems: opts.Systems, Cases: opts.Cases, Rounds: opts.Rounds, Benchtime: opts.Benchtime, Stress: stress}
	ns := map[resultKey]int{}           // calibrated operation counts
	samples := map[resultKey][]sample{} // nil for NA
	failed := map[resultKey]error{}     // stress cases only
	for round := range opts.Rounds {
		for _, c := range opts.Cases {
			for i := range opts.Systems {
				sys := opts.Systems[(i+round)%len(opts.Systems)]
				key := resultKey{sys.Name(), c}
				if round > 0 && (samples[key] == nil || failed[key] != nil) {
					continue // not supported, or failed
				}
				var s sample
				var err error
				switch c.Workload {
				case BulkAsk:
					s, err = measureBulkAsk(sys, c, stress)
				case SlowHeap:
					s, err = measureSlowHeap(sys, c, stress)
				case Stream:
					s, err = measureStream(sys, c, stress)
				default:
					s, err = measure(sys, c, ns[key], opts.Benchtime)
				}
				if errors.Is(err, errors.ErrUnsupported) {
					fmt.Fprintf(progress, "round %d/%d  %-18s %-14s n/a\n", round+1, opts.Rounds, c, sys.Name())
					continue
				}
				if err != nil && c.Workload.stress() {
					failed[key] = err
					fmt.Fprintf(progress, "round %d/%d  %-18s %-14s FAILED: %v\n", round+1, opts.Rounds, c, sys.Name(), err)
					continue
				}
				if err != nil {
					return nil, fmt.Errorf("%s, %s: %w", sys.Name(), c, err)
				}
				ns[key] = s.n
				samples[key] = append(samples[key], s)
				fmt.Fprintf(progress, "round %d/%d  %-18s %-14s %s\n", round+1, opts.Rounds, c, sys.Name(), s.summary(c))
			}
		}
	}
	for _, sys := range opts.Systems {
		for _, c := range opts.Cases {
			key := resultKey{sys.Name(), c}
			if err := failed[key]; err != nil {
				res.Set(Result{System: sys.Name(), Case: c, Err: err.Error()})
				continue
			}
			res.Set(summarize(sys.Name(), c, samples[key]))
		}
	}
	return res, nil
}

func (s sample) summary(c Case) string {
	switch c.Workload {
	case Latency:
		return fmt.Sprintf("n=%d p50 %v p99 %v", s.n, s.p50, s.p99)
	case BulkAsk:
		return fmt.Sprintf("n=%d p50 %v p99 %v max %v, %d bulk meanwhile", s.n, s.p50, s.p99, s.max, s.bulk)
	case SlowHeap:
		capped := ""
		if s.capped {
			capped = fmt.Sprintf(" (cut short at %v)", s.elapsed.Round(time.Millisecond))
		}
		return fmt.Sprintf("heap +%s%s, sent %d in %v, received %d, closed in %v", fmtMiB(float64(s.heap)), capped, s.sent, s.elapsed.Round(time.Millisecond), s.received, s.closing.Round(time.Microsecond))
	case Stream:
		return fmt.Sprintf("%s in %v: %s, heap +%s", sizeLabel(s.n), s.elapsed.Round(time.Millisecond), fmtMBps(float64(s.n)/s.elapsed.Seconds()), fmtMiB(float64(s.heap)))
	}
	return fmt.Sprintf("n=%d %.0f/s", s.n, float64(s.n)/s.elapsed.Seconds())
}

// summarize takes the median of each metric over the rounds' samples.
func summarize(system string, c Case, ss []sample) Result {
	r := Result{System: system, Case: c, NA: len(ss) == 0}
	if r.NA {
		return r
	}
	r.N = ss[0].n
	switch c.Workload {
	case BulkAsk:
		r.P50 = medianDuration(ss, func(s sample) time.Duration { return s.p50 })
		r.P99 = medianDuration(ss, func(s sample) time.Duration { return s.p99 })
		r.Max = medianDuration(ss, func(s sample) time.Duration { return s.max })
		r.Bulk = int(medianOf(ss, func(s sample) float64 { return float64(s.bulk) }))
		return r
	case SlowHeap:
		r.HeapGrowth = medianOf(ss, func(s sample) float64 { return float64(s.heap) })
		r.Sent = int(medianOf(ss, func(s sample) float64 { return float64(s.sent) }))
		r.Received = int(medianOf(ss, func(s sample) float64 { return float64(s.received) }))
		r.Sending = medianDuration(ss, func(s sample) time.Duration { return s.elapsed })
		r.Closing = medianDuration(ss, func(s sample) time.Duration { return s.closing })
		r.Capped = slices.ContainsFunc(ss, func(s sample) bool { return s.capped })
		return r
	case Stream:
		r.Rate = medianOf(ss, func(s sample) float64 { return float64(s.n) / s.elapsed.Seconds() })
		r.HeapGrowth = medianOf(ss, func(s sample) float64 { return float64(s.heap) })
		return r
	}
	r.P50 = medianDuration(ss, func(s sample) time.Duration { return s.p50 })
	r.P99 = medianDuration(ss, func(s sample) time.Duration { return s.p99 })
	r.Mean = medianDuration(ss, func(s sample) time.Duration { return s.mean })
	r.Rate = medianOf(ss, func(s sample) float64 { return float64(s.n) / s.elapsed.Seconds() })
	r.AllocsPerOp = medianOf(ss, func(s sample) float64 { return float64(s.allocs) / float64(s.n) })
	r.BytesPerOp = medianOf(ss, func(s sample) float64 { return float64(s.bytes) / float64(s.n) })
	return r
}

func medianOf(ss []sample, f func(sample) float64) float64 {
	xs := make([]float64, len(ss))
	for i, s := range ss {
		xs[i] = f(s)
	}
	return median(xs)
}

func medianDuration(ss []sample, f func(sample) time.Duration) time.Duration {
	return time.Duration(medianOf(ss, func(s sample) float64 { return float64(f(s)) }))
}

// median returns the middle value of xs, or the mean of the two middle
// values when there is an even number; 0 for none. xs is not modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value with at least p% of the values
// at or below it; 0 for none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(float64(len(sorted)) * p / 100))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// warmCalls is how many asks each caller makes, with full checks of the
// reply, before anything is timed; warmMessages is the same for one-way.
// Then, once n is known, an untimed run of n/settleDiv operations lets
// the fresh setup reach its steady state (the kernel's socket buffers
// grow, pools and free lists fill) before the timed run: without it, a
// one-way run of 250 ms on a new TCP connection measured half the
// steady rate.
const (
	warmCalls    = 4
	warmMessages = 64
	settleDiv    = 4
)

// measure sets sys up for c, warms it up, calibrates n if it is 0, and
// times one run of n operations. An unsupported workload returns an error
// wrapping errors.ErrUnsupported.
func measure(sys System, c Case, n int, benchtime time.Duration) (s sample, err error) {
	req := payload(c.Payload)
	if c.Workload == OneWay {
		return measureOneWay(sys, req, n, benchtime)
	}
	a, err := sys.NewAsker(c.Callers)
	if err != nil {
		return s, err
	}
	defer func() {
		if cerr := a.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close: %w", cerr)
		}
	}()
	callers := a.Callers()
	if len(callers) != c.Callers {
		return s, fmt.Errorf("the asker has %d callers, want %d", len(callers), c.Callers)
	}
	limit := Timeout + 10*benchtime
	err = guarded(a, limit, func() error { return warmUp(callers, req) })
	if err != nil {
		return s, err
	}
	if n == 0 {
		n, err = calibrate(c.Callers, benchtime, func(n int) (time.Duration, error) {
			var d time.Duration
			err := guarded(a, limit, func() (err error) {
				d, err = newAskRun(callers, req, n, nil).run()
				return err
			})
			return d, err
		})
		if err != nil {
			return s, err
		}
	}
	if k := n / settleDiv; k > 0 {
		err = guarded(a, limit, func() error {
			_, err := newAskRun(callers, req, k, nil).run()
			return err
		})
		if err != nil {
			return s, fmt.Errorf("settling run: %w", err)
		}
	}
	var lat []time.Duration
	if c.Workload == Latency {
		lat = make([]time.Duration, n)
	}
	r := newAskRun(callers, req, n, lat)
	err = guarded(a, limit, func() error {
		return timed(&s, r.run)
	})
	if err != nil {
		return s, err
	}
	if lat != nil {
		slices.Sort(lat)
		s.p50, s.p99 = percentile(lat, 50), percentile(lat, 99)
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		s.mean = sum / time.Duration(len(lat))
	}
	s.n = n
	return s, nil
}

// measureOneWay is measure for OneWay.
func measureOneWay(sys System, msg []byte, n int, benchtime time.Duration) (s sample, err error) {
	snd, err := sys.NewSender()
	if err != nil {
		return s, err
	}
	defer func() {
		if cerr := snd.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close: %w", cerr)
		}
	}()
	limit := Timeout + 10*benchtime
	send := func(n int) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			start := time.Now()
			err := snd.SendN(msg, n)
			return time.Since(start), err
		}
	}
	if err := guarded(snd, limit, func() error { return snd.SendN(msg, warmMessages) }); err != nil {
		return s, fmt.Errorf("warm-up: %w", err)
	}
	if n == 0 {
		n, err = calibrate(1, benchtime, func(n int) (d time.Duration, err error) {
			err = guarded(snd, limit, func() (err error) {
				d, err = send(n)()
				return err
			})
			return d, err
		})
		if err != nil {
			return s, err
		}
	}
	if k := n / settleDiv; k > 0 {
		if err := guarded(snd, limit, func() error { return snd.SendN(msg, k) }); err != nil {
			return s, fmt.Errorf("settling run: %w", err)
		}
	}
	if err := guarded(snd, limit, func() error { return timed(&s, send(n)) }); err != nil {
		return s, err
	}
	s.n = n
	return s, nil
}

// timed runs f after a garbage collection, recording its duration and
// the heap allocations made meanwhile into s.
func timed(s *sample, f func() (time.Duration, error)) error {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	d, err := f()
	runtime.ReadMemStats(&after)
	s.elapsed = d
	s.allocs = after.Mallocs - before.Mallocs
	s.bytes = after.TotalAlloc - before.TotalAlloc
	return err
}

// guarded runs f and, if it has not returned within limit, closes c, so
// that whatever f waits for fails instead of hanging.
func guarded(c io.Closer, limit time.Duration, f func() error) error {
	var fired atomic.Bool
	t := time.AfterFunc(limit, func() {
		fired.Store(true)
		c.Close()
	})
	err := f()
	t.Stop()
	if fired.Load() {
		return fmt.Errorf("no result within %v (closed the connection; then: %v)", limit, err)
	}
	return err
}

// calibrate returns how many operations make a run of about benchtime.
// It runs start operations, then more (at least twice, at most a hundred
// times as many each time) until a run takes at least benchtime/10, runs
// that count once more, since the first runs on a fresh connection are
// often slower, and scales the faster of the two runs to benchtime. If
// the second run is shorter than benchtime/10, it goes on growing.
func calibrate(start int, benchtime time.Duration, run func(n int) (time.Duration, error)) (int, error) {
	n := max(start, 1)
	var first time.Duration // a run of n that took at least benchtime/10
	for {
		d, err := run(n)
		if err != nil {
			return 0, fmt.Errorf("calibration with %d operations: %w", n, err)
		}
		if d >= benchtime/10 {
			if first == 0 {
				first = d
				continue
			}
			d = min(d, first)
			return max(int(float64(n)*float64(benchtime)/float64(d)), start, 1), nil
		}
		first = 0
		next := 100 * n
		if d > 0 { // aim at benchtime/5, so that the next run likely suffices
			next = int(float64(n) * float64(benchtime/5) / float64(d))
		}
		n = min(max(next, 2*n), 100*n)
	}
}

// warmUp makes warmCalls asks with every caller at once, checking each
// reply byte for byte.
func warmUp(callers []AskFunc, req []byte) error {
	var wg sync.WaitGroup
	errs := make([]error, len(callers))
	for i, call := range callers {
		wg.Go(func() {
			for k := range warmCalls {
				reply, err := call(req)
				if err == nil {
					err = sameBytes(reply, req)
				}
				if err != nil {
					errs[i] = fmt.Errorf("warm-up call %d of caller %d: %w", k+1, i+1, err)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// sameBytes says how reply differs from req, if it does.
func sameBytes(reply, req []byte) error {
	if len(reply) != len(req) {
		return fmt.Errorf("the reply has %d bytes, the request %d", len(reply), len(req))
	}
	if i := firstDiff(reply, req); i >= 0 {
		return fmt.Errorf("the reply differs from the request at byte %d of %d", i, len(req))
	}
	return nil
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}

// askRun is one run of n asks split among callers, whose goroutines
// are started before the run and wait for it, so that starting them is
// neither timed nor counted.
type askRun struct {
	callers []AskFunc
	req     []byte
	n       int
	lat     []time.Duration // one per ask, or nil
	start   chan struct{}
	wg      sync.WaitGroup
	errs    []error
}

// newAskRun prepares a run; lat, if not nil, gets each ask's duration
// (with one caller only).
func newAskRun(callers []AskFunc, req []byte, n int, lat []time.Duration) *askRun {
	r := &askRun{callers: callers, req: req, n: n, lat: lat}
	if len(callers) == 1 {
		return r // run asks inline
	}
	r.start = make(chan struct{})
	r.errs = make([]error, len(callers))
	for i, call := range callers {
		share := n / len(callers)
		if i < n%len(callers) {
			share++
		}
		r.wg.Go(func() {
			<-r.start
			r.errs[i] = ask(call, req, share, nil)
		})
	}
	return r
}

// run makes the asks and returns how long they took.
func (r *askRun) run() (time.Duration, error) {
	t0 := time.Now()
	if r.start == nil {
		err := ask(r.callers[0], r.req, r.n, r.lat)
		return time.Since(t0), err
	}
	close(r.start)
	r.wg.Wait()
	return time.Since(t0), errors.Join(r.errs...)
}

// ask makes n asks with call, checking each reply's length.
func ask(call AskFunc, req []byte, n int, lat []time.Duration) error {
	for i := range n {
		var t0 time.Time
		if lat != nil {
			t0 = time.Now()
		}
		reply, err := call(req)
		if lat != nil {
			lat[i] = time.Since(t0)
		}
		if err != nil {
			return fmt.Errorf("ask %d of %d: %w", i+1, n, err)
		}
		if len(reply) != len(req) {
			return fmt.Errorf("ask %d of %d: the reply has %d bytes, the request %d", i+1, n, len(reply), len(req))
		}
	}
	return nil
}
