// Command report measures rpcenv beside gRPC-go, net/rpc and raw floors
// and writes the report: tables on stdout, progress on stderr, and, with
// -out, the generated region of <out>/BENCHMARKS.md and the chart
// <out>/benchmarks.svg. Run it from the repository root:
//
//	go -C bench run ./cmd/report            # the full run; writes ../docs (the repository's docs/)
//	go -C bench run ./cmd/report -short     # every system on every case, quickly; writes nothing
//	go -C bench run ./cmd/report -systems rpcenv-tcp,grpc-unary -rounds 3
//	go -C bench run ./cmd/report -short -workloads bulk-ask,slow-heap
//	go -C bench run ./cmd/report -short -workloads stream -out /tmp/benchout
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rpcenv/rpcenv/bench/harness"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run() error {
	short := flag.Bool("short", false, "a quick run: 2 rounds, 5ms benchtime, 10 asks during bulk sends, 300ms of slow-heap sending, streams of 32 MiB (not 1 GiB), and no files unless -out is given")
	rounds := flag.Int("rounds", 5, "rounds over every case and system (at least 1); 2 with -short")
	benchtime := flag.Duration("benchtime", 250*time.Millisecond, "about how long one timed run takes; 5ms with -short")
	systems := flag.String("systems", "", "comma-separated systems to run (default all): "+names())
	workloads := flag.String("workloads", "", "comma-separated workloads to run (default all): "+workloadNames())
	codecs := flag.Bool("codecs", true, "run the codec micro-benchmarks (generated against the library codec), about 10 s, for target (p10)")
	out := flag.String("out", "../docs", `directory for BENCHMARKS.md and benchmarks.svg; "" writes nothing (default "" with -short)`)
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var stress harness.Stress // the defaults
	if *short {
		stress.BulkAsks = 10
		stress.SlowFor = 300 * time.Millisecond
		stress.StreamBytes = 32 << 20
		if !set["rounds"] {
			*rounds = 2
		}
		if !set["benchtime"] {
			*benchtime = 5 * time.Millisecond
		}
		if !set["out"] {
			*out = ""
		}
	}
	sys, err := harness.SelectSystems(*systems)
	if err != nil {
		return err
	}
	ws, err := harness.SelectWorkloads(*workloads)
	if err != nil {
		return err
	}

	machine := harness.ThisMachine()
	machine.Command = command()
	start := time.Now()
	res, err := harness.Run(harness.Options{
		Systems:   sys,
		Cases:     harness.Cases(ws...),
		Rounds:    *rounds,
		Benchtime: *benchtime,
		Stress:    stress,
		Progress:  os.Stderr,
	})
	if err != nil {
		return err
	}
	if *codecs {
		fmt.Fprintln(os.Stderr, "codec micro-benchmarks (about 10 s)")
		res.Codecs = harness.MeasureCodecs()
	}
	fmt.Fprintf(os.Stderr, "done in %v\n", time.Since(start).Round(time.Millisecond))
	for _, s := range res.Systems {
		for _, c := range res.Cases {
			if x, _ := res.Get(s.Name(), c); x.Err != "" {
				fmt.Fprintf(os.Stderr, "failed (shown as such in the report): %s, %s: %s\n", s.Name(), c, x.Err)
			}
		}
	}
	region := harness.Markdown(res, machine)
	fmt.Print(region)
	if *out == "" {
		return nil
	}
	return write(*out, region, harness.SVG(res, machine))
}

// write updates <dir>/BENCHMARKS.md's region and writes the chart. It
// checks the markdown file's markers before writing anything.
func write(dir, region string, svg []byte) error {
	md := filepath.Join(dir, "BENCHMARKS.md")
	if doc, err := os.ReadFile(md); err == nil {
		if _, err := harness.ReplaceRegion(doc, region); err != nil {
			return fmt.Errorf("%s: %w (nothing written)", md, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	chart := filepath.Join(dir, harness.ChartFile)
	if err := os.WriteFile(chart, svg, 0o644); err != nil {
		return err
	}
	if err := harness.WriteRegion(md, region); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s and %s\n", md, chart)
	return nil
}

// names lists the systems' names, for the usage message.
func names() string {
	var ns []string
	for _, s := range harness.Systems() {
		ns = append(ns, s.Name())
	}
	return strings.Join(ns, ", ")
}

// workloadNames lists the workloads' names, for the usage message.
func workloadNames() string {
	var ns []string
	for _, w := range harness.Workloads() {
		ns = append(ns, w.String())
	}
	return strings.Join(ns, ", ")
}

// command is the command line that reproduces this run, from the
// repository root.
func command() string {
	parts := []string{"go -C bench run ./cmd/report"}
	for _, a := range os.Args[1:] {
		if strings.ContainsAny(a, " \t\"'$\\") {
			a = fmt.Sprintf("%q", a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
