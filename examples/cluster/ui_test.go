package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// pacer holds every task at the executors' gate until the test lets it
// through, so that a test looks at the job at the points it chooses,
// whatever the machine's speed: no sleep, no guess at how long anything
// takes. The waits below have limits only so that a broken job fails
// the test instead of hanging it.
type pacer struct {
	started     chan struct{} // closed when the first task reaches the gate
	startedOnce sync.Once
	release     chan struct{} // each value lets one task run
	all         chan struct{} // closed by finish: every task runs
	finishOnce  sync.Once
	reported    chan struct{} // a value per task reported to (and counted by) the driver
}

// pacerWait bounds each wait of a paced test.
const pacerWait = 30 * time.Second

func newPacer(tasks int) *pacer {
	return &pacer{started: make(chan struct{}), release: make(chan struct{}), all: make(chan struct{}),
		reported: make(chan struct{}, 2*tasks)}
}

// gate is config.taskGate. The first task to reach it means the job has
// started, so every executor has registered (the driver launches nothing
// before cfg.Executors have).
func (p *pacer) gate(ctx context.Context) {
	p.startedOnce.Do(func() { close(p.started) })
	select {
	case <-p.release:
	case <-p.all:
	case <-ctx.Done():
	}
}

// afterTask is config.afterTask: the executor got the driver's answer to
// its StatusUpdate, so the driver has counted the task.
func (p *pacer) afterTask(int64) {
	select {
	case p.reported <- struct{}{}:
	default: // more reports than the test waits for: no one counts them
	}
}

func (p *pacer) awaitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-p.started:
	case <-time.After(pacerWait):
		t.Fatalf("waited %v for the first task to reach an executor", pacerWait)
	}
}

// let lets n more tasks run and returns once the driver has counted them.
func (p *pacer) let(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(pacerWait)
	for i := range n {
		select {
		case p.release <- struct{}{}:
		case <-deadline:
			t.Fatalf("waited %v to let task %d of %d run", pacerWait, i+1, n)
		}
	}
	for i := range n {
		select {
		case <-p.reported:
		case <-deadline:
			t.Fatalf("waited %v for %d tasks to be reported; %d were", pacerWait, n, i)
		}
	}
}

// finish lets every task run.
func (p *pacer) finish() { p.finishOnce.Do(func() { close(p.all) }) }

// pacedJob is a one-process job with the status page on a free port,
// paced by its pacer.
type pacedJob struct {
	*pacer
	url            string // the status page
	stdout, stderr *lockedBuffer
	done           chan struct{} // closed when run returned
	err            error         // run's result, set before done is closed
}

// startPacedJob starts a job of the given tasks with -ui on
// 127.0.0.1:0, and returns once the page serves and every executor has
// registered. Nothing is counted until the test lets tasks run; the test
// ends by calling finish (a cleanup does it too).
func startPacedJob(t *testing.T, tasks int) *pacedJob {
	t.Helper()
	cfg := testConfig()
	cfg.Tasks = tasks
	cfg.UI = "127.0.0.1:0"
	p := newPacer(tasks)
	cfg.taskGate, cfg.afterTask = p.gate, p.afterTask
	urls := make(chan string, 1)
	cfg.uiUp = func(url string) { urls <- url }
	j := &pacedJob{pacer: p, stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	go func() {
		defer close(j.done)
		j.err = run(ctx, cfg, j.stdout, j.stderr)
	}()
	t.Cleanup(func() {
		p.finish()
		<-j.done
		cancel()
	})
	select {
	case j.url = <-urls:
	case <-j.done:
		t.Fatalf("run ended before the status page served: %v\nstderr:\n%s", j.err, j.stderr)
	case <-time.After(pacerWait):
		t.Fatalf("waited %v for the status page", pacerWait)
	}
	p.awaitStarted(t)
	return j
}

// finish lets the rest of the job run and checks its result.
func (j *pacedJob) finish(t *testing.T) {
	t.Helper()
	j.pacer.finish()
	select {
	case <-j.done:
	case <-time.After(pacerWait):
		t.Fatalf("waited %v for the job to end", pacerWait)
	}
	if j.err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", j.err, j.stdout, j.stderr)
	}
	if out := j.stdout.String(); !strings.Contains(out, ": OK\n") || strings.Contains(out, "WRONG") {
		t.Errorf("the job's summary:\n%s", out)
	}
}

// get fetches url and returns its body, failing the test on any error or
// a status other than 200.
func get(t *testing.T, client *http.Client, url string) (string, http.Header) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	return string(body), resp.Header
}

func getStatus(t *testing.T, client *http.Client, url string) jobStatus {
	t.Helper()
	body, _ := get(t, client, url+"api/status")
	var st jobStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/api/status is not a status: %v\n%s", err, body)
	}
	return st
}

func TestStatusPageAndMetricsAreServedWhileTheJobRuns(t *testing.T) {
	const tasks = 40
	j := startPacedJob(t, tasks)
	client := &http.Client{Transport: &http.Transport{}, Timeout: pacerWait}
	defer client.CloseIdleConnections()

	page, h := get(t, client, j.url)
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("/ has Content-Type %q, want text/html", ct)
	}
	for _, want := range []string{"<title>rpcenv cluster", `id="executors"`, "api/status", "<svg"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, external := range []string{"src=", "<link", "@import", "url("} {
		if strings.Contains(page, external) {
			t.Errorf("the page loads something (%q): it must be one file", external)
		}
	}

	// Every executor registered and holds two tasks at the gate; none
	// is counted.
	st := getStatus(t, client, j.url)
	if !st.Job.Started || st.Job.Finished || st.Job.Tasks != tasks || st.Job.Done != 0 || st.Job.Running != 8 || st.Job.Pending != tasks-8 {
		t.Errorf("before any task ran: %+v, want started, 0 of %d done, 8 running, %d pending", st.Job, tasks, tasks-8)
	}
	if len(st.Executors) != 4 {
		t.Fatalf("%d executors, want 4: %+v", len(st.Executors), st.Executors)
	}
	for i, x := range st.Executors {
		if want := "exec-" + string(rune('1'+i)); x.ID != want || x.State != "running" || x.Cores != 2 || x.Running != 2 || !x.Connected {
			t.Errorf("executor %d: %+v, want %s running 2 tasks on 2 cores, connected", i, x, want)
		}
	}
	if st.Driver.Name != "driver" || st.Driver.Peers != 4 || len(st.Driver.Endpoints) == 0 {
		t.Errorf("the driver env: %+v, want driver with 4 peers and its endpoints", st.Driver)
	}

	j.let(t, 10)
	st = getStatus(t, client, j.url)
	done := 0
	for _, x := range st.Executors {
		done += x.Done
	}
	if st.Job.Done != 10 || done != 10 || st.Job.ElapsedMs <= 0 {
		t.Errorf("after 10 tasks: %+v, executors' done adding up to %d; want 10 done", st.Job, done)
	}
	var samples uint32
	for _, p := range st.RoundTrips {
		samples += p.N
		if p.P50Ms <= 0 || p.P99Ms < p.P50Ms || p.MaxMs < p.P99Ms {
			t.Errorf("a round-trip point out of order: %+v", p)
		}
	}
	if samples != 10 {
		t.Errorf("%d round trips charted, want 10: %+v", samples, st.RoundTrips)
	}

	metrics, _ := get(t, client, j.url+"metrics")
	for _, want := range []string{
		"cluster_tasks_done_total{", "cluster_tasks_total{", `cluster_executors{`, // the job's own
		"rpc_client_call_duration_seconds_bucket{", "rpc_server_call_duration_seconds_bucket{", // rpcotel's interceptors
		`rpc_method="driver/msg.StatusUpdate"`,
		"rpcenv_endpoint_messages_handled_total{", "rpcenv_connections_up_total{", // rpcotel.Observe
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !metricIs(metrics, "cluster_tasks_done_total", "10") {
		t.Errorf("/metrics does not count 10 tasks done:\n%s", grepLines(metrics, "cluster_tasks"))
	}

	j.finish(t)
	if !strings.Contains(j.stderr.String(), "ui: "+j.url) {
		t.Errorf("stderr does not say where the page is:\n%s", j.stderr)
	}
	if _, err := client.Get(j.url); err == nil {
		t.Error("the status page still serves after the job")
	}
}

// metricIs reports whether a sample of the metric name has the value.
func metricIs(text, name, value string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			if f := strings.Fields(l); f[len(f)-1] == value {
				return true
			}
		}
	}
	return false
}

func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestUIIsRefusedForAnExecutor(t *testing.T) {
	cfg := testConfig()
	cfg.Role, cfg.Driver, cfg.UI = "executor", "tcp://127.0.0.1:1/driver", "127.0.0.1:0"
	_, _, err := runJob(t, cfg)
	var u usageError
	if err == nil || !errors.As(err, &u) || !strings.Contains(err.Error(), "-ui") {
		t.Errorf("an executor with -ui: %v, want a usage error naming -ui", err)
	}
}

func TestUnknownTraceIsAUsageError(t *testing.T) {
	cfg := testConfig()
	cfg.Trace = "jaeger"
	_, _, err := runJob(t, cfg)
	var u usageError
	if err == nil || !errors.As(err, &u) || !strings.Contains(err.Error(), `"jaeger"`) {
		t.Errorf("-trace jaeger: %v, want a usage error naming it", err)
	}
}
