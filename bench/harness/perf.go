package harness

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/internal/codectest"
)

// The performance targets: bounds on ratios over several cells of the
// tables (every payload size, or every throughput case), each met only
// when every cell it covers is, and the codec micro-benchmarks they
// include.

// CodecResult is the figure of one codec micro-benchmark
// (internal/codectest.Benchmarks).
type CodecResult struct {
	Message, Codec, Op string
	NsPerOp            float64
	AllocsPerOp        int64
}

// MeasureCodecs runs the codec micro-benchmarks: each message encoded and
// decoded with rpcgen's generated codec and with the library's, about a
// second each.
func MeasureCodecs() []CodecResult {
	var out []CodecResult
	for _, bm := range codectest.Benchmarks() {
		r := testing.Benchmark(bm.F)
		out = append(out, CodecResult{Message: bm.Message, Codec: bm.Codec, Op: bm.Op,
			NsPerOp: float64(r.T.Nanoseconds()) / float64(max(r.N, 1)), AllocsPerOp: r.AllocsPerOp()})
	}
	return out
}

// codecTime is encode plus decode of message with codec, or 0 if either
// was not measured.
func codecTime(rs []CodecResult, message, codec string) float64 {
	var enc, dec float64
	for _, r := range rs {
		if r.Message == message && r.Codec == codec {
			switch r.Op {
			case "encode":
				enc = r.NsPerOp
			case "decode":
				dec = r.NsPerOp
			}
		}
	}
	if enc == 0 || dec == 0 {
		return 0
	}
	return enc + dec
}

// A perfTarget bounds a ratio on each of its cells.
type perfTarget struct {
	label  string
	cells  []perfCell
	bound  float64
	atMost bool // each ratio must be at most bound (else at least)
	figure bool // the cells hold a count, not a ratio
}

// A perfCell is one ratio of a perfTarget; measured is false when a
// system or case it needs did not run.
type perfCell struct {
	name     string // "64 B", "32 callers, 1 KiB"; "" for a target of one cell
	ratio    float64
	measured bool
}

func (t perfTarget) cellMet(c perfCell) bool {
	if t.atMost {
		return c.ratio <= t.bound
	}
	return c.ratio >= t.bound
}

// status is "met", "**missed**" or "not measured": missed when a
// measured cell misses, met when every cell is measured and meets.
func (t perfTarget) status() string {
	all := len(t.cells) > 0
	for _, c := range t.cells {
		if c.measured && !t.cellMet(c) {
			return "**missed**"
		}
		all = all && c.measured
	}
	if all {
		return "met"
	}
	return "not measured"
}

func (t perfTarget) measuredText() string {
	var parts []string
	for _, c := range t.cells {
		v := "-"
		if c.measured {
			v = fmtRatio(c.ratio)
			if t.figure {
				v = fmtCount(c.ratio)
			}
			if !t.cellMet(c) {
				v = "**" + v + "**"
			}
		}
		if c.name != "" {
			v = c.name + ": " + v
		}
		parts = append(parts, v)
	}
	return strings.Join(parts, ", ")
}

// perfTargets returns the performance targets, computed from r.
func perfTargets(r *Results) []perfTarget {
	sizes := []int{64, 1 << 10, 64 << 10}
	p50 := func(x Result) float64 { return float64(x.P50) }
	rate := func(x Result) float64 { return x.Rate }
	// ratio is num's figure over the smallest (least) of dens' on c.
	ratio := func(name string, c Case, value func(Result) float64, num string, dens ...string) perfCell {
		cell := perfCell{name: name}
		n, ok := r.Get(num, c)
		if !ok || n.NA || n.Err != "" || value(n) <= 0 {
			return cell
		}
		best := 0.0
		for _, d := range dens {
			x, ok := r.Get(d, c)
			if !ok || x.NA || x.Err != "" || value(x) <= 0 {
				return cell
			}
			if v := value(x); best == 0 || v < best {
				best = v
			}
		}
		cell.ratio, cell.measured = value(n)/best, true
		return cell
	}
	perSize := func(w Workload, callers int, value func(Result) float64, num string, dens ...string) []perfCell {
		var cells []perfCell
		for _, s := range sizes {
			cells = append(cells, ratio(sizeLabel(s), Case{w, s, callers}, value, num, dens...))
		}
		return cells
	}
	var quicThroughput []perfCell
	for _, n := range callerCounts(r) {
		for _, s := range sizes {
			quicThroughput = append(quicThroughput, ratio(fmt.Sprintf("%d %s, %s", n, plural(n, "caller"), sizeLabel(s)), Case{Throughput, s, n}, rate, "rpcenv-quic", "rpcenv-tcp"))
		}
	}
	quicAllocs := perfCell{}
	if x, ok := r.Get("rpcenv-quic", Case{Latency, 1 << 10, 1}); ok && !x.NA && x.Err == "" {
		quicAllocs = perfCell{ratio: x.AllocsPerOp, measured: true}
	}
	codec := perfCell{}
	if gen, lib := codecTime(r.Codecs, "LaunchTask", "generated"), codecTime(r.Codecs, "LaunchTask", "library"); gen > 0 && lib > 0 {
		codec = perfCell{ratio: lib / gen, measured: true}
	}
	return []perfTarget{
		{label: "rpcenv-tcp ask p50 ≤ 0.8 × the better of grpc-stream's and net/rpc's", cells: perSize(Latency, 1, p50, "rpcenv-tcp", "grpc-stream", "net/rpc"), bound: 0.8, atMost: true},
		{label: "rpcenv-tcp one-way msgs/s ≥ 1.5 × grpc-stream's", cells: perSize(OneWay, 1, rate, "rpcenv-tcp", "grpc-stream"), bound: 1.5},
		{label: "rpcenv-tcp one-way msgs/s at 64 KiB ≥ 0.7 × raw-tcp's", cells: []perfCell{ratio("", Case{OneWay, 64 << 10, 1}, rate, "rpcenv-tcp", "raw-tcp")}, bound: 0.7},
		{label: "rpcenv-tcp throughput, 32 callers ≥ 1.5 × grpc-stream's", cells: perSize(Throughput, 32, rate, "rpcenv-tcp", "grpc-stream"), bound: 1.5},
		{label: "rpcenv-tcp throughput, 256 callers ≥ 1.5 × grpc-stream's", cells: perSize(Throughput, 256, rate, "rpcenv-tcp", "grpc-stream"), bound: 1.5},
		{label: "rpcenv-quic throughput ≥ 0.5 × rpcenv-tcp's, every caller count", cells: quicThroughput, bound: 0.5},
		{label: "rpcenv-quic one-way msgs/s ≥ 0.5 × rpcenv-tcp's", cells: perSize(OneWay, 1, rate, "rpcenv-quic", "rpcenv-tcp"), bound: 0.5},
		{label: "rpcenv-quic ask p50 ≤ 1.5 × rpcenv-tcp's", cells: perSize(Latency, 1, p50, "rpcenv-quic", "rpcenv-tcp"), bound: 1.5, atMost: true},
		{label: "rpcenv-quic allocations per ask (1 caller, 1 KiB) ≤ 15", cells: []perfCell{quicAllocs}, bound: 15, atMost: true, figure: true},
		{label: "generated codec, encode + decode of a nested message (LaunchTask) ≥ 3 × faster than the library's", cells: []perfCell{codec}, bound: 3},
		{label: "rpcenv-tcp-sealed (Config.Secret, frames sealed) ask p50 at 64 B ≤ 1.15 × rpcenv-tcp's", cells: []perfCell{ratio("", Case{Latency, 64, 1}, p50, "rpcenv-tcp-sealed", "rpcenv-tcp")}, bound: 1.15, atMost: true},
		{label: "rpcenv-tcp-sealed one-way msgs/s at 64 KiB ≥ 0.7 × rpcenv-tcp's", cells: []perfCell{ratio("", Case{OneWay, 64 << 10, 1}, rate, "rpcenv-tcp-sealed", "rpcenv-tcp")}, bound: 0.7},
	}
}

func writePerfTargets(b *strings.Builder, r *Results) {
	b.WriteString("### Performance targets\n\nEach target covers several cells of the tables below (a ratio per payload size, or per throughput case) and is met only when every cell is; a missed cell is in bold. The codec target is from the codec micro-benchmarks (last table).\n\n")
	t := &table{header: []string{"", "target", "measured", ""}, right: []bool{false, false, false, false}}
	for i, x := range perfTargets(r) {
		t.add(fmt.Sprintf("(p%d)", i+1), x.label, x.measuredText(), x.status())
	}
	t.write(b)
	b.WriteString("\n")
}

func writeCodecs(b *strings.Builder, r *Results) {
	if len(r.Codecs) == 0 {
		return
	}
	b.WriteString("### Codecs\n\n`internal/codectest`'s micro-benchmarks, run by the report: each message encoded into a reused buffer and decoded into a new value, with rpcgen's generated codec and with the library's (reflection). LaunchTask is a nested message of 2.5 KiB (four maps, slices, a 2 KiB payload, a ref, a time); Flat has six plain fields.\n\n")
	t := &table{header: []string{"message", "codec", "encode", "allocs", "decode", "allocs", "both"}, right: []bool{false, false, true, true, true, true, true}}
	for _, msg := range []string{"LaunchTask", "Flat"} {
		for _, codec := range []string{"generated", "library"} {
			row := []string{msg, codec}
			for _, op := range []string{"encode", "decode"} {
				cell, allocs := "-", "-"
				for _, c := range r.Codecs {
					if c.Message == msg && c.Codec == codec && c.Op == op {
						cell, allocs = fmtDuration(time.Duration(c.NsPerOp)), fmt.Sprint(c.AllocsPerOp)
					}
				}
				row = append(row, cell, allocs)
			}
			both := "-"
			if v := codecTime(r.Codecs, msg, codec); v > 0 {
				both = fmtDuration(time.Duration(v))
			}
			t.add(append(row, both)...)
		}
	}
	t.write(b)
	b.WriteString("\n")
}
