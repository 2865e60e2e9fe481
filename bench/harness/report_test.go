package harness

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeResults has every system on every case, with made-up figures:
// system i's latency is (i+1) µs and its rate 1000×(i+1) per second;
// grpc-unary and net/rpc have no one-way or slow-heap results, raw-tcp
// and chan no bulk-ask ones, raw-quic only stream ones, grpc-unary,
// net/rpc and chan no stream ones, and rpcenv-quic failed bulk-ask. In
// the stress cases, system i's max is 10×(i+1) µs, its bulk count i, its
// heap growth i MiB, and it sent 1000×(i+1) messages and received 100.
// In the stream case, its rate is 100×(i+1) MB/s and its heap growth
// 40×i MiB.
func fakeResults() *Results {
	r := &Results{Systems: Systems(), Cases: Cases(), Rounds: 5, Benchtime: 250 * time.Millisecond, Stress: Stress{}.withDefaults()}
	for i, sys := range r.Systems {
		for _, c := range r.Cases {
			x := Result{System: sys.Name(), Case: c, N: 1000}
			noOneWay := sys.Name() == "grpc-unary" || sys.Name() == "net/rpc"
			switch {
			case (c.Workload == OneWay || c.Workload == SlowHeap) && noOneWay,
				c.Workload == BulkAsk && (sys.Name() == "raw-tcp" || sys.Name() == "chan"),
				c.Workload != Stream && sys.Name() == "raw-quic",
				c.Workload == Stream && !slices.Contains(supportsStream, sys.Name()):
				x.NA = true
			case c.Workload == BulkAsk && sys.Name() == "rpcenv-quic":
				x.Err = "no result within 1m0s (closed the connection; then: ask 7 of 200: closed)"
			case c.Workload == Stream:
				x.N = 1 << 30
				x.Rate = 100e6 * float64(i+1)
				x.HeapGrowth = float64(40 * i << 20)
			case c.Workload.stress():
				x.P50 = time.Duration(i+1) * time.Microsecond
				x.P99 = 3 * x.P50
				x.Max = 10 * x.P50
				x.Bulk = i
				x.HeapGrowth = float64(i << 20)
				x.Sent, x.Received = 1000*(i+1), 100
				x.Sending, x.Closing = 2*time.Second, time.Duration(i+1)*time.Millisecond
			default:
				x.P50 = time.Duration(i+1) * time.Microsecond
				x.P99 = 3 * x.P50
				x.Mean = 2 * x.P50
				x.Rate = 1000 * float64(i+1)
				x.AllocsPerOp, x.BytesPerOp = float64(i), 100*float64(i)
			}
			r.Set(x)
		}
	}
	return r
}

func fakeMachine() Machine {
	return Machine{Date: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), GoVersion: "go1.26.8", OS: "linux", Arch: "amd64",
		GOMAXPROCS: 2, NumCPU: 2, CPU: "AMD EPYC <test> & co", Commit: "abc1234", Command: "go -C bench run ./cmd/report"}
}

func TestMarkdownShowsValuesRatiosAndNA(t *testing.T) {
	md := Markdown(fakeResults(), fakeMachine())
	flat := strings.Join(strings.Fields(md), " ") // without the padding
	for _, want := range []string{
		"| rpcenv-tcp | 2.00 µs (1.00x) |", // the reference
		"| grpc-unary | 4.00 µs (2.00x) |", // p50, system 3
		"| grpc-unary | 12.0 µs (2.00x) |", // p99
		"| raw-tcp | 7.00 k/s (3.50x) |",   // a rate
		"| net/rpc | n/a | n/a | n/a |",    // no one-way
		"| system | 64 B, lower is better | 1 KiB, lower is better | 64 KiB, lower is better |",
		"| system | 64 B, higher is better | 1 KiB, higher is better | 64 KiB, higher is better |",
		"In parentheses: time ratio to rpcenv-tcp, lower is better.",
		"In parentheses: rate ratio to rpcenv-tcp, higher is better.",
		"### Ask throughput, 256 callers",
		"![benchmarks](benchmarks.svg)",
		"AMD EPYC <test> & co, 2 logical CPUs",
		"abc1234",
		"`go -C bench run ./cmd/report`",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md)
	}
}

func TestMarkdownShowsTheStressTables(t *testing.T) {
	md := Markdown(fakeResults(), fakeMachine())
	flat := strings.Join(strings.Fields(md), " ")
	for _, want := range []string{
		"### Ask latency during bulk sends",
		"sends 32 MiB one-way messages back to back, another makes 200 sequential asks of 64 B",
		"A run that takes more than 60 s fails.",
		"| system | p50 | p99 | max | bulk meanwhile |",
		"| rpcenv-tcp | 2.00 µs | 6.00 µs | 20.0 µs | 1 |", // system 2, no ratios
		"| net/rpc | 6.00 µs | 18.0 µs | 60.0 µs | 5 |",
		"| rpcenv-quic | failed | failed | failed | failed |",
		"| chan | n/a | n/a | n/a | n/a |",
		"- rpcenv-quic: no result within 1m0s (closed the connection; then: ask 7 of 200: closed)",
		"### Heap with a slow receiver",
		"for 2 s, to a receiver that takes 1 ms over each",
		"by more than 1024 MiB is cut short",
		"| system | heap growth, lower is better | sent | received | time | close |",
		"| rpcenv-inproc | 0.00 MiB | 1,000 | 100 | 2.00 s | 1.00 ms |",
		"| chan | 8.00 MiB | 9,000 | 100 | 2.00 s | 9.00 ms |",
		"| net/rpc | n/a | n/a | n/a | n/a | n/a |",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if strings.Count(flat, "Failed:") != 1 {
		t.Errorf("want one list of failures")
	}
	if t.Failed() {
		t.Log(md)
	}
}

func TestTargetsAreComputedFromTheData(t *testing.T) {
	// rpcenv-tcp is system 2 (2 µs, 2000/s; streams 200 MB/s, heap
	// 40 MiB); grpc-unary 4, net/rpc 6, raw-tcp 7, rpcenv-quic 3 (heap
	// 80 MiB), grpc-stream 5, raw-quic 8.
	want := []struct {
		ratio float64
		met   bool
	}{
		{2.0 / 4, true},  // (a) ≤ 0.5
		{2.0 / 6, true},  // (b) ≤ 0.6
		{2.0 / 7, true},  // (c) ≤ 1.5
		{2.0 / 4, false}, // (d) ≥ 2
		{2.0 / 5, false}, // (e) ≥ 5
		{3.0 / 2, true},  // (f) ≤ 2
		{2.0 / 7, false}, // (g) stream ≥ 0.7 × raw-tcp
		{2.0 / 5, false}, // (h) stream ≥ 1.2 × grpc-stream
		{3.0 / 8, false}, // (i) stream ≥ 0.5 × raw-quic
		{40 << 20, true}, // (j) heap ≤ 64 MiB: the figure itself
		{80 << 20, false},
	}
	got := targets(fakeResults())
	if len(got) != len(want) {
		t.Fatalf("%d targets, want %d", len(got), len(want))
	}
	for i, w := range want {
		if g := got[i]; !g.measured || g.ratio < w.ratio-1e-9 || g.ratio > w.ratio+1e-9 || g.met != w.met {
			t.Errorf("target %c (%s): ratio %v met %v, want %v %v", 'a'+i, g.label, g.ratio, g.met, w.ratio, w.met)
		}
	}
	md := strings.Join(strings.Fields(Markdown(fakeResults(), fakeMachine())), " ")
	for _, row := range []string{
		"| | target | measured | |",
		"| (d) | rpcenv-tcp throughput, 32 callers ≥ 2 × grpc-unary's | 0.50x (2.00 k/s / 4.00 k/s) | **missed** |",
		"| (g) | rpcenv-tcp stream rate ≥ 0.7 × raw-tcp's | 0.29x (200 MB/s / 700 MB/s) | **missed** |",
		"| (h) | rpcenv-tcp stream rate ≥ 1.2 × grpc-stream's | 0.40x (200 MB/s / 500 MB/s) | **missed** |",
		"| (i) | rpcenv-quic stream rate ≥ 0.5 × raw-quic's | 0.38x (300 MB/s / 800 MB/s) | **missed** |",
		"| (j) | rpcenv-tcp stream heap growth ≤ 64 MiB (client and server together) | 40.0 MiB | met |",
		"| (k) | rpcenv-quic stream heap growth ≤ 64 MiB (client and server together) | 80.0 MiB | **missed** |",
	} {
		if !strings.Contains(md, row) {
			t.Errorf("the report lacks the row %q:\n%s", row, md)
		}
	}
}

func TestStreamTargetsWithoutAStreamRunAreNotMeasured(t *testing.T) {
	r := fakeResults()
	r.Cases = Cases(Latency, Throughput, OneWay)
	for _, sys := range r.Systems {
		delete(r.byKey, resultKey{sys.Name(), Case{Stream, StreamChunk, 1}})
	}
	md := strings.Join(strings.Fields(Markdown(r, fakeMachine())), " ")
	for _, row := range []string{
		"| (g) | rpcenv-tcp stream rate ≥ 0.7 × raw-tcp's | - | not measured |",
		"| (k) | rpcenv-quic stream heap growth ≤ 64 MiB (client and server together) | - | not measured |",
	} {
		if !strings.Contains(md, row) {
			t.Errorf("the report lacks the row %q:\n%s", row, md)
		}
	}
	if strings.Contains(md, "Bulk data through a stream") {
		t.Errorf("a stream table without a stream run")
	}
}

func TestStreamTargetsOfAFailedRunAreMissed(t *testing.T) {
	r := fakeResults()
	c := Case{Stream, StreamChunk, 1}
	r.Set(Result{System: "rpcenv-tcp", Case: c, Err: "no result within 1m0s"})
	r.Set(Result{System: "raw-quic", Case: c, Err: "no result within 1m0s"})
	md := strings.Join(strings.Fields(Markdown(r, fakeMachine())), " ")
	for _, row := range []string{
		"| (g) | rpcenv-tcp stream rate ≥ 0.7 × raw-tcp's | failed | **missed** |",
		"| (j) | rpcenv-tcp stream heap growth ≤ 64 MiB (client and server together) | failed | **missed** |",
		"| (i) | rpcenv-quic stream rate ≥ 0.5 × raw-quic's | - | not measured |", // the floor failed
		"| rpcenv-tcp | failed | failed |",
		"- rpcenv-tcp: no result within 1m0s",
	} {
		if !strings.Contains(md, row) {
			t.Errorf("the report lacks %q:\n%s", row, md)
		}
	}
}

func TestMarkdownShowsTheStreamTable(t *testing.T) {
	md := Markdown(fakeResults(), fakeMachine())
	stream := strings.Join(strings.Fields(section(md, "Bulk data through a stream")), " ")
	for _, want := range []string{
		"One client moves 1 GiB to the server through one stream, in writes of 64 KiB,",
		"Every 1 ms during the run",
		"so it counts both sides",
		"A run that takes more than 60 s fails.",
		"| system | rate, higher is better | heap growth, lower is better |",
		"| rpcenv-inproc | 100 MB/s (0.50x) | 0.00 MiB |",
		"| rpcenv-tcp | 200 MB/s (1.00x) | 40.0 MiB |", // the reference
		"| raw-quic | 800 MB/s (4.00x) | 280 MiB |",
		"| grpc-unary | n/a | n/a |",
		"| chan | n/a | n/a |",
	} {
		if !strings.Contains(stream, want) {
			t.Errorf("the stream section lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(stream)
	}
}

func TestTargetsWithoutTheirSystemsAreNotMeasured(t *testing.T) {
	r := fakeResults()
	r.byKey = nil
	for _, ts := range targets(r) {
		if ts.measured {
			t.Errorf("%s: measured without data", ts.label)
		}
	}
}

func TestSVGIsValidXMLNamingEverySystem(t *testing.T) {
	svg := SVG(fakeResults(), fakeMachine())
	d := xml.NewDecoder(bytes.NewReader(svg))
	var text strings.Builder
	root := ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("invalid XML: %v\n%s", err, svg)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
		case xml.CharData:
			text.Write(tok)
			text.WriteString("\n")
		}
	}
	if root != "svg" {
		t.Errorf("root element %q, want svg", root)
	}
	for _, sys := range Systems() {
		has := strings.Contains(text.String(), sys.Name()+"\n")
		if sys.Name() == "raw-quic" { // no figure in the chart: left out
			if has {
				t.Errorf("a label %q for a system with no figure in the chart", sys.Name())
			}
		} else if !has {
			t.Errorf("no label %q", sys.Name())
		}
	}
	for _, want := range []string{"n/a", "AMD EPYC <test> & co", "2026-11-25", "64 B payload", "1 KiB payload"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the chart lacks %q", want)
		}
	}
}

// section returns the part of md, a report, under the heading "### "+title,
// up to the next heading.
func section(md, title string) string {
	_, after, ok := strings.Cut(md, "### "+title)
	if !ok {
		return ""
	}
	body, _, _ := strings.Cut(after, "### ")
	return body
}

func TestPerfTargetsCoverEveryCellAndTheCodecs(t *testing.T) {
	r := fakeResults()
	// Each system's figures are its place in Systems() (rpcenv-tcp 2,
	// rpcenv-quic 3, grpc-stream 5, net/rpc 6, raw-tcp 7,
	// rpcenv-tcp-sealed 10), the same at
	// every size and caller count; allocations are the place less one.
	r.Codecs = []CodecResult{
		{Message: "LaunchTask", Codec: "generated", Op: "encode", NsPerOp: 100},
		{Message: "LaunchTask", Codec: "generated", Op: "decode", NsPerOp: 200},
		{Message: "LaunchTask", Codec: "library", Op: "encode", NsPerOp: 400},
		{Message: "LaunchTask", Codec: "library", Op: "decode", NsPerOp: 800},
	}
	want := []struct {
		cells  int
		ratio  float64
		status string
	}{
		{3, 2.0 / 5, "met"},        // (p1) p50 ≤ 0.8 × min(grpc-stream 5, net/rpc 6)
		{3, 2.0 / 5, "**missed**"}, // (p2) one-way ≥ 1.5 × grpc-stream
		{1, 2.0 / 7, "**missed**"}, // (p3) ≥ 0.7 × raw-tcp at 64 KiB
		{3, 2.0 / 5, "**missed**"}, // (p4) 32 callers
		{3, 2.0 / 5, "**missed**"}, // (p5) 256 callers
		{3 * len(callerCounts(r)), 3.0 / 2, "met"},
		{3, 3.0 / 2, "met"},         // (p7)
		{3, 3.0 / 2, "met"},         // (p8) ≤ 1.5: on the bound
		{1, 2, "met"},               // (p9) allocations: the figure
		{1, 1200 / 300, "met"},      // (p10) codec
		{1, 10.0 / 2, "**missed**"}, // (p11) rpcenv-tcp-sealed (10) ask p50 ≤ 1.15 × rpcenv-tcp
		{1, 10.0 / 2, "met"},        // (p12) one-way ≥ 0.7 × rpcenv-tcp
	}
	got := perfTargets(r)
	if len(got) != len(want) {
		t.Fatalf("%d performance targets, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if len(g.cells) != w.cells || g.status() != w.status {
			t.Errorf("(p%d) %s: %d cells, %s; want %d, %s", i+1, g.label, len(g.cells), g.status(), w.cells, w.status)
		}
		for _, c := range g.cells {
			if !c.measured || c.ratio < w.ratio-1e-9 || c.ratio > w.ratio+1e-9 {
				t.Errorf("(p%d) %s, %s: ratio %v (measured %v), want %v", i+1, g.label, c.name, c.ratio, c.measured, w.ratio)
			}
		}
	}
	md := strings.Join(strings.Fields(Markdown(r, fakeMachine())), " ")
	for _, row := range []string{
		"| (p2) | rpcenv-tcp one-way msgs/s ≥ 1.5 × grpc-stream's | 64 B: **0.40x**, 1 KiB: **0.40x**, 64 KiB: **0.40x** | **missed** |",
		"| (p10) | generated codec, encode + decode of a nested message (LaunchTask) ≥ 3 × faster than the library's | 4.00x | met |",
		"| LaunchTask | generated | 100 ns | 0 | 200 ns | 0 | 300 ns |",
		"| (p9) | rpcenv-quic allocations per ask (1 caller, 1 KiB) ≤ 15 | 2.0 | met |",
	} {
		if !strings.Contains(md, row) {
			t.Errorf("the report lacks the row %q:\n%s", row, md)
		}
	}

	// Without the codec run, its target is not measured, and the rest
	// stand.
	r.Codecs = nil
	if s := perfTargets(r)[9].status(); s != "not measured" {
		t.Errorf("the codec target without a codec run: %s, want not measured", s)
	}
}
