package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/examples/cluster/msg"
	"github.com/rpcenv/rpcenv/transports/inproc"
	"github.com/rpcenv/rpcenv/transports/quic"
	"github.com/rpcenv/rpcenv/transports/tcp"
)

// config is the command line, parsed.
type config struct {
	Role          string // "" (driver and executors in one process), "driver" or "executor"
	Transport     string // one-process run: inproc, tcp or quic
	Listen        string // driver: the URI to listen on
	Driver        string // executor: the driver's URI
	ID            string // executor: its ID (default: exec-PID)
	Executors     int    // one-process: how many; driver: how many to wait for
	Cores         int    // per executor
	Tasks         int
	RangeSize     uint64
	Heartbeat     time.Duration
	PeerTimeout   time.Duration // 0 means 5 heartbeats
	ShipSize      int64         // one-process run: the stand-in task code's size
	LookupTimeout time.Duration
	KillAfter     int
	HoldAfter     int
	UI            string    // driver: the status page's address, such as 127.0.0.1:4040; "" serves none
	Trace         string    // "stdout": print the spans of the first tasks; "" traces nothing
	exit          func(int) // for -kill-after; nil means os.Exit

	tel *telemetry // what UI and Trace set up; run sets it, nil for neither

	// For tests: uiUp is called with the status page's URL once it
	// serves; a one-process run's executors call taskGate before they
	// run a task (it returns when the task may run, or ctx is done) and
	// afterTask once they reported one.
	uiUp      func(url string)
	taskGate  func(ctx context.Context)
	afterTask func(completed int64)
}

// taskCode is the file the driver ships to its executors: its own
// executable when it runs as a process of its own, else a generated
// file of ShipSize bytes, which cleanup removes.
func (c config) taskCode() (path string, cleanup func(), err error) {
	if c.Role == "driver" {
		path, err = os.Executable()
		return path, func() {}, err
	}
	dir, err := os.MkdirTemp("", "cluster-task-code")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	if path, err = writeShipFile(dir, c.ShipSize); err != nil {
		cleanup()
		return "", nil, err
	}
	return path, cleanup, nil
}

// peerTimeout is the envs' Config.PeerTimeout: -peer-timeout, or five
// heartbeat intervals.
func (c config) peerTimeout() time.Duration {
	if c.PeerTimeout > 0 {
		return c.PeerTimeout
	}
	return 5 * c.Heartbeat
}

// usageError is bad input: main exits 2 for it, 1 for other errors.
type usageError struct{ error }

// driverName is the driver endpoint's name in its env.
const driverName = "driver"

// run runs cfg.Role's part of a job, writing the summary to stdout and
// progress and events to stderr. It returns an error if the job failed
// or its result is wrong.
func run(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	term := isTerminal(stderr)
	stderr = &syncWriter{w: stderr}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	if cfg.exit == nil {
		cfg.exit = os.Exit
	}
	if cfg.UI != "" && cfg.Role == "executor" {
		return usageError{errors.New("-ui serves the driver's status page: give it to -role driver, or to a one-process run")}
	}
	tel, err := newTelemetry(cfg, stdout) // nil for neither -ui nor -trace
	if err != nil {
		return err
	}
	defer tel.shutdown(context.Background())
	cfg.tel = tel
	switch cfg.Role {
	case "":
		return runLocal(ctx, cfg, stdout, stderr, term, log)
	case "driver":
		if cfg.Listen == "" {
			return usageError{errors.New("-role driver needs -listen, such as tcp://0.0.0.0:7077")}
		}
		env, err := core.NewEnv(tel.instrument(core.Config{Name: "driver", Listen: cfg.Listen, Transports: remoteTransports(log), MaxMessageSize: maxMessage,
			HeartbeatInterval: cfg.Heartbeat, PeerTimeout: cfg.peerTimeout(), Logger: log}))
		if err != nil {
			return usageError{err}
		}
		defer env.Shutdown(context.Background())
		if err := tel.observe(env); err != nil {
			return err
		}
		// The address is printed once the driver endpoint is registered
		// (and its task code served), so that an executor started on
		// seeing it finds the driver.
		up := make(chan struct{})
		var printed sync.WaitGroup
		printed.Go(func() {
			<-up // driveWith closes it on every path
			fmt.Fprintf(stdout, "driver: %s/%s\n", env.Address(), driverName)
		})
		defer printed.Wait()
		return driveWith(ctx, cfg, env, "", stdout, stderr, term, up)
	case "executor":
		if err := checkDriverURI(cfg.Driver, []string{"tcp", "quic"}); err != nil {
			return usageError{err}
		}
		return runExecutor(ctx, cfg, stderr, log)
	default:
		return usageError{fmt.Errorf("unknown -role %q (want driver or executor, or none for a one-process run)", cfg.Role)}
	}
}

func remoteTransports(log *slog.Logger) []core.Transport {
	return []core.Transport{tcp.New(tcp.Options{}), quic.New(quic.Options{Logger: log})}
}

// runLocal runs a driver and cfg.Executors executors in one process.
func runLocal(ctx context.Context, cfg config, stdout, stderr io.Writer, term bool, log *slog.Logger) error {
	var t core.Transport
	var listen string
	switch cfg.Transport {
	case "inproc", "":
		cfg.Transport = "inproc"
		t, listen = inproc.New(), "inproc://cluster"
	case "tcp":
		t, listen = tcp.New(tcp.Options{}), "tcp://127.0.0.1:0"
	case "quic":
		t, listen = quic.New(quic.Options{Logger: log}), "quic://127.0.0.1:0"
	default:
		return usageError{fmt.Errorf("unknown -transport %q (want inproc, tcp or quic)", cfg.Transport)}
	}
	envCfg := func(name, listen string) core.Config {
		return cfg.tel.instrument(core.Config{Name: name, Listen: listen, Transports: []core.Transport{t}, MaxMessageSize: maxMessage,
			HeartbeatInterval: cfg.Heartbeat, PeerTimeout: cfg.peerTimeout(), AskTimeout: 30 * time.Second, Logger: log})
	}
	denv, err := core.NewEnv(envCfg("driver", listen))
	if err != nil {
		return err
	}
	defer denv.Shutdown(context.Background())
	if err := cfg.tel.observe(denv); err != nil {
		return err
	}

	jobDone := make(chan error, 1)
	driverUp := make(chan struct{})
	go func() { jobDone <- driveWith(ctx, cfg, denv, cfg.Transport, stdout, stderr, term, driverUp) }()
	<-driverUp

	var envs []*core.Env
	defer func() {
		for _, e := range envs {
			e.Shutdown(context.Background())
		}
	}()
	var execs []*runningExecutor
	defer func() {
		for _, x := range execs {
			x.close()
		}
	}()
	for i := range cfg.Executors {
		id := fmt.Sprintf("exec-%d", i+1)
		eenv, err := core.NewEnv(envCfg(id, ""))
		if err != nil {
			return err
		}
		envs = append(envs, eenv)
		if err := cfg.tel.observe(eenv); err != nil {
			return err
		}
		x, err := startExecutor(ctx, eenv, execOptions{id: id, driverURI: denv.Address() + "/" + driverName, cores: cfg.Cores,
			heartbeat: cfg.Heartbeat, lookupTimeout: cfg.LookupTimeout, exit: cfg.exit, taskGate: cfg.taskGate, afterTask: cfg.afterTask})
		if err != nil {
			return err
		}
		execs = append(execs, x)
	}
	return <-jobDone
}

// runExecutor runs one executor in client mode until the driver stops it.
func runExecutor(ctx context.Context, cfg config, stderr io.Writer, log *slog.Logger) error {
	env, err := core.NewEnv(cfg.tel.instrument(core.Config{Name: "executor", Transports: remoteTransports(log), MaxMessageSize: maxMessage,
		HeartbeatInterval: cfg.Heartbeat, PeerTimeout: cfg.peerTimeout(), AskTimeout: 30 * time.Second, Logger: log}))
	if err != nil {
		return err
	}
	defer env.Shutdown(context.Background())
	id := cfg.ID
	if id == "" {
		id = fmt.Sprintf("exec-%d", os.Getpid())
	}
	x, err := startExecutor(ctx, env, execOptions{id: id, driverURI: cfg.Driver, cores: cfg.Cores, heartbeat: cfg.Heartbeat,
		lookupTimeout: cfg.LookupTimeout, killAfter: cfg.KillAfter, holdAfter: cfg.HoldAfter, exit: cfg.exit})
	if err != nil {
		var bad *badDriverURI
		if errors.As(err, &bad) {
			return usageError{err}
		}
		return err
	}
	defer x.close()
	fmt.Fprintf(stderr, "executor %s: registered with %s\n", id, cfg.Driver)
	if err := x.wait(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "executor %s: stopped by the driver after %d tasks\n", id, x.completed.Load())
	return nil
}

// driveWith runs the driver endpoint in env until the job is done, then
// runs the list task, stops the executors and prints the summary. It
// closes up (when not nil) once the driver endpoint is registered, or
// failed to be, on every path.
func driveWith(ctx context.Context, cfg config, env *core.Env, transport string, stdout, stderr io.Writer, term bool, up chan<- struct{}) error {
	if transport == "" {
		transport = env.Address()
	}
	j := job{Tasks: cfg.Tasks, RangeSize: cfg.RangeSize}
	d := newDriver(j, cfg.Executors, stderr)
	code, cleanup, err := cfg.taskCode()
	if err == nil {
		defer cleanup()
		d.ship, err = ship(env, code)
	}
	if err == nil {
		_, err = env.Register(driverName, msg.NewDriverEndpoint(d))
	}
	var ui *uiServer
	if err == nil && cfg.UI != "" {
		// Up before any executor can register, so that the page shows
		// them arriving.
		ui, err = serveStatus(cfg, d, env, transport, stderr)
	}
	if up != nil {
		close(up)
	}
	if err != nil {
		return err
	}
	if ui != nil {
		defer ui.close()
	}
	primes := make(chan []uint64, 1)                 // the reference: the total's count, and the list task's list
	go func() { primes <- primesBelow(j.limit()) }() // ends on its own

	bg, stopBg := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { d.runExpiry(bg, cfg.Heartbeat) })
	wg.Go(func() { progress(bg, stderr, term, j.Tasks, d.finished.Load) })
	select {
	case <-d.allDone:
	case <-ctx.Done():
	}
	stopBg()
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("driver: the job did not finish (%d/%d tasks): %w", d.finished.Load(), j.Tasks, err)
	}
	want := <-primes
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	list := d.listTask(lctx, want)
	cancel()
	stats := d.stopExecutors(ctx)
	s := d.summary(stats)
	s.list = list
	s.transport = transport
	s.expected = uint64(len(want))
	s.write(stdout)
	if !s.ok() {
		return fmt.Errorf("driver: wrong result %d, want %d", s.total, s.expected)
	}
	return nil
}
