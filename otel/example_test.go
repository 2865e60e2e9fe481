package rpcotel_test

import (
	"context"
	"fmt"
	"sort"

	"github.com/rpcenv/rpcenv/core"
	rpcotel "github.com/rpcenv/rpcenv/otel"
	"github.com/rpcenv/rpcenv/transports/inproc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Greet is a message; Greeting answers it.
type (
	Greet    struct{ Name string }
	Greeting struct{ Text string }
)

func init() {
	core.RegisterMessage[Greet]("example.Greet")
	core.RegisterMessage[Greeting]("example.Greeting")
}

type greeter struct{}

func (greeter) Receive(c *core.Context, msg any) error {
	return c.Reply(Greeting{Text: "hello, " + msg.(Greet).Name})
}

// Two instrumented envs exchange an ask; the spans go to an in-memory
// recorder (a program would give an exporter's provider instead).
func Example() {
	recorder := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	ns := inproc.New()

	serverCfg := core.Config{Name: "server", Listen: "inproc://server", Transports: []core.Transport{ns}}
	rpcotel.Instrument(&serverCfg, rpcotel.WithTracerProvider(tp))
	server, _ := core.NewEnv(serverCfg)
	server.Register("greeter", greeter{})

	clientCfg := core.Config{Name: "client", Transports: []core.Transport{ns}}
	rpcotel.Instrument(&clientCfg, rpcotel.WithTracerProvider(tp))
	client, _ := core.NewEnv(clientCfg)

	ref, _ := client.Lookup(context.Background(), "inproc://server/greeter")
	reply, err := core.Ask[Greeting](context.Background(), ref, Greet{Name: "otel"})
	fmt.Println(reply.Text, err)

	// Shutting down waits for the handler, and so for its span to end.
	client.Shutdown(context.Background())
	server.Shutdown(context.Background())

	spans := recorder.Ended()
	var lines []string
	for _, s := range spans {
		lines = append(lines, s.SpanKind().String()+" "+s.Name())
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	fmt.Println("one trace:", spans[0].SpanContext().TraceID() == spans[1].SpanContext().TraceID())
	// Output:
	// hello, otel <nil>
	// client greeter/example.Greet
	// server greeter/example.Greet
	// one trace: true
}
