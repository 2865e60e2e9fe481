package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// span is what the test reads of a span that stdouttrace printed.
type span struct {
	Name        string
	SpanContext struct{ TraceID, SpanID string }
	Parent      struct {
		TraceID, SpanID string
		Remote          bool
	}
	SpanKind int // trace.SpanKind: 2 server, 3 client, 4 producer, 5 consumer
}

// printedSpans returns the spans in out: the JSON objects that start
// with a line "{" and end with a line "}" (stdouttrace's pretty print);
// the summary's lines are not.
func printedSpans(t *testing.T, out string) []span {
	t.Helper()
	var spans []span
	var obj []string
	for _, l := range strings.Split(out, "\n") {
		switch {
		case l == "{":
			obj = []string{l}
		case obj != nil && l == "}":
			var s span
			if err := json.Unmarshal([]byte(strings.Join(append(obj, l), "\n")), &s); err != nil {
				t.Fatalf("a span that is not JSON: %v\n%s", err, strings.Join(obj, "\n"))
			}
			spans = append(spans, s)
			obj = nil
		case obj != nil:
			obj = append(obj, l)
		}
	}
	return spans
}

// -trace stdout prints the first traceTasks tasks' traces, each the
// whole conversation of a task: the driver's LaunchTask send, the
// executor's handling of it, its StatusUpdate ask made with the
// handler's context, and the driver's handling of that, each the child
// of the one before, across envs through the messages' headers.
func TestTraceStdoutPrintsTheFirstTasksFromDriverToExecutorAndBack(t *testing.T) {
	cfg := testConfig()
	cfg.Trace = "stdout"
	out, errOut, err := runJob(t, cfg)
	if err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, errOut)
	}
	if !strings.Contains(out, "result: 9592 primes below 100000 (expected 9592): OK") {
		t.Errorf("the summary is missing:\n%s", out)
	}
	traces := map[string][]span{}
	var order []string
	for _, s := range printedSpans(t, out) {
		id := s.SpanContext.TraceID
		if traces[id] == nil {
			order = append(order, id)
		}
		traces[id] = append(traces[id], s)
	}
	if len(traces) != traceTasks {
		t.Fatalf("%d traces printed, want %d:\n%s", len(traces), traceTasks, out)
	}
	want := []struct {
		name   string
		kind   int
		remote bool // whether the parent is in the other env
	}{
		{"executor/msg.LaunchTask", 4, false}, // the driver sends (the root)
		{"executor/msg.LaunchTask", 5, true},  // the executor handles it
		{"driver/msg.StatusUpdate", 3, false}, // and asks from its handler
		{"driver/msg.StatusUpdate", 2, true},  // the driver handles that
	}
	for _, id := range order {
		spans := traces[id]
		if len(spans) != len(want) {
			t.Errorf("trace %s has %d spans, want %d: %+v", id, len(spans), len(want), spans)
			continue
		}
		bySpan := map[string]span{}
		var root *span
		for i, s := range spans {
			bySpan[s.SpanContext.SpanID] = s
			if strings.Trim(s.Parent.SpanID, "0") == "" {
				root = &spans[i]
			}
		}
		if root == nil {
			t.Errorf("trace %s has no root: %+v", id, spans)
			continue
		}
		// Walk from the root down, each step the only child of the last.
		cur := *root
		for i, w := range want {
			if cur.Name != w.name || cur.SpanKind != w.kind || (i > 0 && cur.Parent.Remote != w.remote) {
				t.Errorf("trace %s, span %d: %s kind %d (remote parent %v), want %s kind %d (remote parent %v)",
					id, i, cur.Name, cur.SpanKind, cur.Parent.Remote, w.name, w.kind, w.remote)
				break
			}
			if i == len(want)-1 {
				break
			}
			var next []span
			for _, s := range spans {
				if s.Parent.SpanID == cur.SpanContext.SpanID {
					next = append(next, s)
				}
			}
			if len(next) != 1 {
				t.Errorf("trace %s: %s has %d children, want 1", id, cur.Name, len(next))
				break
			}
			cur = next[0]
		}
	}
}
