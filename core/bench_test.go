package core_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/inproc"
)

// benchMsg is the value every benchmark sends, the channel baselines too.
type benchMsg struct {
	ID   int64
	Name string
}

func init() { core.RegisterMessage[benchMsg]("bench.Msg") }

// counter counts sends and answers asks.
type counter struct {
	done    chan struct{}
	want, n int
}

func (c *counter) Receive(ctx *core.Context, msg any) error {
	if ctx.IsAsk() {
		return ctx.Reply(msg)
	}
	c.n++
	if c.n == c.want {
		close(c.done)
	}
	return nil
}

func newBenchEnv(b *testing.B, cfg core.Config) *core.Env {
	b.Helper()
	e, err := core.NewEnv(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Shutdown(context.Background()) })
	return e
}

// BenchmarkChanSend is the baseline for Send: a buffered channel send of
// the same value (as an interface, like a message) to a goroutine that
// drains it.
func BenchmarkChanSend(b *testing.B) {
	b.ReportAllocs()
	ch := make(chan any, 1024)
	done := make(chan struct{})
	go func() {
		for range ch {
		}
		close(done)
	}()
	msg := benchMsg{ID: 1, Name: "task"}
	for b.Loop() {
		ch <- msg
	}
	close(ch)
	<-done
}

// BenchmarkChanPingPong is the baseline for Ask: one round trip through
// two channels and another goroutine.
func BenchmarkChanPingPong(b *testing.B) {
	b.ReportAllocs()
	req, rep := make(chan any), make(chan any)
	go func() {
		for m := range req {
			rep <- m
		}
	}()
	msg := benchMsg{ID: 1, Name: "task"}
	for b.Loop() {
		req <- msg
		<-rep
	}
	close(req)
}

func BenchmarkLocalSend(b *testing.B) {
	b.ReportAllocs()
	e := newBenchEnv(b, core.Config{Name: "bench"})
	c := &counter{done: make(chan struct{}), want: b.N}
	ref, err := e.Register("sink", c)
	if err != nil {
		b.Fatal(err)
	}
	msg := benchMsg{ID: 1, Name: "task"}
	b.ResetTimer()
	for range b.N {
		if err := ref.Send(msg); err != nil {
			b.Fatal(err)
		}
	}
	<-c.done
}

func BenchmarkLocalAsk(b *testing.B) {
	b.ReportAllocs()
	e := newBenchEnv(b, core.Config{Name: "bench"})
	ref, err := e.Register("echo", &counter{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	msg := benchMsg{ID: 1, Name: "task"}
	for b.Loop() {
		if _, err := ref.Ask(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
}

var benchNames = 0

func inprocPair(b *testing.B) (*core.Env, *core.Env) {
	t := inproc.New()
	benchNames++
	srv := newBenchEnv(b, core.Config{Name: "srv", Listen: fmt.Sprintf("inproc://srv-%d", benchNames), Transports: []core.Transport{t}})
	cli := newBenchEnv(b, core.Config{Name: "cli", Transports: []core.Transport{t}})
	return srv, cli
}

func BenchmarkInprocSend(b *testing.B) {
	b.ReportAllocs()
	srv, cli := inprocPair(b)
	c := &counter{done: make(chan struct{}), want: b.N}
	if _, err := srv.Register("sink", c); err != nil {
		b.Fatal(err)
	}
	ref, err := cli.Lookup(context.Background(), srv.Address()+"/sink")
	if err != nil {
		b.Fatal(err)
	}
	msg := benchMsg{ID: 1, Name: "task"}
	b.ResetTimer()
	for range b.N {
		if err := ref.Send(msg); err != nil {
			b.Fatal(err)
		}
	}
	<-c.done
}

func BenchmarkInprocAsk(b *testing.B) {
	b.ReportAllocs()
	srv, cli := inprocPair(b)
	if _, err := srv.Register("echo", &counter{}); err != nil {
		b.Fatal(err)
	}
	ref, err := cli.Lookup(context.Background(), srv.Address()+"/echo")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	msg := benchMsg{ID: 1, Name: "task"}
	for b.Loop() {
		if _, err := ref.Ask(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLocalAskCtxDeadline is BenchmarkLocalAsk with a caller
// deadline, which needs no timer of the env's.
func BenchmarkLocalAskCtxDeadline(b *testing.B) {
	b.ReportAllocs()
	e := newBenchEnv(b, core.Config{Name: "bench"})
	ref, err := e.Register("echo", &counter{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	msg := benchMsg{ID: 1, Name: "task"}
	for b.Loop() {
		if _, err := ref.Ask(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
}
