// Command quickstart runs a driver and three workers in one process, over
// the in-process transport, and prints what they exchange.
//
// Each worker runs in a client-mode env (no listener of its own), looks up
// the driver, and registers by asking it with its own ref inside the
// message, as a Spark executor does. The driver keeps the refs and sends
// each worker jobs; workers answer with results sent back to the driver.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"sync"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/inproc"
)

// Register is asked by a worker when it starts.
type Register struct {
	Worker string
	Ref    *core.Ref // where the driver sends jobs
}

// Registered answers Register.
type Registered struct{ Slot int }

// Job asks a worker to sum the integers in [From, To).
type Job struct {
	ID       int
	From, To int64
}

// Result is a finished Job, sent back to the driver.
type Result struct {
	ID     int
	Worker string
	Sum    int64
}

func init() {
	core.RegisterMessage[Register]("quickstart.Register")
	core.RegisterMessage[Registered]("quickstart.Registered")
	core.RegisterMessage[Job]("quickstart.Job")
	core.RegisterMessage[Result]("quickstart.Result")
}

const (
	workers = 3
	jobs    = 6
)

// driver hands out jobs once every worker has registered.
type driver struct {
	workers []*core.Ref
	results chan Result
}

func (d *driver) Receive(c *core.Context, msg any) error {
	switch m := msg.(type) {
	case Register:
		d.workers = append(d.workers, m.Ref)
		fmt.Printf("driver  <- Register{%s} from %s\n", m.Worker, m.Ref)
		if err := c.Reply(Registered{Slot: len(d.workers)}); err != nil {
			return err
		}
		if len(d.workers) == workers {
			for i := range jobs {
				job := Job{ID: i, From: int64(i) * 1_000_000, To: int64(i+1) * 1_000_000}
				w := d.workers[i%workers]
				fmt.Printf("driver  -> Job{%d} to %s\n", job.ID, w)
				if err := w.Send(job); err != nil {
					return err
				}
			}
		}
	case Result:
		d.results <- m
	default:
		return fmt.Errorf("driver: unexpected %T", msg)
	}
	return nil
}

// worker sums ranges and reports to the driver.
type worker struct {
	name   string
	driver *core.Ref
}

func (w *worker) Receive(c *core.Context, msg any) error {
	job, ok := msg.(Job)
	if !ok {
		return fmt.Errorf("%s: unexpected %T", w.name, msg)
	}
	var sum int64
	for i := job.From; i < job.To; i++ {
		sum += i
	}
	fmt.Printf("%s <- Job{%d}, sum %d\n", w.name, job.ID, sum)
	return w.driver.Send(Result{ID: job.ID, Worker: w.name, Sum: sum})
}

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns := inproc.New() // the namespace the envs share

	driverEnv, err := core.NewEnv(core.Config{Name: "driver", Listen: "inproc://driver", Transports: []core.Transport{ns}})
	if err != nil {
		return err
	}
	defer driverEnv.Shutdown(context.Background())
	d := &driver{results: make(chan Result, jobs)}
	if _, err := driverEnv.Register("scheduler", d); err != nil {
		return err
	}

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		name := fmt.Sprintf("worker-%d", i+1)
		env, err := core.NewEnv(core.Config{Name: name, Transports: []core.Transport{ns}}) // client mode
		if err != nil {
			return err
		}
		defer env.Shutdown(context.Background())
		wg.Go(func() {
			drv, err := env.Lookup(ctx, "inproc://driver/scheduler")
			if err != nil {
				errs <- err
				return
			}
			self, err := env.Register("worker", &worker{name: name, driver: drv})
			if err != nil {
				errs <- err
				return
			}
			reply, err := core.Ask[Registered](ctx, drv, Register{Worker: name, Ref: self})
			if err != nil {
				errs <- err
				return
			}
			fmt.Printf("%s registered in slot %d\n", name, reply.Slot)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}

	var total int64
	for range jobs {
		select {
		case r := <-d.results:
			fmt.Printf("driver  <- Result{%d} from %s: %d\n", r.ID, r.Worker, r.Sum)
			total += r.Sum
		case <-ctx.Done():
			return fmt.Errorf("waiting for results: %w", ctx.Err())
		}
	}
	n := int64(jobs) * 1_000_000
	fmt.Printf("total %d (expected %d)\n", total, n*(n-1)/2)
	if total != n*(n-1)/2 {
		fmt.Fprintln(os.Stderr, "wrong total")
		os.Exit(1)
	}
	return nil
}
