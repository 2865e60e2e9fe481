package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/examples/cluster/msg"
)

// executor implements msg.ExecutorHandler and core.NetworkObserver. It is
// registered with core.WithConcurrency(cores), so its handlers run
// concurrently, one task per core.
type executor struct {
	id        string
	driver    msg.DriverRef
	killAfter int                       // > 0: die abruptly on the first task received after this many
	holdAfter int                       // > 0: hold the first task received after this many, and say so on stderr
	exit      func(int)                 // os.Exit, or a test's stand-in
	afterTask func(completed int64)     // nil, or a test's hook, called after each task is reported
	taskGate  func(ctx context.Context) // nil, or a test's hook, called before each task runs

	completed atomic.Int64
	mu        sync.Mutex
	idle      *sync.Cond // on mu; signalled when busy drops to 0
	busy      int        // LaunchTask handlers running
	latencies []int64    // ask round trips, ns

	self      *core.Ref     // for RegisterExecutor
	cores     int           // for RegisterExecutor
	heartbeat time.Duration // for RegisterExecutor
	rejoin    chan struct{} // capacity 1: the driver said to register again
	rejoins   atomic.Int64  // times registered again
	ready     chan struct{} // closed once the task code is fetched: tasks wait for it
	fetchTime time.Duration // on mu
	fetchSize int64         // on mu

	stopOnce   sync.Once
	stopped    chan struct{} // closed by StopExecutor
	lostOnce   sync.Once
	lostDriver chan struct{} // closed by OnDisconnected
}

// LaunchTask runs the task and asks StatusUpdate with its result; a list
// task streams its primes to the driver instead. Tasks wait for the task
// code to be fetched, as a Spark executor's wait for their jars.
func (x *executor) LaunchTask(c *core.Context, m msg.LaunchTask) error {
	select {
	case <-x.ready:
	case <-c.Context().Done():
		return nil
	}
	if m.List {
		if err := sendList(c.Context(), x.driver, x.id, m.TaskID, primesBelow(m.To)); err != nil {
			return fmt.Errorf("executor %s: list task: %w", x.id, err)
		}
		return nil
	}
	if x.holdAfter > 0 && x.completed.Load() >= int64(x.holdAfter) {
		// Keep the task and never answer: a test kills the process now
		// (SIGKILL), and the driver must re-launch the task elsewhere.
		fmt.Fprintf(os.Stderr, "executor %s: holding task %d\n", x.id, m.TaskID)
		<-c.Context().Done() // the env's shutdown, which a killed process never reaches
		return nil
	}
	if x.killAfter > 0 && x.completed.Load() >= int64(x.killAfter) {
		// Abruptly, holding a task the driver launched: no shutdown,
		// no goodbye. The driver must find out by itself.
		x.exit(3)
		return nil
	}
	if x.taskGate != nil {
		x.taskGate(c.Context())
		if c.Context().Err() != nil {
			return nil
		}
	}
	x.mu.Lock()
	x.busy++
	x.mu.Unlock()
	defer func() {
		x.mu.Lock()
		if x.busy--; x.busy == 0 {
			x.idle.Broadcast()
		}
		x.mu.Unlock()
	}()
	result := countPrimes(m.From, m.To)
	start := time.Now()
	ack, err := x.driver.StatusUpdate(c.Context(), msg.StatusUpdate{ExecutorID: x.id, TaskID: m.TaskID, Result: result})
	x.record(time.Since(start))
	if err != nil {
		return fmt.Errorf("executor %s: report task %d: %w", x.id, m.TaskID, err)
	}
	n := x.completed.Add(1)
	if x.afterTask != nil {
		x.afterTask(n)
	}
	if ack.Reregister {
		x.askRejoin()
	}
	return nil
}

// askRejoin has the heartbeat goroutine register again.
func (x *executor) askRejoin() {
	select {
	case x.rejoin <- struct{}{}:
	default: // already asked
	}
}

// register asks RegisterExecutor with the executor's own ref.
func (x *executor) register(ctx context.Context) (msg.Registered, error) {
	start := time.Now()
	reply, err := x.driver.RegisterExecutor(ctx, msg.RegisterExecutor{ExecutorID: x.id, Executor: x.self, Cores: x.cores, Heartbeat: x.heartbeat})
	x.record(time.Since(start))
	if err != nil {
		return reply, fmt.Errorf("register with the driver at %s: %w", x.driver.Ref(), err)
	}
	if !reply.Accepted {
		return reply, fmt.Errorf("the driver at %s refused executor %s: %s", x.driver.Ref(), x.id, reply.Reason)
	}
	return reply, nil
}

// StopExecutor waits for the tasks still reporting (the driver asks it
// as soon as it counted the last result, perhaps before that report's
// latency is recorded), answers with the statistics and lets the
// executor end.
func (x *executor) StopExecutor(c *core.Context, m msg.StopExecutor) (msg.ExecutorStats, error) {
	x.mu.Lock()
	for x.busy > 0 {
		x.idle.Wait()
	}
	st := msg.ExecutorStats{Tasks: int(x.completed.Load()), AskLatencies: append([]int64(nil), x.latencies...),
		FetchNanos: int64(x.fetchTime), FetchBytes: x.fetchSize}
	x.mu.Unlock()
	x.stopOnce.Do(func() { close(x.stopped) })
	return st, nil
}

// OnError drops errors: a failed report means the driver is gone, which
// OnDisconnected or the driver's own expiry handles.
func (x *executor) OnError(err error) {}

func (x *executor) OnConnected(remote string)               {}
func (x *executor) OnNetworkError(remote string, err error) {}
func (x *executor) OnDisconnected(remote string) {
	x.lostOnce.Do(func() { close(x.lostDriver) })
}

func (x *executor) record(d time.Duration) {
	x.mu.Lock()
	x.latencies = append(x.latencies, int64(d))
	x.mu.Unlock()
}

// execOptions configure startExecutor.
type execOptions struct {
	id            string
	driverURI     string
	cores         int
	heartbeat     time.Duration
	lookupTimeout time.Duration
	killAfter     int
	holdAfter     int
	exit          func(int)
	afterTask     func(completed int64)     // tests only
	taskGate      func(ctx context.Context) // tests only
	fetchTimeout  time.Duration             // bounds opening the task code; 0 means a minute
}

// runningExecutor is an executor registered with its driver, with its
// heartbeat goroutine.
type runningExecutor struct {
	*executor
	cancel context.CancelFunc
	wg     sync.WaitGroup // the heartbeat goroutine
}

// badDriverURI is a -driver that cannot be a driver's URI.
type badDriverURI struct {
	uri, why string
}

func (e *badDriverURI) Error() string { return fmt.Sprintf("-driver %q: %s", e.uri, e.why) }

// checkDriverURI rejects what no lookup could succeed with.
func checkDriverURI(uri string, schemes []string) error {
	scheme, rest, ok := strings.Cut(uri, "://")
	switch {
	case !ok || scheme == "":
		return &badDriverURI{uri, "malformed: want scheme://host:port/driver"}
	case !slices.Contains(schemes, scheme):
		return &badDriverURI{uri, fmt.Sprintf("unknown scheme %q (want one of %s)", scheme, strings.Join(schemes, ", "))}
	}
	addr, name, _ := strings.Cut(rest, "/")
	if addr == "" || name == "" || strings.Contains(name, "/") {
		return &badDriverURI{uri, "malformed: want scheme://host:port/driver"}
	}
	return nil
}

// startExecutor registers an executor endpoint in env, looks up the
// driver, registers with it and starts heartbeating.
func startExecutor(ctx context.Context, env *core.Env, o execOptions) (*runningExecutor, error) {
	x := &executor{id: o.id, killAfter: o.killAfter, holdAfter: o.holdAfter, exit: o.exit, afterTask: o.afterTask, taskGate: o.taskGate, cores: o.cores, heartbeat: o.heartbeat,
		rejoin: make(chan struct{}, 1), ready: make(chan struct{}), stopped: make(chan struct{}), lostDriver: make(chan struct{})}
	x.idle = sync.NewCond(&x.mu)
	var err error
	x.self, err = env.Register("executor", msg.NewExecutorEndpoint(x), core.WithConcurrency(o.cores))
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithTimeout(ctx, o.lookupTimeout)
	defer cancel()
	x.driver, err = msg.LookupDriver(lctx, env, o.driverURI)
	if err != nil {
		if errors.Is(err, core.ErrUnknownScheme) {
			return nil, &badDriverURI{o.driverURI, "unknown scheme"}
		}
		return nil, fmt.Errorf("cannot reach the driver at %s: %w", o.driverURI, err)
	}
	reply, err := x.register(lctx)
	if err != nil {
		return nil, err
	}
	// Heartbeats start before the fetch, which may take longer than the
	// driver's expiry.
	hctx, hcancel := context.WithCancel(ctx)
	r := &runningExecutor{executor: x, cancel: hcancel}
	r.wg.Go(func() { x.heartbeatLoop(hctx, o.heartbeat) })
	if reply.File != "" {
		timeout := o.fetchTimeout
		if timeout <= 0 {
			timeout = time.Minute
		}
		fctx, cancel := context.WithTimeout(ctx, timeout)
		took, size, err := fetch(fctx, env, reply.File, reply.FileSHA256)
		cancel()
		x.mu.Lock()
		x.fetchTime, x.fetchSize = took, size
		x.mu.Unlock()
		if err != nil {
			r.close()
			return nil, fmt.Errorf("executor %s: fetch the task code: %w", o.id, err)
		}
	}
	close(x.ready)
	return r, nil
}

// heartbeatLoop asks Heartbeat every interval until ctx is done or the
// executor stops. Each ask waits at most one interval: one lost in a
// partition is what the driver watches for. When the driver answers that
// it does not know the executor any more (it expired it), the executor
// registers again and gets work again.
func (x *executor) heartbeatLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-x.stopped:
			return
		case <-x.rejoin:
			x.reregister(ctx, interval)
		case <-t.C:
			hctx, cancel := context.WithTimeout(ctx, interval)
			ack, err := x.driver.Heartbeat(hctx, msg.Heartbeat{ExecutorID: x.id})
			cancel()
			if err == nil && ack.Reregister {
				x.reregister(ctx, interval)
			}
		}
	}
}

// reregister registers the executor again after the driver expired it.
// A failure is left to the next heartbeat, which asks again.
func (x *executor) reregister(ctx context.Context, interval time.Duration) {
	rctx, cancel := context.WithTimeout(ctx, 3*interval)
	defer cancel()
	if _, err := x.register(rctx); err != nil {
		fmt.Fprintf(os.Stderr, "executor %s: the driver expired it; registering again failed: %v\n", x.id, err)
		return
	}
	x.rejoins.Add(1)
	select {
	case <-x.rejoin: // asked again by a StatusAck answered before this
	default:
	}
	fmt.Fprintf(os.Stderr, "executor %s: the driver had expired it; registered again\n", x.id)
}

// wait returns when the driver stops the executor (nil), the driver goes
// away, or ctx is done.
func (r *runningExecutor) wait(ctx context.Context) error {
	select {
	case <-r.stopped:
		return nil
	case <-r.lostDriver:
		return fmt.Errorf("executor %s: lost the driver", r.id)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops the heartbeat goroutine and waits for it.
func (r *runningExecutor) close() {
	r.cancel()
	r.wg.Wait()
}
