package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/examples/cluster/msg"
	"github.com/rpcenv/rpcenv/internal/faultproxy"
	"github.com/rpcenv/rpcenv/internal/peertest"
	"github.com/rpcenv/rpcenv/transports/inproc"
	"github.com/rpcenv/rpcenv/transports/tcp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(proxyEnv) != "" {
		os.Exit(runProxyChild()) // the multi-host test's proxy process
	}
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	goleak.VerifyTestMain(m)
}

// testConfig is a small job: 200 tasks of 500 numbers (the primes below
// 100,000: 9,592). The heartbeat is long enough that a loaded machine
// does not expire a healthy executor.
func testConfig() config {
	return config{Executors: 4, Cores: 2, Tasks: 200, RangeSize: 500, Heartbeat: time.Second, ShipSize: 256 << 10,
		LookupTimeout: 10 * time.Second, exit: func(int) { panic("exit called") }}
}

func runJob(t *testing.T, cfg config) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr lockedBuffer
	err := run(ctx, cfg, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func TestOneProcessJobGetsTheRightResult(t *testing.T) {
	for _, tr := range []string{"inproc", "tcp", "quic"} {
		t.Run(tr, func(t *testing.T) {
			cfg := testConfig()
			cfg.Transport = tr
			out, errOut, err := runJob(t, cfg)
			if err != nil {
				t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
			}
			for _, want := range []string{
				"job: 200 tasks over " + tr,
				"result: 9592 primes below 100000 (expected 9592): OK",
				"executors: 4 registered, 0 lost",
				"ask latency (executor -> driver RegisterExecutor and StatusUpdate, 204 asks)",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("the summary lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestTheSieveMatchesTrialDivision(t *testing.T) {
	j := job{Tasks: 10, RangeSize: 100}
	var sum uint64
	for id := range int64(j.Tasks) {
		sum += countPrimes(j.task(id))
	}
	if want := uint64(len(primesBelow(j.limit()))); sum != want || want != 168 {
		t.Fatalf("trial division counts %d primes below 1000, the sieve %d; want 168", sum, want)
	}
}

// silentExecutor registers and then does nothing: no task, no heartbeat.
type silentExecutor struct{}

func (silentExecutor) LaunchTask(c *core.Context, m msg.LaunchTask) error { return nil }
func (silentExecutor) StopExecutor(c *core.Context, m msg.StopExecutor) (msg.ExecutorStats, error) {
	return msg.ExecutorStats{}, nil
}

// TestDriverExpiresASilentExecutorAndRelaunchesItsTasks: the silent
// executor stays connected, so only the heartbeat expiry can take its
// tasks back; the job completes only if it does.
func TestDriverExpiresASilentExecutorAndRelaunchesItsTasks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ns := inproc.New()
	cfg := testConfig()
	cfg.Executors = 2
	cfg.Heartbeat = 50 * time.Millisecond // how often the driver checks; each executor says its own interval
	denv, err := core.NewEnv(core.Config{Name: "driver", Listen: "inproc://driver", Transports: []core.Transport{ns}})
	if err != nil {
		t.Fatal(err)
	}
	defer denv.Shutdown(context.Background())
	var stdout, stderr lockedBuffer
	done := make(chan error, 1)
	up := make(chan struct{})
	go func() { done <- driveWith(ctx, cfg, denv, "inproc", &stdout, &stderr, false, up) }()
	<-up

	// The worker registers first: the job starts when the silent one
	// registers, so the silent one cannot expire before it holds tasks.
	eenv, err := core.NewEnv(core.Config{Name: "worker", Transports: []core.Transport{ns}})
	if err != nil {
		t.Fatal(err)
	}
	defer eenv.Shutdown(context.Background())
	x, err := startExecutor(ctx, eenv, execOptions{id: "worker", driverURI: "inproc://driver/driver", cores: 2,
		heartbeat: 2 * time.Second, lookupTimeout: 10 * time.Second, exit: cfg.exit})
	if err != nil {
		t.Fatal(err)
	}
	defer x.close()

	senv, err := core.NewEnv(core.Config{Name: "silent", Transports: []core.Transport{ns}})
	if err != nil {
		t.Fatal(err)
	}
	defer senv.Shutdown(context.Background())
	self, err := senv.Register("executor", msg.NewExecutorEndpoint(silentExecutor{}))
	if err != nil {
		t.Fatal(err)
	}
	drv, err := msg.LookupDriver(ctx, senv, "inproc://driver/driver")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := drv.RegisterExecutor(ctx, msg.RegisterExecutor{ExecutorID: "silent", Executor: self, Cores: 3, Heartbeat: 20 * time.Millisecond}); err != nil || !r.Accepted {
		t.Fatalf("register the silent executor: %+v, %v", r, err)
	}

	if err := <-done; err != nil {
		t.Fatalf("driver: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"lost (silent)", "re-launched tasks: 3, ran on worker 3", "(expected 9592): OK"} {
		if !strings.Contains(out, want) {
			t.Errorf("the summary lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr.String(), "lost executor silent (no heartbeat for") {
		t.Errorf("stderr does not say the silent executor expired:\n%s", stderr.String())
	}
}

func TestBadDriverURIFailsWithOneLineNamingIt(t *testing.T) {
	for _, tc := range []struct {
		uri, want string
		usage     bool
	}{
		{"not-a-uri", "malformed", true},
		{"http://127.0.0.1:7077/driver", `unknown scheme "http"`, true},
		{"tcp://127.0.0.1:7077", "malformed", true},
		{"tcp://127.0.0.1:1/driver", "cannot reach the driver", false},
		{"quic://127.0.0.1:1/driver", "cannot reach the driver", false},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			cfg := testConfig()
			cfg.Role, cfg.Driver = "executor", tc.uri
			_, _, err := runJob(t, cfg)
			if err == nil {
				t.Fatal("run succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.uri) || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %q and saying %q", msg, tc.uri, tc.want)
			}
			var u usageError
			if errors.As(err, &u) != tc.usage {
				t.Errorf("error %q: usage error = %v, want %v", msg, !tc.usage, tc.usage)
			}
		})
	}
}

type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	needle string // when set, seen is closed once the output contains it
	seen   chan struct{}
	wrote  chan struct{} // closed at the next Write; nil when no one waits
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wrote != nil {
		close(l.wrote)
		l.wrote = nil
	}
	n, err := l.b.Write(p)
	if l.needle != "" && strings.Contains(l.b.String(), l.needle) {
		close(l.seen)
		l.needle = ""
	}
	return n, err
}

// awaitMatch waits until the output matches re, failing the test if it
// does not within limit or if stop is closed first (a process exited).
func (l *lockedBuffer) awaitMatch(t *testing.T, re *regexp.Regexp, stop <-chan struct{}, limit time.Duration, what string) {
	t.Helper()
	deadline := time.After(limit)
	for {
		l.mu.Lock()
		if re.Match(l.b.Bytes()) {
			l.mu.Unlock()
			return
		}
		if l.wrote == nil {
			l.wrote = make(chan struct{})
		}
		wrote := l.wrote
		l.mu.Unlock()
		select {
		case <-wrote:
		case <-stop:
			if !re.MatchString(l.String()) {
				t.Fatalf("%s: the process ended first; output:\n%s", what, l)
			}
			return
		case <-deadline:
			t.Fatalf("waited %v for %s; output:\n%s", limit, what, l)
		}
	}
}

// await returns a channel closed once the output contains needle. Call it
// before the process starts writing.
func (l *lockedBuffer) await(needle string) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.needle, l.seen = needle, make(chan struct{})
	return l.seen
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// buildBinary builds the command once per test.
func buildBinary(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("no go command: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "cluster")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a child process, killed and waited for when the test ends.
type proc struct {
	cmd    *exec.Cmd
	stdout *lockedBuffer
	stderr *lockedBuffer
	exited chan struct{} // closed when Wait returns
	err    error         // Wait's result, set before exited is closed
}

func start(t *testing.T, bin string, firstLine chan<- string, args ...string) *proc {
	t.Helper()
	return startWith(t, bin, firstLine, &lockedBuffer{}, args...)
}

// startWith is start with the buffer that collects the child's stderr.
func startWith(t *testing.T, bin string, firstLine chan<- string, stderr *lockedBuffer, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), stdout: &lockedBuffer{}, stderr: stderr, exited: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	pipe, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() { // ends when the child's stdout closes
		defer close(copied)
		r := bufio.NewReader(pipe)
		line, err := r.ReadString('\n')
		p.stdout.Write([]byte(line))
		if firstLine != nil && err == nil {
			firstLine <- strings.TrimSpace(line)
		}
		io.Copy(p.stdout, r)
	}()
	go func() {
		<-copied
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("%v:\nstdout:\n%s\nstderr:\n%s", args, p.stdout, p.stderr)
		}
	})
	return p
}

func awaitExit(t *testing.T, p *proc, what string) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("waited 60s for %s to exit", what)
	}
}

// TestMultiProcessJobSurvivesAnExecutorDying runs a driver and three
// executor processes; one exits abruptly (os.Exit) holding a task, and the
// others must finish its work.
func TestMultiProcessJobSurvivesAnExecutorDying(t *testing.T) {
	bin := buildBinary(t)
	for _, scheme := range []string{"tcp", "quic"} {
		t.Run(scheme, func(t *testing.T) {
			victim := multiProcessJob(t, bin, scheme, []string{"-kill-after", "2"}, &lockedBuffer{}, nil)
			awaitExit(t, victim, "the victim")
			var ee *exec.ExitError
			if !errors.As(victim.err, &ee) || ee.ExitCode() != 3 {
				t.Errorf("the victim exited with %v, want exit status 3", victim.err)
			}
		})
	}
}

// TestMultiProcessJobSurvivesAnExecutorKilledBySIGKILL kills one executor
// process with SIGKILL while it holds a task: the driver must learn it from
// the lost connection, re-launch the task elsewhere, and finish with the
// right result.
func TestMultiProcessJobSurvivesAnExecutorKilledBySIGKILL(t *testing.T) {
	bin := buildBinary(t)
	for _, scheme := range []string{"tcp", "quic"} {
		t.Run(scheme, func(t *testing.T) {
			stderr := &lockedBuffer{}
			holding := stderr.await("holding task")
			multiProcessJob(t, bin, scheme, []string{"-hold-after", "2"}, stderr, func(victim *proc) {
				select {
				case <-holding:
				case <-time.After(60 * time.Second):
					t.Fatal("waited 60s for the victim to hold a task")
				}
				if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// multiProcessJob runs a driver and executors a, b and victim (with
// victimFlags) as processes over scheme, calls then (if set) once they are
// started, and checks that the driver finished the job with the right
// result and re-launched the victim's tasks on the others.
func multiProcessJob(t *testing.T, bin, scheme string, victimFlags []string, victimStderr *lockedBuffer, then func(victim *proc)) *proc {
	t.Helper()
	lines := make(chan string, 1)
	drv := start(t, bin, lines, "-role", "driver", "-listen", scheme+"://127.0.0.1:0", "-executors", "3",
		"-tasks", "300", "-range", "500", "-heartbeat", "500ms")
	var addr string
	select {
	case l := <-lines:
		addr = strings.TrimPrefix(l, "driver: ")
	case <-drv.exited:
		t.Fatalf("the driver exited: %v", drv.err)
	case <-time.After(30 * time.Second):
		t.Fatal("waited 30s for the driver's address")
	}
	common := []string{"-role", "executor", "-driver", addr, "-heartbeat", "500ms", "-cores", "1"}
	a := start(t, bin, nil, append(common, "-id", "a")...)
	b := start(t, bin, nil, append(common, "-id", "b")...)
	victim := startWith(t, bin, nil, victimStderr, append(append(common, "-id", "victim"), victimFlags...)...)
	if then != nil {
		then(victim)
	}
	awaitExit(t, drv, "the driver")
	if drv.err != nil {
		t.Fatalf("the driver failed: %v", drv.err)
	}
	awaitExit(t, a, "executor a")
	awaitExit(t, b, "executor b")
	out := drv.stdout.String()
	for _, want := range []string{"(expected 13848): OK", "lost (victim)", "tasks per executor: a "} {
		if !strings.Contains(out, want) {
			t.Errorf("the driver's summary lacks %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`re-launched tasks: (\d+), ran on (.*)`).FindStringSubmatch(out)
	if m == nil || m[1] == "0" || strings.Contains(m[2], "victim") {
		t.Errorf("the summary does not show the victim's tasks re-launched on the others:\n%s", out)
	}
	return victim
}

func TestBinaryRejectsAnUnknownScheme(t *testing.T) {
	bin := buildBinary(t)
	cmd := exec.Command(bin, "-role", "executor", "-driver", "ftp://127.0.0.1:7077/driver")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("exit: %v, want exit status 2", err)
	}
	if got := strings.TrimSpace(stderr.String()); strings.Count(got, "\n") != 0 || !strings.Contains(got, "ftp://127.0.0.1:7077/driver") {
		t.Errorf("stderr %q: want one line naming the URI", got)
	}
}

func TestDriverCountsADuplicateResultOnce(t *testing.T) {
	d := newDriver(job{Tasks: 2, RangeSize: 10}, 1, io.Discard)
	for i, wantDup := range []bool{false, true} {
		ack, err := d.StatusUpdate(nil, msg.StatusUpdate{ExecutorID: "a", TaskID: 0, Result: 4})
		if err != nil || ack.Duplicate != wantDup {
			t.Fatalf("report %d of task 0: %+v, %v; want Duplicate %v", i+1, ack, err, wantDup)
		}
	}
	if d.total != 4 || d.finished.Load() != 1 {
		t.Errorf("after a duplicate: total %d over %d tasks, want 4 over 1", d.total, d.finished.Load())
	}
	if _, err := d.StatusUpdate(nil, msg.StatusUpdate{ExecutorID: "a", TaskID: 2}); err == nil {
		t.Error("a report for a task outside the job was accepted")
	}
}

// An executor cut off from the driver for longer than the driver's
// expiry (three heartbeats) but shorter than the envs' PeerTimeout: the
// driver drops it and takes its tasks back, and once the link heals the
// executor's next heartbeat is answered "register again". It registers
// again and runs the rest of the job, with the right result.
func TestAnExecutorExpiredDuringAPartitionRegistersAgainAndFinishesTheJob(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := testConfig()
	cfg.Executors, cfg.Heartbeat = 1, 50*time.Millisecond
	envCfg := func(name, listen string) core.Config {
		return core.Config{Name: name, Listen: listen, Transports: []core.Transport{tcp.New(tcp.Options{})},
			HeartbeatInterval: cfg.Heartbeat, PeerTimeout: time.Minute, AskTimeout: time.Minute}
	}
	denv, err := core.NewEnv(envCfg("driver", "tcp://127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer denv.Shutdown(context.Background())
	proxy, err := faultproxy.NewTCP("127.0.0.1:0", strings.TrimPrefix(denv.Address(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()

	var stdout lockedBuffer
	events := &peertest.Buffer{}
	done := make(chan error, 1)
	up := make(chan struct{})
	go func() { done <- driveWith(ctx, cfg, denv, "tcp", &stdout, events, false, up) }()
	<-up

	eenv, err := core.NewEnv(envCfg("victim", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer eenv.Shutdown(context.Background())
	cut := make(chan struct{})
	x, err := startExecutor(ctx, eenv, execOptions{id: "victim", driverURI: "tcp://" + proxy.Addr() + "/driver", cores: 2,
		heartbeat: cfg.Heartbeat, lookupTimeout: 10 * time.Second, exit: cfg.exit,
		afterTask: func(n int64) {
			if n == 20 { // mid-job: the partition starts
				proxy.Partition()
				close(cut)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer x.close()

	peertest.AwaitClosed(t, cut, "20 tasks before the partition")
	awaitText(t, events, "lost executor victim (no heartbeat for", "the driver to expire the partitioned executor")
	proxy.Heal()
	if err := <-done; err != nil {
		t.Fatalf("driver: %v\nstdout:\n%s\nevents:\n%s", err, stdout.String(), events)
	}
	out := stdout.String()
	for _, want := range []string{"1 lost (victim), 1 registered again (victim)", "(expected 9592): OK"} {
		if !strings.Contains(out, want) {
			t.Errorf("the summary lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(events.String(), "driver: executor victim registered again") {
		t.Errorf("the driver did not see the executor register again:\n%s", events)
	}
	if n := x.rejoins.Load(); n != 1 {
		t.Errorf("the executor registered again %d times, want 1", n)
	}
	if n := x.completed.Load(); n <= 20 {
		t.Errorf("the executor completed %d tasks: none after the heal", n)
	}
}

// awaitText waits until b holds s.
func awaitText(t *testing.T, b *peertest.Buffer, s, what string) {
	t.Helper()
	deadline := time.After(peertest.Wait)
	for {
		seen, wrote := b.Contains(s)
		if seen {
			return
		}
		select {
		case <-wrote:
		case <-deadline:
			t.Fatalf("waited %v for %s; got:\n%s", peertest.Wait, what, b)
		}
	}
}
