package rpcotel_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/internal/peertest"
	rpcotel "github.com/rpcenv/rpcenv/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace"
)

// collect reads every metric from r.
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("Collect: %v", err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sm.Scope.Name != rpcotel.ScopeName {
				t.Errorf("metric %s in scope %q, want %q", m.Name, sm.Scope.Name, rpcotel.ScopeName)
			}
			out[m.Name] = m
		}
	}
	return out
}

// label writes an attribute set as "k=v,k=v", leaving out the keys in
// skip.
func label(s attribute.Set, skip ...attribute.Key) string {
	var parts []string
	for _, kv := range s.ToSlice() {
		if !slices.Contains(skip, kv.Key) {
			parts = append(parts, string(kv.Key)+"="+kv.Value.Emit())
		}
	}
	return strings.Join(parts, ",")
}

// histogramCounts returns a duration histogram's counts by attributes,
// checking its unit and the attributes every point has.
func histogramCounts(t *testing.T, ms map[string]metricdata.Metrics, name, address string) map[string]uint64 {
	t.Helper()
	m, ok := ms[name]
	if !ok {
		t.Fatalf("no metric %s among %v", name, slices.Sorted(maps.Keys(ms)))
	}
	if m.Unit != "s" {
		t.Errorf("%s: unit %q, want s", name, m.Unit)
	}
	h, ok := m.Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s is a %T, want a histogram of float64", name, m.Data)
	}
	counts := map[string]uint64{}
	for _, dp := range h.DataPoints {
		if v, _ := dp.Attributes.Value("rpc.system.name"); v.AsString() != "rpcenv" {
			t.Errorf("%s: a point without rpc.system.name rpcenv: %s", name, label(dp.Attributes))
		}
		if v, _ := dp.Attributes.Value("server.address"); v.AsString() != address {
			t.Errorf("%s: a point with server.address %q, want %q", name, v.AsString(), address)
		}
		counts[label(dp.Attributes, "rpc.system.name", "server.address")] += dp.Count
	}
	return counts
}

// observed returns the values of one of Observe's instruments for the
// env named env, by their other attributes, checking the unit.
func observed(t *testing.T, ms map[string]metricdata.Metrics, name, unit, env string) map[string]int64 {
	t.Helper()
	m, ok := ms[name]
	if !ok {
		t.Fatalf("no metric %s among %v", name, slices.Sorted(maps.Keys(ms)))
	}
	if m.Unit != unit {
		t.Errorf("%s: unit %q, want %q", name, m.Unit, unit)
	}
	var points []metricdata.DataPoint[int64]
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		if !d.IsMonotonic || d.Temporality != metricdata.CumulativeTemporality {
			t.Errorf("%s: monotonic %v, %v; want a cumulative counter", name, d.IsMonotonic, d.Temporality)
		}
		points = d.DataPoints
	case metricdata.Gauge[int64]:
		points = d.DataPoints
	default:
		t.Fatalf("%s is a %T", name, m.Data)
	}
	out := map[string]int64{}
	for _, dp := range points {
		if v, _ := dp.Attributes.Value(rpcotel.AttrEnvName); v.AsString() == env {
			out[label(dp.Attributes, rpcotel.AttrEnvName)] = dp.Value
		}
	}
	return out
}

func checkValues[V comparable](t *testing.T, what string, got, want map[string]V) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, show(got), show(want))
	}
}

func show[V any](m map[string]V) string {
	var lines []string
	for k, v := range m {
		lines = append(lines, fmt.Sprintf("%s: %v", k, v))
	}
	sort.Strings(lines)
	return "{" + strings.Join(lines, "; ") + "}"
}

// holder is an endpoint that handles Ping, Note and Boom, accepts a
// stream, and blocks on Hold until released: a message that is being
// handled proves that every message before it was counted, since an
// endpoint's counters are added once per batch.
type holder struct {
	held    chan struct{}
	release chan struct{}
}

func (h *holder) Receive(c *core.Context, msg any) error {
	switch m := msg.(type) {
	case Ping:
		return c.Reply(Pong{N: m.N})
	case Note:
		return nil
	case Boom:
		return errBoom
	case Hold:
		h.held <- struct{}{}
		<-h.release
		return nil
	}
	return fmt.Errorf("unexpected %T", msg)
}

func (h *holder) ReceiveStream(_ *core.Context, _ any, s *core.Stream) error {
	b, err := io.ReadAll(s)
	if err != nil || string(b) != "hello" {
		return fmt.Errorf("read %q, %v; want hello", b, err)
	}
	if _, err := s.Write([]byte("ok")); err != nil {
		return err
	}
	return s.CloseWrite()
}

// A known workload (5 asks, 3 sends, a failing ask, a stream, a dead
// letter) gives exact durations counts, and Observe reports exact
// counters for it.
func TestMetricsOfAKnownWorkload(t *testing.T) {
	n := networks()[0]
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	sink, tp := newSpanSink()
	opts := []rpcotel.Option{rpcotel.WithMeterProvider(mp), rpcotel.WithTracerProvider(tp)}
	dead := make(chan core.DeadLetter, 1)
	b := newEnv(t, n, "b", true, core.Config{OnDeadLetter: func(d core.DeadLetter) { dead <- d }}, opts...)
	a := newEnv(t, n, "a", false, core.Config{}, opts...)
	svc := &holder{held: make(chan struct{}), release: make(chan struct{})}
	pipe := &holder{held: make(chan struct{}), release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(svc.release); close(pipe.release) }) }
	t.Cleanup(release) // before the envs shut down
	peertest.MustRegister(t, b, "svc", svc)
	peertest.MustRegister(t, b, "pipe", pipe)
	tmp := peertest.MustRegister(t, b, "tmp", handler(func(*core.Context, any) error { return nil }))
	toSvc, toPipe, toTmp := lookup(t, a, b, "svc"), lookup(t, a, b, "pipe"), lookup(t, a, b, "tmp")
	if err := b.Stop(tmp); err != nil {
		t.Fatal(err)
	}
	stopA, err := rpcotel.Observe(a, rpcotel.WithMeterProvider(mp))
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	defer stopA()
	stopB, err := rpcotel.Observe(b, rpcotel.WithMeterProvider(mp))
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	defer stopB()

	for i := range 5 {
		if v, err := peertest.AskWithin(t, toSvc, Ping{N: i}); err != nil || v != (Pong{N: i}) {
			t.Fatalf("Ask %d = %v, %v", i, v, err)
		}
	}
	for range 3 {
		if err := toSvc.Send(Note{Text: "hi"}); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if _, err := peertest.AskWithin(t, toSvc, Boom{}); err == nil {
		t.Fatal("Ask Boom succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	s, err := toPipe.OpenStream(ctx, StreamOpen{})
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	if _, err := s.Write([]byte("hello")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	if got := readAll(t, s); got != "ok" {
		t.Fatalf("read %q from the stream, want ok", got)
	}
	s.Close()
	if err := toTmp.Send(Note{Text: "lost"}); err != nil {
		t.Fatalf("Send to a stopped endpoint: %v (the remote env drops it)", err)
	}
	peertest.Await(t, dead, "the dead letter")
	// Everything before the holds is handled and counted once both are
	// being handled.
	if err := toSvc.Send(Hold{}); err != nil {
		t.Fatal(err)
	}
	if err := toPipe.Send(Hold{}); err != nil {
		t.Fatal(err)
	}
	peertest.Await(t, svc.held, "svc to hold")
	peertest.Await(t, pipe.held, "pipe to hold")

	ms := collect(t, reader)
	checkValues(t, "rpc.client.call.duration counts", histogramCounts(t, ms, "rpc.client.call.duration", b.Address()), map[string]uint64{
		"rpc.method=svc/otel.Ping":                   5,
		"rpc.method=svc/otel.Note":                   3,
		"error.type=_OTHER,rpc.method=svc/otel.Boom": 1,
		"rpc.method=pipe/otel.StreamOpen":            1,
		"rpc.method=tmp/otel.Note":                   1,
		"rpc.method=svc/otel.Hold":                   1,
		"rpc.method=pipe/otel.Hold":                  1,
	})
	checkValues(t, "rpc.server.call.duration counts", histogramCounts(t, ms, "rpc.server.call.duration", b.Address()), map[string]uint64{
		"rpc.method=svc/otel.Ping":                   5,
		"rpc.method=svc/otel.Note":                   3,
		"error.type=_OTHER,rpc.method=svc/otel.Boom": 1,
		"rpc.method=pipe/otel.StreamOpen":            1,
	})

	perEndpoint := func(svc, pipe int64) map[string]int64 {
		return map[string]int64{"rpcenv.endpoint.name=svc": svc, "rpcenv.endpoint.name=pipe": pipe}
	}
	checkValues(t, "b's inbox sizes", observed(t, ms, rpcotel.MetricInboxSize, "{message}", "b"), perEndpoint(0, 0))
	checkValues(t, "b's handled", observed(t, ms, rpcotel.MetricHandled, "{message}", "b"), perEndpoint(9, 1))
	checkValues(t, "b's failed", observed(t, ms, rpcotel.MetricFailed, "{message}", "b"), perEndpoint(1, 0))
	one := func(v int64) map[string]int64 { return map[string]int64{"": v} }
	checkValues(t, "b's dead letters", observed(t, ms, rpcotel.MetricDeadLetters, "{message}", "b"), one(1))
	checkValues(t, "a's dead letters", observed(t, ms, rpcotel.MetricDeadLetters, "{message}", "a"), one(0))
	for _, env := range []string{"a", "b"} {
		checkValues(t, env+"'s connections up", observed(t, ms, rpcotel.MetricConnectionsUp, "{connection}", env), one(1))
		checkValues(t, env+"'s connections lost", observed(t, ms, rpcotel.MetricConnectionsLost, "{connection}", env), one(0))
		checkValues(t, env+"'s connections refused", observed(t, ms, rpcotel.MetricConnectionsRefused, "{connection}", env), one(0))
	}
	io := func(in, out int64) map[string]int64 {
		return map[string]int64{"network.io.direction=receive": in, "network.io.direction=transmit": out}
	}
	checkValues(t, "b's stream bytes", observed(t, ms, rpcotel.MetricStreamIO, "By", "b"), io(5, 2))
	checkValues(t, "a's stream bytes", observed(t, ms, rpcotel.MetricStreamIO, "By", "a"), io(2, 5))
	for _, env := range []string{"a", "b"} {
		got := observed(t, ms, rpcotel.MetricConnectionIO, "By", env)
		if len(got) != 2 || got["network.io.direction=receive"] <= 0 || got["network.io.direction=transmit"] <= 0 {
			t.Errorf("%s's connection bytes %v, want some both ways", env, got)
		}
	}

	// A duration is its span's.
	span := sink.awaitSpan(t, trace.SpanKindClient, "svc/otel.Boom")
	for _, dp := range ms["rpc.client.call.duration"].Data.(metricdata.Histogram[float64]).DataPoints {
		if v, _ := dp.Attributes.Value("rpc.method"); v.AsString() == "svc/otel.Boom" {
			if d := span.EndTime().Sub(span.StartTime()).Seconds(); dp.Sum != d {
				t.Errorf("Boom's client duration %vs, its span's %vs", dp.Sum, d)
			}
		}
	}

	// stop unregisters the callback: b's instruments report nothing more,
	// a's go on.
	if err := stopB(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if err := stopB(); err != nil {
		t.Errorf("stop again: %v", err)
	}
	ms = collect(t, reader)
	if got := observed(t, ms, rpcotel.MetricDeadLetters, "{message}", "b"); len(got) != 0 {
		t.Errorf("b's dead letters after stop: %v, want none", got)
	}
	checkValues(t, "a's connections up after b's stop", observed(t, ms, rpcotel.MetricConnectionsUp, "{connection}", "a"), one(1))
	release()
}
