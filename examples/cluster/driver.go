package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/examples/cluster/msg"
)

// driver implements msg.DriverHandler and core.NetworkObserver: it keeps
// the executors that registered, launches tasks on those with free cores,
// counts each task's result once, and re-launches the unfinished tasks of
// an executor that disconnects or stops heartbeating.
//
// Its handlers run one at a time in the driver endpoint's inbox; mu is
// for the goroutines outside it (the expiry ticker, the progress
// reporter and run's summary).
type driver struct {
	job          job
	minExecutors int       // launch nothing before this many registered
	events       io.Writer // one line per executor lost and task re-launched

	mu            sync.Mutex
	started       time.Time // zero until the job starts
	execs         map[string]*execState
	pending       []int64 // tasks to launch; re-launched ones go first
	done          []bool  // by task ID
	total         uint64  // sum of the counted results
	perExec       map[string]int
	relaunched    map[int64]bool // tasks taken back from a lost executor
	relaunchedOn  map[string]int // executor -> re-launched tasks it reported first
	lost          []string
	rejoined      []string // lost executors that registered again
	registerCount int
	gone          map[string]*execState // executors no longer registered, as they were last: for the status page
	failedOn      map[string]int        // executor -> tasks taken back from it when it was lost
	roundTrips    latencyRing           // LaunchTask sent to StatusUpdate received, for the status page

	ship     shipment        // the task code executors fetch
	listWant []uint64        // the primes below the limit, by the driver's own sieve (list task)
	listDone chan listReport // the list task's outcome, once

	finished atomic.Int64  // tasks counted, for the progress reporter
	allDone  chan struct{} // closed by the handler that counts the last task
	elapsed  time.Duration // set before allDone is closed
}

// execState is what the driver knows of one executor.
type execState struct {
	id        string
	ref       msg.ExecutorRef
	sender    string // Context.Sender of its RegisterExecutor: the label OnDisconnected uses
	cores     int
	running   map[int64]time.Time // task -> when LaunchTask was sent
	heartbeat time.Duration
	lastSeen  time.Time // its last RegisterExecutor, Heartbeat or StatusUpdate
	lastBeat  time.Time // its last RegisterExecutor or Heartbeat
	ended     string    // once dropped: "lost", or "stopped" when the job was over
}

func newDriver(j job, minExecutors int, events io.Writer) *driver {
	d := &driver{
		job:          j,
		minExecutors: max(minExecutors, 1),
		events:       events,
		execs:        map[string]*execState{},
		done:         make([]bool, j.Tasks),
		perExec:      map[string]int{},
		relaunched:   map[int64]bool{},
		relaunchedOn: map[string]int{},
		gone:         map[string]*execState{},
		failedOn:     map[string]int{},
		listDone:     make(chan listReport, 1),
		allDone:      make(chan struct{}),
	}
	for id := range j.Tasks {
		d.pending = append(d.pending, int64(id))
	}
	if j.Tasks == 0 {
		close(d.allDone)
	}
	return d
}

// RegisterExecutor keeps the executor's ref, and starts the job once
// minExecutors have registered. Executors that come later join it.
func (d *driver) RegisterExecutor(c *core.Context, m msg.RegisterExecutor) (msg.Registered, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case !d.wantsExecutors():
		return msg.Registered{Reason: "the job is over"}, nil
	case m.Executor == nil || m.Cores < 1 || m.ExecutorID == "":
		return msg.Registered{Reason: "want an executor ID, a ref and at least one core"}, nil
	case d.execs[m.ExecutorID] != nil:
		return msg.Registered{Reason: fmt.Sprintf("executor ID %q is taken", m.ExecutorID)}, nil
	}
	hb := m.Heartbeat
	if hb <= 0 {
		hb = time.Second
	}
	if slices.Contains(d.lost, m.ExecutorID) {
		d.rejoined = append(d.rejoined, m.ExecutorID)
		fmt.Fprintf(d.events, "driver: executor %s registered again\n", m.ExecutorID)
	}
	now := time.Now()
	delete(d.gone, m.ExecutorID)
	d.execs[m.ExecutorID] = &execState{
		id:        m.ExecutorID,
		ref:       msg.NewExecutorRef(m.Executor),
		sender:    c.Sender(),
		cores:     m.Cores,
		running:   map[int64]time.Time{},
		heartbeat: hb,
		lastSeen:  now,
		lastBeat:  now,
	}
	d.registerCount++
	if d.started.IsZero() && len(d.execs) >= d.minExecutors {
		d.started = time.Now()
	}
	d.schedule()
	return msg.Registered{Accepted: true, File: d.ship.uri, FileSHA256: d.ship.sum}, nil
}

// ListPrimes receives the list task's primes through a stream, checks
// them against the driver's own sieve, and answers with one byte: 1 when
// the list is right.
func (d *driver) ListPrimes(c *core.Context, m msg.ListPrimes, s *core.Stream) error {
	d.mu.Lock()
	want := d.listWant
	d.mu.Unlock()
	go func() { // the stream outlives the handler; it ends with the list
		defer s.Close()
		rep := readList(m, s, want)
		verdict := []byte{0}
		if rep.ok {
			verdict[0] = 1
		}
		s.Write(verdict)
		select {
		case d.listDone <- rep:
		default: // a second list (a re-launch): the first counts
		}
	}()
	return nil
}

// listTask has one executor list every prime below the limit: a result
// larger than a message may be, which comes back through a stream and is
// checked against want. It waits for the list, or ctx.
func (d *driver) listTask(ctx context.Context, want []uint64) listReport {
	limit := d.job.limit()
	d.mu.Lock()
	d.listWant = want
	xs := d.sortedExecs()
	d.mu.Unlock()
	if len(xs) == 0 {
		return listReport{err: errors.New("no executor left to run it")}
	}
	if err := xs[0].ref.LaunchTask(msg.LaunchTask{TaskID: -1, To: limit, List: true}); err != nil {
		return listReport{executor: xs[0].id, err: err}
	}
	select {
	case rep := <-d.listDone:
		return rep
	case <-ctx.Done():
		return listReport{executor: xs[0].id, err: ctx.Err()}
	}
}

// StatusUpdate counts the task's result unless it was counted already,
// frees the executor's core and launches more.
func (d *driver) StatusUpdate(c *core.Context, m msg.StatusUpdate) (msg.StatusAck, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if m.TaskID < 0 || m.TaskID >= int64(d.job.Tasks) {
		return msg.StatusAck{}, fmt.Errorf("no task %d in a job of %d", m.TaskID, d.job.Tasks)
	}
	dup := d.done[m.TaskID]
	if !dup {
		d.done[m.TaskID] = true
		d.total += m.Result
		d.perExec[m.ExecutorID]++
		if d.relaunched[m.TaskID] {
			d.relaunchedOn[m.ExecutorID]++
			fmt.Fprintf(d.events, "driver: re-launched task %d ran on %s\n", m.TaskID, m.ExecutorID)
		}
		if n := d.finished.Add(1); n == int64(d.job.Tasks) {
			d.elapsed = time.Since(d.started)
			close(d.allDone)
		}
	}
	x := d.execs[m.ExecutorID]
	if x != nil {
		now := time.Now()
		x.lastSeen = now
		if sent, ok := x.running[m.TaskID]; ok {
			d.roundTrips.add(now, now.Sub(sent))
		}
		delete(x.running, m.TaskID)
		d.schedule()
	}
	return msg.StatusAck{Duplicate: dup, Reregister: x == nil && d.wantsExecutors()}, nil
}

// Heartbeat notes that the executor is alive, or tells one the driver
// does not know (it expired it) to register again.
func (d *driver) Heartbeat(c *core.Context, m msg.Heartbeat) (msg.HeartbeatAck, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	x := d.execs[m.ExecutorID]
	if x != nil {
		x.lastSeen = time.Now()
		x.lastBeat = x.lastSeen
	}
	return msg.HeartbeatAck{Reregister: x == nil && d.wantsExecutors()}, nil
}

// wantsExecutors reports whether the job still has tasks to run. d.mu
// is held.
func (d *driver) wantsExecutors() bool { return d.finished.Load() < int64(d.job.Tasks) }

func (d *driver) OnConnected(remote string)               {}
func (d *driver) OnNetworkError(remote string, err error) {}

// OnDisconnected drops the executors whose connection this was.
func (d *driver) OnDisconnected(remote string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, x := range d.sortedExecs() {
		if x.sender == remote {
			d.drop(x, "disconnected")
		}
	}
}

// expire drops the executors that sent nothing for three heartbeat
// intervals, connected or not.
func (d *driver) expire(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, x := range d.sortedExecs() {
		if now.Sub(x.lastSeen) > 3*x.heartbeat {
			d.drop(x, fmt.Sprintf("no heartbeat for %v", now.Sub(x.lastSeen).Round(time.Millisecond)))
		}
	}
}

// drop forgets x and puts its unfinished tasks first in line. d.mu is held.
func (d *driver) drop(x *execState, why string) {
	delete(d.execs, x.id)
	d.gone[x.id] = x
	x.ended = "stopped"
	if d.finished.Load() == int64(d.job.Tasks) {
		return // the job is over; executors leaving is expected
	}
	x.ended = "lost"
	d.lost = append(d.lost, x.id)
	var back []int64
	for id := range x.running {
		if !d.done[id] {
			back = append(back, id)
			d.relaunched[id] = true
		}
	}
	slices.Sort(back)
	d.failedOn[x.id] += len(back)
	fmt.Fprintf(d.events, "driver: lost executor %s (%s); re-launching its %d unfinished tasks\n", x.id, why, len(back))
	d.pending = append(back, d.pending...)
	d.schedule()
}

// schedule launches pending tasks on executors with free cores. d.mu is held.
func (d *driver) schedule() {
	if d.started.IsZero() {
		return
	}
	var failed []*execState
	now := time.Now()
	for _, x := range d.sortedExecs() {
		for len(x.running) < x.cores && len(d.pending) > 0 {
			id := d.pending[0]
			d.pending = d.pending[1:]
			if d.done[id] {
				continue
			}
			from, to := d.job.task(id)
			if err := x.ref.LaunchTask(msg.LaunchTask{TaskID: id, From: from, To: to}); err != nil {
				d.pending = append([]int64{id}, d.pending...)
				failed = append(failed, x)
				break
			}
			x.running[id] = now
		}
	}
	for _, x := range failed {
		if d.execs[x.id] == x {
			d.drop(x, "launch failed")
		}
	}
}

func (d *driver) sortedExecs() []*execState {
	xs := make([]*execState, 0, len(d.execs))
	for _, x := range d.execs {
		xs = append(xs, x)
	}
	slices.SortFunc(xs, func(a, b *execState) int {
		if a.id < b.id {
			return -1
		}
		if a.id > b.id {
			return 1
		}
		return 0
	})
	return xs
}

// runExpiry calls expire every interval until ctx is done. The caller
// owns the goroutine that runs it.
func (d *driver) runExpiry(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			d.expire(now)
		}
	}
}

// stopExecutors asks every executor still registered to stop, and
// gathers their statistics.
func (d *driver) stopExecutors(ctx context.Context) []msg.ExecutorStats {
	d.mu.Lock()
	xs := d.sortedExecs()
	d.mu.Unlock()
	stats := make([]msg.ExecutorStats, len(xs))
	var wg sync.WaitGroup
	for i, x := range xs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			st, err := x.ref.StopExecutor(ctx, msg.StopExecutor{})
			if err != nil {
				fmt.Fprintf(d.events, "driver: stop executor %s: %v\n", x.id, err)
			}
			stats[i] = st
		})
	}
	wg.Wait()
	return stats
}

// summary returns the job's figures once allDone is closed.
func (d *driver) summary(stats []msg.ExecutorStats) summary {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := summary{
		tasks:        d.job.Tasks,
		limit:        d.job.limit(),
		rangeSize:    d.job.RangeSize,
		elapsed:      d.elapsed,
		perExec:      maps(d.perExec),
		relaunchedOn: maps(d.relaunchedOn),
		lost:         slices.Clone(d.lost),
		rejoined:     slices.Clone(d.rejoined),
		total:        d.total,
		registered:   d.registerCount,
	}
	for range d.relaunched {
		s.relaunched++
	}
	for _, st := range stats {
		for _, ns := range st.AskLatencies {
			s.latencies = append(s.latencies, time.Duration(ns))
		}
		if st.FetchBytes > 0 {
			s.fetches = append(s.fetches, fetchStat{time.Duration(st.FetchNanos), st.FetchBytes})
		}
	}
	s.shipSize = d.ship.size
	return s
}

func maps(m map[string]int) map[string]int {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
