package rpcotel_test

import (
	"context"
	"testing"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/internal/peertest"
	rpcotel "github.com/rpcenv/rpcenv/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// BenchmarkAskInterceptors measures what the interceptors add to an ask
// between two envs, both ends instrumented:
//   - none: no interceptors;
//   - pass: interceptors that only call next: what core's interceptor
//     chain costs by itself (on the receiving side, the handler's context
//     is made for every ask);
//   - noop: Instrument with the global providers left unset (OpenTelemetry's
//     no-op ones), as a library instrumented for programs that may not
//     set up OpenTelemetry;
//   - sdk: every span sampled and batched to an exporter that drops it,
//     durations aggregated for a manual reader: the cost in production.
func BenchmarkAskInterceptors(b *testing.B) {
	for _, n := range networks() {
		for _, mode := range []string{"none", "pass", "noop", "sdk"} {
			b.Run(n.name+"/"+mode, func(b *testing.B) {
				var opts []rpcotel.Option
				if mode == "sdk" {
					tp := sdktrace.NewTracerProvider(
						sdktrace.WithSampler(sdktrace.AlwaysSample()),
						sdktrace.WithBatcher(tracetest.NewNoopExporter()))
					mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
					b.Cleanup(func() {
						tp.Shutdown(context.Background())
						mp.Shutdown(context.Background())
					})
					opts = []rpcotel.Option{rpcotel.WithTracerProvider(tp), rpcotel.WithMeterProvider(mp)}
				}
				env := func(name string, listen bool) *core.Env {
					switch mode {
					case "none":
						return startEnv(b, n, name, listen, core.Config{})
					case "pass":
						return startEnv(b, n, name, listen, core.Config{
							OutboundInterceptors: []core.OutboundInterceptor{func(ctx context.Context, c *core.Call, next core.Invoker) (any, error) {
								return next(ctx, c)
							}},
							InboundInterceptors: []core.InboundInterceptor{func(ctx context.Context, d *core.Delivery, next core.Handler) error {
								return next(ctx, d)
							}},
						})
					}
					return newEnv(b, n, name, listen, core.Config{}, opts...)
				}
				server := env("server", true)
				client := env("client", false)
				peertest.MustRegister(b, server, "echo", handler(func(c *core.Context, msg any) error { return c.Reply(msg) }))
				ref := lookup(b, client, server, "echo")
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if _, err := ref.Ask(ctx, Ping{N: 1}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
