package rpcotel

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the tracer and the meter this
// package gets from its providers: its import path.
const ScopeName = "github.com/rpcenv/rpcenv/otel"

// An Option changes what Interceptors, Instrument and Observe report to.
// Without options they use the global providers (otel.GetTracerProvider,
// otel.GetMeterProvider; until a program sets its own, they forward to
// the ones it sets later) and W3C Trace Context with W3C Baggage.
type Option func(*config)

type config struct {
	tp    trace.TracerProvider
	mp    metric.MeterProvider
	props propagation.TextMapPropagator
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	if c.props == nil {
		c.props = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	return c
}

// WithTracerProvider makes the interceptors start their spans with a
// tracer from tp instead of the global provider's. A nil tp keeps the
// default. Observe makes no spans and ignores it.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tp = tp }
}

// WithMeterProvider makes the interceptors and Observe create their
// instruments with a meter from mp instead of the global provider's. A
// nil mp keeps the default.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.mp = mp }
}

// WithPropagators sets how the span context (and baggage) crosses with a
// message: p injects it into the call's headers and extracts it from the
// delivery's. The default is W3C Trace Context ("traceparent",
// "tracestate") and W3C Baggage ("baggage"). Header keys are sent in
// lower case; a header that rpcenv's limits would refuse (see
// core.Call.Headers) is left out rather than failing the call. A nil p
// keeps the default. Observe ignores it.
func WithPropagators(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.props = p }
}
