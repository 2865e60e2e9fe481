package main

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// -trace stdout prints the traces of the first traceTasks tasks, as
// JSON, one span after another as they end. Each is a task's whole
// conversation, crossing driver, executor and driver again:
//
//	executor/msg.LaunchTask    producer  driver: sends the task (the trace's root)
//	└ executor/msg.LaunchTask  consumer  executor: runs it
//	  └ driver/msg.StatusUpdate  client  executor: asks with c.Context(), so the trace goes on
//	    └ driver/msg.StatusUpdate server driver: counts the result
//
// Every other span (registrations, heartbeats, the task code's fetch, the
// other tasks) is dropped by the sampler, so the spans cost nothing past
// the first traces.
const traceTasks = 3

// launchSpan is the suffix of the name rpcotel gives a LaunchTask span:
// "{endpoint}/{Go type}".
const launchSpan = "/msg.LaunchTask"

// newStdoutTracing returns a tracer provider that writes to w the spans
// of the first n traces whose root is a LaunchTask.
func newStdoutTracing(w io.Writer, n int64, res *resource.Resource) (*sdktrace.TracerProvider, error) {
	exp, err := stdouttrace.New(stdouttrace.WithWriter(w), stdouttrace.WithPrettyPrint())
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	return sdktrace.NewTracerProvider(
		// Synchronous: a span is printed when it ends, before the
		// summary, and there is no batch to flush.
		sdktrace.WithSyncer(exp),
		sdktrace.WithResource(res),
		// A span with a parent follows its parent's decision, which
		// crossed with the message (the traceparent header's flag).
		sdktrace.WithSampler(sdktrace.ParentBased(&firstTasks{left: n})),
	), nil
}

// firstTasks samples the first n root spans of LaunchTask sends, and no
// other root span. It is safe for concurrent use.
type firstTasks struct {
	left int64 // n, then how many more to sample
	seen atomic.Int64
}

// ShouldSample implements sdktrace.Sampler for root spans (ParentBased
// decides for the others).
func (f *firstTasks) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	psc := trace.SpanContextFromContext(p.ParentContext)
	decision := sdktrace.Drop
	if strings.HasSuffix(p.Name, launchSpan) && f.seen.Add(1) <= f.left {
		decision = sdktrace.RecordAndSample
	}
	return sdktrace.SamplingResult{Decision: decision, Tracestate: psc.TraceState()}
}

// Description implements sdktrace.Sampler.
func (f *firstTasks) Description() string {
	return fmt.Sprintf("FirstTasks{%d}", f.left)
}
