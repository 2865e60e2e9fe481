package sched_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/examples/sched"
	"github.com/rpcenv/rpcenv/transports/inproc"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// driver implements sched.DriverHandler, plus core.Starter to check that
// NewDriverEndpoint passes OnStart through.
type driver struct {
	started chan *core.Ref // OnStart's self; buffered, written once
	revived chan struct{}  // one value per ReviveOffers; buffered
}

func (d *driver) OnStart(self *core.Ref) error {
	d.started <- self
	return nil
}

// RegisterExecutor uses the ref inside the message at once: it launches a
// task on the executor before answering.
func (d *driver) RegisterExecutor(c *core.Context, msg sched.RegisterExecutor) (sched.RegisteredExecutor, error) {
	ex := sched.NewExecutorRef(msg.Executor)
	if err := ex.LaunchTask(sched.LaunchTask{TaskID: 7, Payload: []byte(msg.ExecutorID)}); err != nil {
		return sched.RegisteredExecutor{}, err
	}
	return sched.RegisteredExecutor{Accepted: msg.Cores > 0}, nil
}

func (d *driver) ReviveOffers(c *core.Context, msg sched.ReviveOffers) error {
	d.revived <- struct{}{}
	return nil
}

// TaskResult reads the result in a goroutine of its own, which ends with
// the stream (the stream outlives the method), and answers with its size
// once the executor half-closes. It refuses a negative task id: the error
// aborts the stream.
func (d *driver) TaskResult(c *core.Context, msg sched.TaskResult, s *core.Stream) error {
	if msg.TaskID < 0 {
		return fmt.Errorf("no task %d", msg.TaskID)
	}
	go func() {
		defer s.Close()
		n, err := io.Copy(io.Discard, s)
		if err != nil {
			s.CloseWithError(err)
			return
		}
		fmt.Fprintf(s, "task %d: %d bytes", msg.TaskID, n)
	}()
	return nil
}

// executor implements sched.ExecutorHandler.
type executor struct {
	tasks chan sched.LaunchTask // buffered; the test reads it
}

func (x *executor) LaunchTask(c *core.Context, msg sched.LaunchTask) error {
	x.tasks <- msg
	return nil
}

// recv waits for a value on ch, or fails the test when ctx is done.
func recv[T any](t *testing.T, ctx context.Context, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("waiting for %s: %v", what, ctx.Err())
		panic("unreachable")
	}
}

// TestGeneratedCodeEndToEnd runs a driver env and a client-mode executor
// env over inproc and uses only the generated API: a typed ask carrying a
// ref, a typed send through that ref, a typed send to the driver, the
// OnStart passthrough, and an unhandled message.
func TestGeneratedCodeEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns := inproc.New()

	driverEnv, err := core.NewEnv(core.Config{Name: "driver", Listen: "inproc://driver", Transports: []core.Transport{ns}})
	if err != nil {
		t.Fatal(err)
	}
	defer driverEnv.Shutdown(context.Background())
	d := &driver{started: make(chan *core.Ref, 1), revived: make(chan struct{}, 1)}
	self, err := driverEnv.Register("driver", sched.NewDriverEndpoint(d))
	if err != nil {
		t.Fatal(err)
	}
	if got := recv(t, ctx, d.started, "the driver's OnStart"); got.String() != self.String() {
		t.Errorf("OnStart got self %s, want %s", got, self)
	}

	execEnv, err := core.NewEnv(core.Config{Name: "executor", Transports: []core.Transport{ns}})
	if err != nil {
		t.Fatal(err)
	}
	defer execEnv.Shutdown(context.Background())
	x := &executor{tasks: make(chan sched.LaunchTask, 1)}
	execRef, err := execEnv.Register("executor-1", sched.NewExecutorEndpoint(x))
	if err != nil {
		t.Fatal(err)
	}

	drv, err := sched.LookupDriver(ctx, execEnv, "inproc://driver/driver")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("typed ask with a ref inside", func(t *testing.T) {
		reply, err := drv.RegisterExecutor(ctx, sched.RegisterExecutor{ExecutorID: "exec-1", Executor: execRef, Cores: 4})
		if err != nil {
			t.Fatal(err)
		}
		if !reply.Accepted {
			t.Errorf("reply %+v, want Accepted", reply)
		}
	})
	t.Run("typed send through the received ref", func(t *testing.T) {
		task := recv(t, ctx, x.tasks, "LaunchTask at the executor")
		if task.TaskID != 7 || !bytes.Equal(task.Payload, []byte("exec-1")) {
			t.Errorf("task %+v, want TaskID 7 and payload exec-1", task)
		}
	})
	t.Run("typed send to the driver", func(t *testing.T) {
		if err := drv.ReviveOffers(sched.ReviveOffers{}); err != nil {
			t.Fatal(err)
		}
		recv(t, ctx, d.revived, "ReviveOffers at the driver")
	})
	t.Run("a send message asked is answered once handled", func(t *testing.T) {
		v, err := drv.Ref().Ask(ctx, sched.ReviveOffers{})
		if err != nil || v != nil {
			t.Fatalf("ask Driver with a ReviveOffers = %v, %v; want nil, nil", v, err)
		}
		recv(t, ctx, d.revived, "ReviveOffers at the driver")
	})
	t.Run("unhandled message answered with an error naming endpoint and type", func(t *testing.T) {
		_, err := drv.Ref().Ask(ctx, sched.LaunchTask{TaskID: 1})
		var re *core.RemoteError
		if !errors.As(err, &re) {
			t.Fatalf("ask Driver with a LaunchTask: %v, want a *core.RemoteError", err)
		}
		if want := "rpcenv: endpoint Driver does not handle sched.LaunchTask"; re.Message != want {
			t.Errorf("remote error %q, want %q", re.Message, want)
		}
	})
}

// TestGeneratedStreamEndToEnd opens streams to a driver in another env
// over inproc through the generated DriverRef.OpenTaskResult: bytes
// written reach the handler's method and its answer comes back; the
// method's error, a stream opened with a message the driver does not
// stream, and a stream message sent as an ask all fail with errors naming
// the cause; an endpoint without stream directives accepts no streams.
func TestGeneratedStreamEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns := inproc.New()

	driverEnv, err := core.NewEnv(core.Config{Name: "driver", Listen: "inproc://driver", Transports: []core.Transport{ns}})
	if err != nil {
		t.Fatal(err)
	}
	defer driverEnv.Shutdown(context.Background())
	d := &driver{started: make(chan *core.Ref, 1), revived: make(chan struct{}, 1)}
	if _, err := driverEnv.Register("driver", sched.NewDriverEndpoint(d)); err != nil {
		t.Fatal(err)
	}
	execEnv, err := core.NewEnv(core.Config{Name: "executor", Transports: []core.Transport{ns}})
	if err != nil {
		t.Fatal(err)
	}
	defer execEnv.Shutdown(context.Background())
	execRef, err := execEnv.Register("executor-1", sched.NewExecutorEndpoint(&executor{tasks: make(chan sched.LaunchTask, 1)}))
	if err != nil {
		t.Fatal(err)
	}
	drv, err := sched.LookupDriver(ctx, execEnv, "inproc://driver/driver")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("bytes written reach the handler and its answer comes back", func(t *testing.T) {
		s, err := drv.OpenTaskResult(ctx, sched.TaskResult{TaskID: 7})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		// A stuck stream fails the test instead of hanging it.
		defer context.AfterFunc(ctx, func() { s.CloseWithError(ctx.Err()) })()
		result := bytes.Repeat([]byte("r"), 1<<20) // four times the stream's window
		if _, err := s.Write(result); err != nil {
			t.Fatal(err)
		}
		if err := s.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		answer, err := io.ReadAll(s)
		if want := fmt.Sprintf("task 7: %d bytes", len(result)); err != nil || string(answer) != want {
			t.Errorf("answer %q, %v; want %q, nil", answer, err, want)
		}
	})
	t.Run("the handler's error aborts the stream", func(t *testing.T) {
		s, err := drv.OpenTaskResult(ctx, sched.TaskResult{TaskID: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		defer context.AfterFunc(ctx, func() { s.CloseWithError(ctx.Err()) })()
		_, err = s.Read(make([]byte, 1))
		var re *core.RemoteError
		if !errors.As(err, &re) || re.Message != "no task -1" {
			t.Errorf("read: %v, want a *core.RemoteError with the message %q", err, "no task -1")
		}
	})
	t.Run("a stream opened with a message the driver does not stream is aborted", func(t *testing.T) {
		s, err := drv.Ref().OpenStream(ctx, sched.LaunchTask{TaskID: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		defer context.AfterFunc(ctx, func() { s.CloseWithError(ctx.Err()) })()
		_, err = s.Read(make([]byte, 1))
		var re *core.RemoteError
		want := "rpcenv: endpoint Driver does not handle streams opened with sched.LaunchTask"
		if !errors.As(err, &re) || re.Message != want {
			t.Errorf("read: %v, want a *core.RemoteError with the message %q", err, want)
		}
	})
	t.Run("a stream message asked is answered with an error", func(t *testing.T) {
		_, err := drv.Ref().Ask(ctx, sched.TaskResult{TaskID: 1})
		var re *core.RemoteError
		want := "rpcenv: endpoint Driver receives sched.TaskResult only as a stream's opening message (see core.Ref.OpenStream)"
		if !errors.As(err, &re) || re.Message != want {
			t.Errorf("ask: %v, want a *core.RemoteError with the message %q", err, want)
		}
	})
	t.Run("an endpoint without stream directives accepts no streams", func(t *testing.T) {
		s, err := execRef.OpenStream(ctx, sched.TaskResult{TaskID: 1})
		if !errors.Is(err, core.ErrNotStreamHandler) {
			t.Errorf("open a stream to the executor: %v, want core.ErrNotStreamHandler", err)
		}
		if s != nil {
			s.Close()
		}
	})
}

// TestZeroRefFailsInsteadOfPanicking checks that a typed ref that wraps
// no ref returns errors.
func TestZeroRefFailsInsteadOfPanicking(t *testing.T) {
	var drv sched.DriverRef
	if err := drv.ReviveOffers(sched.ReviveOffers{}); err == nil {
		t.Error("send through the zero DriverRef succeeded")
	}
	if _, err := drv.RegisterExecutor(context.Background(), sched.RegisterExecutor{}); err == nil {
		t.Error("ask through the zero DriverRef succeeded")
	}
	if _, err := drv.OpenTaskResult(context.Background(), sched.TaskResult{}); err == nil {
		t.Error("open a stream through the zero DriverRef succeeded")
	}
}
