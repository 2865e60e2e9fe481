// Command cluster runs a job on a driver and executors that talk through
// rpcenv, the way Spark's scheduler does: executors register with the
// driver by asking RegisterExecutor with their own ref inside, the driver
// launches tasks on them through those refs, and they report each result
// by asking StatusUpdate. The job counts the primes below Tasks*RangeSize
// and checks the total against a sieve.
//
// With no flags it runs a driver and 4 executors in one process over
// inproc. -role driver and -role executor run them as separate processes
// over tcp:// or quic://. See the README for the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	var cfg config
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.StringVar(&cfg.Role, "role", "", "driver or executor; none runs a driver and executors in one process")
	fs.StringVar(&cfg.Transport, "transport", "inproc", "one-process run: inproc, tcp or quic")
	fs.StringVar(&cfg.Listen, "listen", "", "driver: URI to listen on, such as tcp://0.0.0.0:7077 or quic://0.0.0.0:7077")
	fs.StringVar(&cfg.Driver, "driver", "", "executor: the driver's URI, such as tcp://host:7077/driver")
	fs.StringVar(&cfg.ID, "id", "", "executor: its ID (default exec-PID)")
	fs.IntVar(&cfg.Executors, "executors", 0, "one-process run: executors to start (default 4); driver: executors to wait for before launching (default 1)")
	fs.IntVar(&cfg.Cores, "cores", 2, "tasks each executor runs at once")
	fs.IntVar(&cfg.Tasks, "tasks", 1000, "tasks in the job")
	fs.Uint64Var(&cfg.RangeSize, "range", 2000, "numbers per task")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", time.Second, "executor heartbeat interval; the driver expires an executor silent for 3 intervals")
	fs.DurationVar(&cfg.PeerTimeout, "peer-timeout", 0, "how long a silent connection lives before it is declared dead (default 5 heartbeat intervals)")
	fs.Int64Var(&cfg.ShipSize, "ship-size", 64<<20, "one-process run: bytes of stand-in task code the driver ships to every executor (a -role driver ships its own executable)")
	fs.DurationVar(&cfg.LookupTimeout, "lookup-timeout", 10*time.Second, "executor: how long to try to reach the driver")
	fs.IntVar(&cfg.KillAfter, "kill-after", 0, "executor: after this many tasks, exit abruptly (code 3) on receiving the next one")
	fs.IntVar(&cfg.HoldAfter, "hold-after", 0, "executor: after this many tasks, hold the next one without running it and say so on stderr (to be killed)")
	fs.StringVar(&cfg.UI, "ui", "", "driver: serve the job's status page, /api/status and Prometheus /metrics on this address while it runs, such as 127.0.0.1:4040")
	fs.StringVar(&cfg.Trace, "trace", "", "stdout: print the OpenTelemetry spans of the first 3 tasks (driver -> executor -> driver) as JSON")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if cfg.Executors == 0 {
		cfg.Executors = 4
		if cfg.Role == "driver" {
			cfg.Executors = 1
		}
	}
	if cfg.Heartbeat <= 0 || cfg.Cores < 1 || cfg.Tasks < 0 || cfg.RangeSize == 0 || cfg.PeerTimeout < 0 {
		fmt.Fprintln(os.Stderr, "cluster: -heartbeat, -cores and -range must be positive, and -peer-timeout not negative")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "cluster: %v\n", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
