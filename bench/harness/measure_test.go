package harness

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{7}, 7},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{5, 5, 1, 9, 100}, 5},
	} {
		in := append([]float64(nil), tc.in...)
		if got := median(in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if fmt.Sprint(in) != fmt.Sprint(tc.in) {
			t.Errorf("median(%v) reordered its input to %v", tc.in, in)
		}
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	hundred := make([]time.Duration, 100) // 1..100
	for i := range hundred {
		hundred[i] = time.Duration(i + 1)
	}
	for _, tc := range []struct {
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{nil, 50, 0},
		{[]time.Duration{42}, 50, 42},
		{[]time.Duration{42}, 99, 42},
		{[]time.Duration{1, 2, 3, 4}, 50, 2},
		{[]time.Duration{1, 2, 3, 4, 5}, 50, 3},
		{[]time.Duration{1, 2, 3, 4}, 99, 4},
		{hundred, 50, 50},
		{hundred, 99, 99},
		{hundred, 100, 100},
		{hundred, 1, 1},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("percentile(%d values, %v) = %v, want %v", len(tc.sorted), tc.p, got, tc.want)
		}
	}
}

func TestCalibrateScalesToBenchtime(t *testing.T) {
	// A fake run of 1µs per operation: a run of n takes n µs.
	var runs []int
	n, err := calibrate(8, 100*time.Millisecond, func(n int) (time.Duration, error) {
		runs = append(runs, n)
		return time.Duration(n) * time.Microsecond, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 100_000 {
		t.Errorf("n = %d, want 100000 (runs %v)", n, runs)
	}
	if runs[0] != 8 || runs[len(runs)-1] != runs[len(runs)-2] {
		t.Errorf("runs %v: want a start at 8 and the last count run twice", runs)
	}
	for i := 1; i < len(runs)-1; i++ {
		if runs[i] < 2*runs[i-1] || runs[i] > 100*runs[i-1] {
			t.Errorf("runs grew from %d to %d", runs[i-1], runs[i])
		}
	}
}

func TestCalibrateIgnoresASlowFirstRun(t *testing.T) {
	// 1µs per operation, but the first run of 800 stalls for 50ms: the
	// estimate comes from the run that repeats it.
	stalled := false
	n, err := calibrate(8, 100*time.Millisecond, func(n int) (time.Duration, error) {
		d := time.Duration(n) * time.Microsecond
		if n == 800 && !stalled {
			stalled = true
			d += 50 * time.Millisecond
		}
		return d, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 100_000 {
		t.Errorf("n = %d, want 100000", n)
	}
}

// TestRunFillsEveryResult runs the engine end to end on two real
// systems, one round, tiny benchtime, every workload but the stress ones
// (stress_test.go).
func TestRunFillsEveryResult(t *testing.T) {
	systems, err := SelectSystems("chan,raw-tcp")
	if err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	cases := Cases(Latency, Throughput, OneWay)
	res, err := Run(Options{Systems: systems, Cases: cases, Rounds: 1, Benchtime: time.Millisecond, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	for _, sys := range systems {
		for _, c := range cases {
			x, ok := res.Get(sys.Name(), c)
			switch {
			case !ok:
				t.Errorf("%s, %s: no result", sys.Name(), c)
			case x.NA:
				t.Errorf("%s, %s: n/a", sys.Name(), c)
			case x.N < 1 || x.Rate <= 0 || x.AllocsPerOp < 0 || x.BytesPerOp < 0:
				t.Errorf("%s, %s: %+v", sys.Name(), c, x)
			case c.Workload == Latency && (x.P50 <= 0 || x.P99 < x.P50 || x.Mean <= 0):
				t.Errorf("%s, %s: latencies %+v", sys.Name(), c, x)
			}
			if !strings.Contains(progress.String(), c.String()) {
				t.Errorf("no progress line for %s", c)
			}
		}
	}
}

func TestRunRecordsUnsupportedWorkloadsAsNA(t *testing.T) {
	systems, err := SelectSystems("net/rpc")
	if err != nil {
		t.Fatal(err)
	}
	c := Case{OneWay, 64, 1}
	res, err := Run(Options{Systems: systems, Cases: []Case{c}, Rounds: 2, Benchtime: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if x, ok := res.Get("net/rpc", c); !ok || !x.NA {
		t.Errorf("net/rpc one-way: %+v, %v; want n/a", x, ok)
	}
}

// wrongEcho is a system whose server flips one byte of every reply.
type wrongEcho struct{ chanSystem }

func (wrongEcho) Name() string { return "wrong-echo" }

func (w wrongEcho) NewAsker(callers int) (Asker, error) {
	a, err := w.chanSystem.NewAsker(callers)
	if err != nil {
		return nil, err
	}
	return flipAsker{a}, nil
}

type flipAsker struct{ Asker }

func (f flipAsker) Callers() []AskFunc {
	var out []AskFunc
	for _, call := range f.Asker.Callers() {
		out = append(out, func(req []byte) ([]byte, error) {
			reply, err := call(req)
			flipped := append([]byte(nil), reply...)
			flipped[len(flipped)/2] ^= 1
			return flipped, err
		})
	}
	return out
}

func TestRunFailsOnAWrongEchoNamingSystemAndCase(t *testing.T) {
	c := Case{Throughput, 1 << 10, 8}
	_, err := Run(Options{Systems: []System{wrongEcho{}}, Cases: []Case{c}, Rounds: 1, Benchtime: time.Millisecond})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"wrong-echo", c.String(), "byte 512"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestSelectSystems(t *testing.T) {
	got, err := SelectSystems(" net-rpc, rpcenv-tcp ")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name() != "rpcenv-tcp" || got[1].Name() != "net/rpc" {
		t.Errorf("got %v", got)
	}
	if _, err := SelectSystems("rpcenv-tcp,nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown system: error %v", err)
	}
	if all, err := SelectSystems(""); err != nil || len(all) != len(Systems()) {
		t.Errorf("empty list: %d systems, %v", len(all), err)
	}
}

func TestSelectWorkloadsAndTheirCases(t *testing.T) {
	ws, err := SelectWorkloads(" stream, slow-heap, latency ")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ws) != "[latency slow-heap stream]" {
		t.Errorf("got %v, want report order", ws)
	}
	if got, want := fmt.Sprint(Cases(ws...)), "[latency/64B latency/1KiB latency/64KiB slow-heap/1KiB stream/64KiB]"; got != want {
		t.Errorf("cases %s, want %s", got, want)
	}
	if _, err := SelectWorkloads("latency,nope"); err == nil || !strings.Contains(err.Error(), "nope") || !strings.Contains(err.Error(), "bulk-ask") {
		t.Errorf("unknown workload: error %v", err)
	}
	if all, err := SelectWorkloads(""); err != nil || len(all) != len(Workloads()) {
		t.Errorf("empty list: %v, %v", all, err)
	}
	if n := len(Cases()); n != len(Cases(Workloads()...)) || n != len(Payloads)*(2+len(ThroughputCallers))+3 {
		t.Errorf("%d cases in all", n)
	}
}
