package rpcotel_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/internal/peertest"
	rpcotel "github.com/rpcenv/rpcenv/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// checkLink checks that child is a span of kind in parent's trace, with
// parent as its parent, remote when it came over a message.
func checkLink(t *testing.T, parent, child sdktrace.ReadOnlySpan, remote bool) {
	t.Helper()
	if got, want := child.SpanContext().TraceID(), parent.SpanContext().TraceID(); got != want {
		t.Errorf("%s %q: trace %s, want its parent's %s", child.SpanKind(), child.Name(), got, want)
	}
	if got, want := child.Parent().SpanID(), parent.SpanContext().SpanID(); got != want {
		t.Errorf("%s %q: parent span %s, want %s (%s %q)", child.SpanKind(), child.Name(), got, want, parent.SpanKind(), parent.Name())
	}
	if child.Parent().IsRemote() != remote {
		t.Errorf("%s %q: parent remote %v, want %v", child.SpanKind(), child.Name(), child.Parent().IsRemote(), remote)
	}
}

// checkAttrs checks a span's RPC attributes.
func checkAttrs(t *testing.T, sp sdktrace.ReadOnlySpan, method, address string) {
	t.Helper()
	for key, want := range map[string]string{"rpc.system.name": "rpcenv", "rpc.method": method, "server.address": address} {
		if got := attr(sp, attribute.Key(key)); got != want {
			t.Errorf("%s %q: %s = %q, want %q", sp.SpanKind(), sp.Name(), key, got, want)
		}
	}
	if sp.Status().Code != codes.Unset {
		t.Errorf("%s %q: status %v, want unset", sp.SpanKind(), sp.Name(), sp.Status())
	}
}

// A asks B, whose handler asks C with its Context's context: the four
// spans make one trace, each the child of the one before.
func TestAnAskThroughThreeEnvsIsOneTrace(t *testing.T) {
	for _, n := range networks() {
		t.Run(n.name, func(t *testing.T) {
			sink, tp := newSpanSink()
			opts := rpcotel.WithTracerProvider(tp)
			c := newEnv(t, n, "c", true, core.Config{}, opts)
			b := newEnv(t, n, "b", true, core.Config{}, opts)
			a := newEnv(t, n, "a", false, core.Config{}, opts) // client mode
			peertest.MustRegister(t, c, "echo", handler(func(cx *core.Context, msg any) error {
				return cx.Reply(Pong{N: msg.(Ping).N})
			}))
			toC := lookup(t, b, c, "echo")
			peertest.MustRegister(t, b, "relay", handler(func(cx *core.Context, msg any) error {
				v, err := toC.Ask(cx.Context(), msg)
				if err != nil {
					return err
				}
				return cx.Reply(v)
			}))
			toB := lookup(t, a, b, "relay")

			v, err := peertest.AskWithin(t, toB, Ping{N: 7})
			if err != nil || v != (Pong{N: 7}) {
				t.Fatalf("Ask = %v, %v; want Pong{7}", v, err)
			}
			spans := sink.awaitSpans(t, 4)
			clientAB := findSpan(t, spans, trace.SpanKindClient, "relay/otel.Ping")
			serverB := findSpan(t, spans, trace.SpanKindServer, "relay/otel.Ping")
			clientBC := findSpan(t, spans, trace.SpanKindClient, "echo/otel.Ping")
			serverC := findSpan(t, spans, trace.SpanKindServer, "echo/otel.Ping")

			if clientAB.Parent().IsValid() {
				t.Errorf("A's client span has parent %s, want none (the ask's context had no span)", clientAB.Parent().SpanID())
			}
			checkLink(t, clientAB, serverB, true)
			checkLink(t, serverB, clientBC, false)
			checkLink(t, clientBC, serverC, true)
			checkAttrs(t, clientAB, "relay/otel.Ping", b.Address())
			checkAttrs(t, serverB, "relay/otel.Ping", b.Address())
			checkAttrs(t, clientBC, "echo/otel.Ping", c.Address())
			checkAttrs(t, serverC, "echo/otel.Ping", c.Address())
			if got := len(sink.Ended()); got != 4 {
				t.Errorf("%d spans ended, want 4", got)
			}
		})
	}
}

// A handler that sends on with SendContext(c.Context()) continues the
// trace of the send it handles: producer and consumer spans, each the
// child of the one before.
func TestASendContinuesTheTrace(t *testing.T) {
	for _, n := range networks() {
		t.Run(n.name, func(t *testing.T) {
			sink, tp := newSpanSink()
			opts := rpcotel.WithTracerProvider(tp)
			c := newEnv(t, n, "c", true, core.Config{}, opts)
			b := newEnv(t, n, "b", true, core.Config{}, opts)
			a := newEnv(t, n, "a", false, core.Config{}, opts)
			got := make(chan Note, 1)
			peertest.MustRegister(t, c, "sink", handler(func(_ *core.Context, msg any) error {
				got <- msg.(Note)
				return nil
			}))
			toC := lookup(t, b, c, "sink")
			peertest.MustRegister(t, b, "forward", handler(func(cx *core.Context, msg any) error {
				return toC.SendContext(cx.Context(), Note{Text: msg.(Note).Text + ", forwarded"})
			}))
			toB := lookup(t, a, b, "forward")

			tracer := tp.Tracer("test")
			ctx, root := tracer.Start(context.Background(), "job")
			if err := toB.SendContext(ctx, Note{Text: "hello"}); err != nil {
				t.Fatalf("SendContext: %v", err)
			}
			root.End()
			if n := peertest.Await(t, got, "the forwarded note"); n.Text != "hello, forwarded" {
				t.Errorf("C got %q", n.Text)
			}
			spans := sink.awaitSpans(t, 5)
			job := findSpan(t, spans, trace.SpanKindInternal, "job")
			prodAB := findSpan(t, spans, trace.SpanKindProducer, "forward/otel.Note")
			consB := findSpan(t, spans, trace.SpanKindConsumer, "forward/otel.Note")
			prodBC := findSpan(t, spans, trace.SpanKindProducer, "sink/otel.Note")
			consC := findSpan(t, spans, trace.SpanKindConsumer, "sink/otel.Note")
			checkLink(t, job, prodAB, false)
			checkLink(t, prodAB, consB, true)
			checkLink(t, consB, prodBC, false)
			checkLink(t, prodBC, consC, true)
			checkAttrs(t, prodAB, "forward/otel.Note", b.Address())
			checkAttrs(t, consC, "sink/otel.Note", c.Address())
		})
	}
}

// A handler's error fails the ask: both spans say so, with the error
// recorded and its type; an ask to an endpoint that is gone fails the
// client's span with rpcenv's code.
func TestAFailingAskMarksBothSpansAsErrors(t *testing.T) {
	n := networks()[0]
	sink, tp := newSpanSink()
	opts := rpcotel.WithTracerProvider(tp)
	b := newEnv(t, n, "b", true, core.Config{}, opts)
	a := newEnv(t, n, "a", false, core.Config{}, opts)
	peertest.MustRegister(t, b, "svc", handler(func(*core.Context, any) error { return errBoom }))
	gone := peertest.MustRegister(t, b, "gone", handler(func(*core.Context, any) error { return nil }))
	toSvc := lookup(t, a, b, "svc")
	toGone := lookup(t, a, b, "gone")
	if err := b.Stop(gone); err != nil {
		t.Fatal(err)
	}

	_, err := peertest.AskWithin(t, toSvc, Boom{})
	var re *core.RemoteError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Ask = %v, want the handler's error as a *core.RemoteError", err)
	}
	client := sink.awaitSpan(t, trace.SpanKindClient, "svc/otel.Boom")
	server := sink.awaitSpan(t, trace.SpanKindServer, "svc/otel.Boom")
	checkLink(t, client, server, true)
	for _, sp := range []sdktrace.ReadOnlySpan{client, server} {
		if sp.Status().Code != codes.Error || !strings.Contains(sp.Status().Description, "boom") {
			t.Errorf("%s span: status %+v, want an error saying boom", sp.SpanKind(), sp.Status())
		}
		if ev := sp.Events(); len(ev) != 1 || ev[0].Name != "exception" {
			t.Errorf("%s span: events %+v, want the error recorded", sp.SpanKind(), ev)
		}
		if got := attr(sp, "error.type"); got != "_OTHER" {
			t.Errorf("%s span: error.type %q, want _OTHER", sp.SpanKind(), got)
		}
	}

	_, err = peertest.AskWithin(t, toGone, Ping{})
	if !errors.Is(err, core.ErrEndpointNotFound) {
		t.Fatalf("Ask of a stopped endpoint = %v, want ErrEndpointNotFound", err)
	}
	sp := sink.awaitSpan(t, trace.SpanKindClient, "gone/otel.Ping")
	if sp.Status().Code != codes.Error || attr(sp, "error.type") != "endpoint_not_found" {
		t.Errorf("client span of an ask to a stopped endpoint: status %+v, error.type %q; want an error, endpoint_not_found",
			sp.Status(), attr(sp, "error.type"))
	}
}

// headerProp is a propagator that injects headers rpcenv would refuse
// beside a good one, and extracts that one into the context.
type headerProp struct{}

type upperKey struct{}

func (headerProp) Inject(_ context.Context, c propagation.TextMapCarrier) {
	c.Set("X-Upper", "kept")                    // sent in lower case
	c.Set("bad key", "dropped")                 // a space
	c.Set("rpcenv-hop", "dropped")              // reserved
	c.Set("big", strings.Repeat("x", 5000))     // over 4096 bytes
	c.Set("large-1", strings.Repeat("x", 4090)) // fits
	c.Set("large-2", strings.Repeat("x", 4090)) // would take the total past 8192
	c.Set("caf\u00e9", "dropped")               // not ASCII
	c.Set("invalid-utf8", string([]byte{0xff})) // not UTF-8
}

func (headerProp) Extract(ctx context.Context, c propagation.TextMapCarrier) context.Context {
	return context.WithValue(ctx, upperKey{}, c.Get("X-UPPER"))
}

func (headerProp) Fields() []string { return []string{"x-upper"} }

// The headers a propagator sets are sent in lower case, and those rpcenv
// would refuse are left out instead of failing the call.
func TestHeadersRpcenvWouldRefuseAreLeftOut(t *testing.T) {
	n := networks()[0]
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, headerProp{})
	_, tp := newSpanSink()
	opts := []rpcotel.Option{rpcotel.WithTracerProvider(tp), rpcotel.WithPropagators(prop)}
	b := newEnv(t, n, "b", true, core.Config{}, opts...)
	a := newEnv(t, n, "a", false, core.Config{}, opts...)
	type seen struct {
		keys  []string
		upper any
	}
	got := make(chan seen, 1)
	peertest.MustRegister(t, b, "svc", handler(func(cx *core.Context, _ any) error {
		var s seen
		for k := range cx.Headers() {
			s.keys = append(s.keys, k)
		}
		s.upper = cx.Context().Value(upperKey{})
		got <- s
		return cx.Reply(Pong{})
	}))
	if _, err := peertest.AskWithin(t, lookup(t, a, b, "svc"), Ping{}); err != nil {
		t.Fatalf("Ask: %v", err)
	}
	s := peertest.Await(t, got, "the delivery")
	want := map[string]bool{"traceparent": true, "x-upper": true, "large-1": true}
	if len(s.keys) != len(want) {
		t.Errorf("headers %q, want traceparent, x-upper and large-1", s.keys)
	}
	for _, k := range s.keys {
		if !want[k] {
			t.Errorf("header %q was sent", k)
		}
	}
	if s.upper != "kept" {
		t.Errorf("extracted %v, want kept", s.upper)
	}
}

// A handler that panics still ends its span, as failed, and the env
// still recovers the panic and fails the ask.
func TestAPanickingHandlerEndsItsSpan(t *testing.T) {
	n := networks()[0]
	sink, tp := newSpanSink()
	opts := rpcotel.WithTracerProvider(tp)
	b := newEnv(t, n, "b", true, core.Config{}, opts)
	a := newEnv(t, n, "a", false, core.Config{}, opts)
	peertest.MustRegister(t, b, "svc", handler(func(*core.Context, any) error { panic("oops") }))
	_, err := peertest.AskWithin(t, lookup(t, a, b, "svc"), Ping{})
	if err == nil || !strings.Contains(err.Error(), "oops") {
		t.Fatalf("Ask = %v, want the panic reported", err)
	}
	server := sink.awaitSpan(t, trace.SpanKindServer, "svc/otel.Ping")
	if server.Status().Code != codes.Error || attr(server, "error.type") != "panic" {
		t.Errorf("server span: status %+v, error.type %q; want an error, panic", server.Status(), attr(server, "error.type"))
	}
	client := sink.awaitSpan(t, trace.SpanKindClient, "svc/otel.Ping")
	if client.Status().Code != codes.Error {
		t.Errorf("client span: status %+v, want an error", client.Status())
	}
}

// The contexts the interceptors hand on derive from core's, so that core
// still tells an ask that could never be answered at once.
func TestAnAskOfItselfStillFailsWithErrDeadlock(t *testing.T) {
	n := networks()[0]
	_, tp := newSpanSink()
	b := newEnv(t, n, "b", true, core.Config{}, rpcotel.WithTracerProvider(tp))
	a := newEnv(t, n, "a", false, core.Config{}, rpcotel.WithTracerProvider(tp))
	peertest.MustRegister(t, b, "self", handler(func(cx *core.Context, msg any) error {
		_, err := cx.Self().Ask(cx.Context(), Note{})
		return err
	}))
	if _, err := peertest.AskWithin(t, lookup(t, a, b, "self"), Ping{}); !errors.Is(err, core.ErrDeadlock) {
		t.Errorf("Ask = %v, want ErrDeadlock", err)
	}
}
