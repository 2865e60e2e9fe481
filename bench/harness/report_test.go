package harness

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// fakeResults has every system on every case, with made-up figures:
// system i's latency is (i+1) µs and its rate 1000×(i+1) per second;
// grpc-unary and net/rpc have no one-way results.
func fakeResults() *Results {
	r := &Results{Systems: Systems(), Cases: Cases(), Rounds: 5, Benchtime: 250 * time.Millisecond}
	for i, sys := range r.Systems {
		for _, c := range r.Cases {
			x := Result{System: sys.Name(), Case: c, N: 1000}
			if c.Workload == OneWay && (sys.Name() == "grpc-unary" || sys.Name() == "net/rpc") {
				x.NA = true
			} else {
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

func TestTargetsAreComputedFromTheData(t *testing.T) {
	// rpcenv-tcp is system 2 (2 µs, 2000/s); grpc-unary 4, net/rpc 6,
	// raw-tcp 7, rpcenv-quic 3, grpc-stream 5.
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
	if !strings.Contains(md, "| (d) | rpcenv-tcp throughput, 32 callers ≥ 2 × grpc-unary's | 0.50x (2.00 k/s / 4.00 k/s) | **missed** |") {
		t.Errorf("target (d) is not in the report as expected:\n%s", md)
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
		if !strings.Contains(text.String(), sys.Name()+"\n") {
			t.Errorf("no label %q", sys.Name())
		}
	}
	for _, want := range []string{"n/a", "AMD EPYC <test> & co", "2026-11-25", "64 B payload", "1 KiB payload"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the chart lacks %q", want)
		}
	}
}
