package rpcotel_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/internal/peertest"
	rpcotel "github.com/rpcenv/rpcenv/otel"
	"github.com/rpcenv/rpcenv/transports/inproc"
	"github.com/rpcenv/rpcenv/transports/tcp"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testWait bounds every wait of these tests. It is not a performance
// target: a wait that reaches it is a failure.
const testWait = 20 * time.Second

// The messages of the tests.
type (
	Ping       struct{ N int }
	Pong       struct{ N int }
	Note       struct{ Text string }
	Boom       struct{}
	Hold       struct{}
	StreamOpen struct{}
)

func init() {
	core.RegisterMessage[Ping]("otel.Ping")
	core.RegisterMessage[Pong]("otel.Pong")
	core.RegisterMessage[Note]("otel.Note")
	core.RegisterMessage[Boom]("otel.Boom")
	core.RegisterMessage[Hold]("otel.Hold")
	core.RegisterMessage[StreamOpen]("otel.StreamOpen")
}

// The method names the interceptors give the messages to an endpoint:
// core does not export registered names, so they are the Go types'.
func method(endpoint string, msg any) string {
	switch msg.(type) {
	case Ping:
		return endpoint + "/otel.Ping"
	case Note:
		return endpoint + "/otel.Note"
	case Boom:
		return endpoint + "/otel.Boom"
	case Hold:
		return endpoint + "/otel.Hold"
	case StreamOpen:
		return endpoint + "/otel.StreamOpen"
	}
	panic("no method for the message")
}

var errBoom = errors.New("boom")

// handler is an endpoint made of a function.
type handler func(c *core.Context, msg any) error

func (h handler) Receive(c *core.Context, msg any) error { return h(c, msg) }

// network is a transport and how its envs listen.
type network struct {
	name   string
	tr     core.Transport
	listen func(env string) string
}

// networks returns fresh inproc and tcp transports.
func networks() []network {
	return []network{
		{"inproc", inproc.New(), func(env string) string { return "inproc://" + env }},
		{"tcp", tcp.New(tcp.Options{}), func(string) string { return "tcp://127.0.0.1:0" }},
	}
}

// newEnv makes an env named name on n, instrumented with opts, shut down
// when the test ends. listen false makes a client-mode env. cfg's other
// fields are kept.
func newEnv(t testing.TB, n network, name string, listen bool, cfg core.Config, opts ...rpcotel.Option) *core.Env {
	t.Helper()
	rpcotel.Instrument(&cfg, opts...)
	return startEnv(t, n, name, listen, cfg)
}

// startEnv is newEnv without the instrumentation.
func startEnv(t testing.TB, n network, name string, listen bool, cfg core.Config) *core.Env {
	t.Helper()
	cfg.Name = name
	if listen {
		cfg.Listen = n.listen(name)
	}
	cfg.Transports = []core.Transport{n.tr}
	cfg.Logger = slog.New(slog.DiscardHandler)
	e, err := core.NewEnv(cfg)
	if err != nil {
		t.Fatalf("NewEnv %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		if err := e.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown of %s: %v", name, err)
		}
	})
	return e
}

// lookup returns from's ref to the endpoint name of env to.
func lookup(t testing.TB, from, to *core.Env, name string) *core.Ref {
	t.Helper()
	return peertest.MustLookup(t, from, to.Address()+"/"+name)
}

// spanSink records spans like tracetest.SpanRecorder and hands each one
// that ends to the test as it ends: the signal a test waits on, since a
// server span ends after the handler returns, which may be after the
// asker has its reply.
type spanSink struct {
	*tracetest.SpanRecorder
	ended chan sdktrace.ReadOnlySpan
	seen  []sdktrace.ReadOnlySpan // received from ended; the test's goroutine only
}

func newSpanSink() (*spanSink, *sdktrace.TracerProvider) {
	s := &spanSink{SpanRecorder: tracetest.NewSpanRecorder(), ended: make(chan sdktrace.ReadOnlySpan, 1024)}
	return s, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(s))
}

func (s *spanSink) OnEnd(sp sdktrace.ReadOnlySpan) {
	s.SpanRecorder.OnEnd(sp)
	s.ended <- sp
}

// awaitSpans waits until n spans have ended in all, and returns them.
func (s *spanSink) awaitSpans(t testing.TB, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	for len(s.seen) < n {
		s.seen = append(s.seen, peertest.Await(t, s.ended, "spans to end"))
	}
	return s.seen
}

// awaitSpan waits for the span of that kind and name to end.
func (s *spanSink) awaitSpan(t testing.TB, kind trace.SpanKind, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	for i := 0; ; {
		for ; i < len(s.seen); i++ {
			if sp := s.seen[i]; sp.SpanKind() == kind && sp.Name() == name {
				return sp
			}
		}
		s.seen = append(s.seen, peertest.Await(t, s.ended, kind.String()+" span "+name))
	}
}

// findSpan returns the one span of that kind and name.
func findSpan(t testing.TB, spans []sdktrace.ReadOnlySpan, kind trace.SpanKind, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found sdktrace.ReadOnlySpan
	for _, sp := range spans {
		if sp.SpanKind() == kind && sp.Name() == name {
			if found != nil {
				t.Fatalf("two %s spans %q", kind, name)
			}
			found = sp
		}
	}
	if found == nil {
		var names []string
		for _, sp := range spans {
			names = append(names, sp.SpanKind().String()+" "+sp.Name())
		}
		t.Fatalf("no %s span %q among %q", kind, name, names)
	}
	return found
}

// attr returns the span's attribute key as a string, or "".
func attr(sp sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, kv := range sp.Attributes() {
		if kv.Key == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// readAll reads s to its end, failing the test on an error.
func readAll(t testing.TB, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Errorf("reading the stream: %v", err)
	}
	return string(b)
}
