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
	e := newBenchEnv(b, core.Config{Name: "bench"})
	benchSend(b, e, e)
}

func BenchmarkLocalAsk(b *testing.B) {
	e := newBenchEnv(b, core.Config{Name: "bench"})
	benchAsk(b, e, e, context.Background())
}

// BenchmarkLocalAskCtxDeadline is BenchmarkLocalAsk with a caller
// deadline, which needs no timer of the env's.
func BenchmarkLocalAskCtxDeadline(b *testing.B) {
	e := newBenchEnv(b, core.Config{Name: "bench"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	benchAsk(b, e, e, ctx)
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
	srv, cli := inprocPair(b)
	benchSend(b, srv, cli)
}

func BenchmarkInprocAsk(b *testing.B) {
	srv, cli := inprocPair(b)
	benchAsk(b, srv, cli, context.Background())
}

// benchRef registers ep as name in at and returns a ref to it held by from
// (the registered ref itself when from is at).
func benchRef(b *testing.B, at, from *core.Env, name string, ep core.Endpoint, opts ...core.EndpointOption) *core.Ref {
	b.Helper()
	ref, err := at.Register(name, ep, opts...)
	if err != nil {
		b.Fatal(err)
	}
	if from == at {
		return ref
	}
	if ref, err = from.Lookup(context.Background(), at.Address()+"/"+name); err != nil {
		b.Fatal(err)
	}
	return ref
}

// benchSend sends b.N messages from from to a counting endpoint of at and
// waits until all were received.
func benchSend(b *testing.B, at, from *core.Env) {
	b.ReportAllocs()
	c := &counter{done: make(chan struct{}), want: b.N}
	var opts []core.EndpointOption
	if at == from {
		// A local sender never waits for room: it would get ErrInboxFull
		// once b.N ran ahead of the sink by 8192 messages.
		opts = append(opts, core.WithInboxLimit(1<<40))
	}
	ref := benchRef(b, at, from, "sink", c, opts...)
	msg := benchMsg{ID: 1, Name: "task"}
	b.ResetTimer()
	for range b.N {
		if err := ref.Send(msg); err != nil {
			b.Fatal(err)
		}
	}
	<-c.done
}

// benchAsk asks an echoing endpoint of at from from, one ask at a time.
func benchAsk(b *testing.B, at, from *core.Env, ctx context.Context) {
	b.ReportAllocs()
	ref := benchRef(b, at, from, "echo", &counter{})
	msg := benchMsg{ID: 1, Name: "task"}
	for b.Loop() {
		if _, err := ref.Ask(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
}
