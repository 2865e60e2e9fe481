package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// summary is what the driver prints at the end of a job.
type summary struct {
	transport    string
	tasks        int
	limit        uint64
	rangeSize    uint64
	elapsed      time.Duration
	perExec      map[string]int // tasks each executor reported first
	relaunched   int
	relaunchedOn map[string]int
	lost         []string
	rejoined     []string // lost executors that registered again
	registered   int
	latencies    []time.Duration // executors' asks to the driver
	shipSize     int64           // the task code's size
	fetches      []fetchStat     // each executor's fetch of it
	list         listReport      // the list task
	total        uint64
	expected     uint64
}

// fetchStat is one executor's fetch of the task code.
type fetchStat struct {
	took  time.Duration
	bytes int64
}

func (s summary) ok() bool { return s.total == s.expected && s.list.ok }

func (s summary) write(w io.Writer) {
	fmt.Fprintf(w, "job: %d tasks over %s, counting the primes below %d in ranges of %d\n", s.tasks, s.transport, s.limit, s.rangeSize)
	rate := 0.0
	if s.elapsed > 0 {
		rate = float64(s.tasks) / s.elapsed.Seconds()
	}
	fmt.Fprintf(w, "time: %v, %.0f tasks/s\n", s.elapsed.Round(time.Microsecond), rate)
	fmt.Fprintf(w, "tasks per executor: %s\n", counts(s.perExec))
	fmt.Fprintf(w, "executors: %d registered, %d lost%s, %d registered again%s\n", s.registered, len(s.lost), listed(s.lost), len(s.rejoined), listed(s.rejoined))
	fmt.Fprintf(w, "re-launched tasks: %d", s.relaunched)
	if s.relaunched > 0 {
		fmt.Fprintf(w, ", ran on %s", counts(s.relaunchedOn))
	}
	fmt.Fprintln(w)
	if len(s.latencies) > 0 {
		fmt.Fprintf(w, "ask latency (executor -> driver RegisterExecutor and StatusUpdate, %d asks): p50 %v, p99 %v\n",
			len(s.latencies), percentile(s.latencies, 50), percentile(s.latencies, 99))
	} else {
		fmt.Fprintln(w, "ask latency: no samples (no executor answered StopExecutor)")
	}
	if len(s.fetches) > 0 {
		took := make([]time.Duration, len(s.fetches))
		var bytes int64
		var total time.Duration
		for i, f := range s.fetches {
			took[i], bytes, total = f.took, bytes+f.bytes, total+f.took
		}
		fmt.Fprintf(w, "task code: %s shipped to %d executors through the file server, SHA-256 checked; fetch p50 %v, slowest %v, %.0f MB/s each\n",
			mib(s.shipSize), len(s.fetches), percentile(took, 50).Round(time.Microsecond), slices.Max(took).Round(time.Microsecond),
			float64(bytes)/1e6/max(total.Seconds(), 1e-9))
	} else {
		fmt.Fprintln(w, "task code: no fetch reported (no executor answered StopExecutor)")
	}
	if s.list.ok {
		fmt.Fprintf(w, "large result: %d primes (%s, over the %s message limit) from %s through a stream in %v: OK\n",
			s.list.primes, mib(s.list.bytes), mib(maxMessage), s.list.executor, s.list.took.Round(time.Microsecond))
	} else {
		fmt.Fprintf(w, "large result: the list task failed on %s: %v\n", s.list.executor, s.list.err)
	}
	verdict := "OK"
	if s.total != s.expected {
		verdict = "WRONG"
	}
	fmt.Fprintf(w, "result: %d primes below %d (expected %d): %s\n", s.total, s.limit, s.expected, verdict)
}

// mib formats a byte count.
func mib(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}

func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func listed(xs []string) string {
	if len(xs) == 0 {
		return ""
	}
	return " (" + strings.Join(xs, ", ") + ")"
}

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(p/100*float64(len(s))+0.5) - 1
	rank = min(max(rank, 0), len(s)-1)
	return s[rank].Round(time.Microsecond)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress reports done()/total on w until ctx is done: a bar redrawn
// in place on a terminal, a plain line a second otherwise.
func progress(ctx context.Context, w io.Writer, term bool, total int, done func() int64) {
	every := time.Second
	if term {
		every = 100 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if term {
				fmt.Fprintf(w, "\r%s\n", bar(done(), total))
			}
			return
		case <-t.C:
			if term {
				fmt.Fprintf(w, "\r%s", bar(done(), total))
			} else {
				fmt.Fprintf(w, "progress: %d/%d tasks\n", done(), total)
			}
		}
	}
}

func bar(n int64, total int) string {
	const width = 40
	filled := width
	if total > 0 {
		filled = int(n * width / int64(total))
	}
	return fmt.Sprintf("[%s%s] %d/%d tasks", strings.Repeat("#", filled), strings.Repeat(".", width-filled), n, total)
}

// syncWriter serializes writes from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
