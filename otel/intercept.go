package rpcotel

import (
	"context"
	"errors"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/rpcconv"
	"go.opentelemetry.io/otel/trace"
)

// SystemName is the value of the rpc.system.name attribute on every span
// and duration this package records.
const SystemName = "rpcenv"

var systemAttr = semconv.RPCSystemNameKey.String(SystemName)

// Interceptors returns a pair of interceptors that trace and time the
// calls an env makes and the messages it delivers, following
// OpenTelemetry's semantic conventions for RPC (semconv v1.43.0). Put the
// first in core.Config.OutboundInterceptors and the second in
// core.Config.InboundInterceptors, or let Instrument do it. One pair may
// serve several envs; both are safe for concurrent use.
//
// The outbound interceptor starts a span for each Send, SendContext, Ask
// and OpenStream, as a child of the span in the call's context: of kind
// client for an ask or a stream, producer for a send. It injects the
// span's context into the call's headers with the propagators (W3C
// Trace Context and Baggage by default), and ends the span when the call
// returns: for an ask when the reply or the failure came, for a send once
// the message was handed on, for a stream once it was accepted (not when
// it closes).
//
// The inbound interceptor extracts that context from the message's
// headers and starts the delivery's span as its child: of kind server,
// consumer for a send. The handler's Context.Context() carries it, so a
// handler that asks or sends with it, ref.Ask(c.Context(), msg) or
// ref.SendContext(c.Context(), msg), continues the trace. The span ends
// when the handler returns.
//
// Spans are named after the method, "{endpoint}/{type}": the target
// endpoint's name, then the name the message's type was registered under
// with core.RegisterMessage (core.TypeName), without a leading '*'
// ("scheduler/sched.StatusUpdate"); an unregistered type, which fails
// the call, is named by its Go type. Each span has the
// attributes rpc.system.name ("rpcenv"), rpc.method (the span's name:
// semconv v1.43.0 has no rpc.service, its rpc.method is the
// fully-qualified "service/method") and server.address (the URI of the
// target's env; for an env in client mode, which has none, its label
// "client://NAME.ID").
//
// When the call or the handler fails, its span gets the error as an
// event, an error status with the error's text, and error.type: the
// error's rpcenv code when it has one ("endpoint_not_found",
// "disconnected", …; on the asking side, also an application's code
// given with core.RegisterError), "deadline_exceeded" or "canceled" for
// a context's error, "panic" for a handler that panicked, the value of an
// ErrorType() string method in the error's chain, and "_OTHER"
// otherwise. A handler that answers an ask with c.Fail and returns nil
// has not failed: only the asker's span is an error.
//
// The durations go to the histograms rpc.client.call.duration and
// rpc.server.call.duration (seconds, made with semconv v1.43.0's rpcconv),
// with the span's attributes and error.type, never the error's text. The
// duration of a call whose span the SDK records is exactly the span's.
func Interceptors(opts ...Option) (core.OutboundInterceptor, core.InboundInterceptor) {
	c := newConfig(opts)
	ic := &interceptors{
		tracer: c.tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		props:  c.props,
	}
	meter := c.mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	client, err := rpcconv.NewClientCallDuration(meter)
	if err != nil {
		otel.Handle(err) // client is a no-op instrument then
	}
	server, err := rpcconv.NewServerCallDuration(meter)
	if err != nil {
		otel.Handle(err)
	}
	ic.client, ic.server = client.Inst(), server.Inst()
	return ic.outbound, ic.inbound
}

// Instrument appends the interceptors of Interceptors(opts...) to cfg's
// OutboundInterceptors and InboundInterceptors, after those already
// there: they run inside them, and their spans and durations leave out
// what the earlier interceptors do. Call it before core.NewEnv.
func Instrument(cfg *core.Config, opts ...Option) {
	out, in := Interceptors(opts...)
	cfg.OutboundInterceptors = append(cfg.OutboundInterceptors, out)
	cfg.InboundInterceptors = append(cfg.InboundInterceptors, in)
}

type interceptors struct {
	tracer trace.Tracer
	props  propagation.TextMapPropagator
	// client and server are the typed instruments' histograms.
	client, server metric.Float64Histogram
	// out and in hold what the spans and durations of each method to each
	// address share, made once (methods.go).
	out, in methods
}

// Allocations: the interceptors make none of their own on a call that
// succeeds (BenchmarkAskInterceptors), but for the propagation (the
// traceparent header, and the headers' map, on the sending side).
// Everything that depends only on the method and the address is made
// once, in a methodInfo; what remains is the tracer's (a span, the
// context that carries it) and the meter's.

func (ic *interceptors) outbound(ctx context.Context, call *core.Call, next core.Invoker) (v any, err error) {
	m := ic.out.get(call.Target, call.Message, trace.SpanKindClient, trace.SpanKindProducer)
	opts := m.opts[0]
	if call.Kind == core.KindSend {
		opts = m.opts[1]
	}
	ctx, span := ic.tracer.Start(ctx, m.name, opts...)
	start := startOf(span)
	ic.props.Inject(ctx, (*callCarrier)(call))
	returned := false
	defer func() {
		if !returned { // an interceptor further in panicked: the span still ends
			finish(ctx, span, ic.client, m, start, errPanicked)
		}
	}()
	v, err = next(ctx, call)
	returned = true
	finish(ctx, span, ic.client, m, start, err)
	return v, err
}

func (ic *interceptors) inbound(ctx context.Context, d *core.Delivery, next core.Handler) (err error) {
	ctx = ic.props.Extract(ctx, headerCarrier(d.Context.Headers()))
	m := ic.in.get(d.Endpoint, d.Message, trace.SpanKindServer, trace.SpanKindConsumer)
	opts := m.opts[0]
	if d.Kind == core.KindSend {
		opts = m.opts[1]
	}
	ctx, span := ic.tracer.Start(ctx, m.name, opts...)
	start := startOf(span)
	returned := false
	defer func() {
		// The handler panicked: end the span without recovering, so that
		// the env's recovery sees the panic where it happened.
		if !returned {
			finish(ctx, span, ic.server, m, start, errPanicked)
		}
	}()
	err = next(ctx, d)
	returned = true
	finish(ctx, span, ic.server, m, start, err)
	return err
}

// startOf returns when span started: the SDK's spans say, so that a
// duration is exactly its span's; for others, now.
func startOf(span trace.Span) time.Time {
	if s, ok := span.(interface{ StartTime() time.Time }); ok {
		return s.StartTime()
	}
	return time.Now()
}

// finish ends the call's span and records its duration, marking both
// with err when it is not nil.
func finish(ctx context.Context, span trace.Span, h metric.Float64Histogram, m *methodInfo, start time.Time, err error) {
	opts := m.recordOpts
	if err != nil {
		errType := semconv.ErrorTypeKey.String(errorType(err))
		span.SetAttributes(errType)
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		if h.Enabled(ctx) {
			opts = []metric.RecordOption{metric.WithAttributes(append(m.attrs[:len(m.attrs):len(m.attrs)], errType)...)}
		}
	}
	span.End()
	// The SDK's spans tell when they ended; the duration is then exactly
	// the span's, without an allocation for an end option.
	end := time.Time{}
	if s, ok := span.(interface{ EndTime() time.Time }); ok {
		end = s.EndTime()
	}
	if end.IsZero() {
		end = time.Now()
	}
	h.Record(ctx, end.Sub(start).Seconds(), opts...)
}

// panicked stands for the error of a handler (or an interceptor) that
// panicked, which the interceptor sees only as an unwinding stack.
type panicked struct{}

func (panicked) Error() string     { return "rpcotel: the handler panicked" }
func (panicked) ErrorType() string { return "panic" }

var errPanicked error = panicked{}

// errorCodes are core's sentinels with their wire codes
// (docs/PROTOCOL.md, "Error codes"), for error.type.
var errorCodes = []struct {
	err  error
	code string
}{
	{core.ErrEndpointNotFound, "endpoint_not_found"},
	{core.ErrNameTaken, "name_taken"},
	{core.ErrEnvStopped, "env_stopped"},
	{core.ErrMessageTooLarge, "message_too_large"},
	{core.ErrUnregisteredType, "unregistered_type"},
	{core.ErrUnknownScheme, "unknown_scheme"},
	{core.ErrUnauthenticated, "unauthenticated"},
	{core.ErrDisconnected, "disconnected"},
	{core.ErrAlreadyAnswered, "already_answered"},
	{core.ErrNotAsk, "not_ask"},
	{core.ErrProtocol, "protocol"},
	{core.ErrInboxFull, "inbox_full"},
	{core.ErrStreamClosed, "stream_closed"},
	{core.ErrNotStreamHandler, "not_stream_handler"},
	{core.ErrNotFound, "not_found"},
	{core.ErrDeadlock, "deadlock"},
	{core.ErrInvalidHeader, "invalid_header"},
}

// errorType returns the error.type of a failed call: a few dozen values
// at most, never the error's text.
func errorType(err error) string {
	var re *core.RemoteError
	if errors.As(err, &re) && re.Code != "" {
		return re.Code
	}
	for _, c := range errorCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	var typed interface{ ErrorType() string }
	if errors.As(err, &typed) {
		if s := typed.ErrorType(); s != "" {
			return s
		}
	}
	return "_OTHER" // semconv's fallback
}
