package harness

import "fmt"

// Workload is what a case measures.
type Workload int

const (
	// Latency is one caller making sequential asks, each one timed.
	Latency Workload = iota
	// Throughput is concurrent callers sharing one connection, with the
	// asks of a run split among them.
	Throughput
	// OneWay is one sender sending messages that need no reply, timed
	// until the receiver has counted them all.
	OneWay
)

// String names the workload in case names.
func (w Workload) String() string {
	switch w {
	case Latency:
		return "latency"
	case Throughput:
		return "throughput"
	default:
		return "oneway"
	}
}

// A Case is one workload with one payload size.
type Case struct {
	Workload Workload
	Payload  int // bytes in each request (and reply)
	Callers  int // concurrent callers: 1 except for Throughput
}

// String names the case: "latency/64B", "throughput-32/1KiB",
// "oneway/64KiB".
func (c Case) String() string {
	w := c.Workload.String()
	if c.Workload == Throughput {
		w = fmt.Sprintf("%s-%d", w, c.Callers)
	}
	return w + "/" + SizeName(c.Payload)
}

// Payloads are the payload sizes of the standard cases.
var Payloads = []int{64, 1 << 10, 64 << 10}

// ThroughputCallers are the numbers of concurrent callers of the
// standard throughput cases.
var ThroughputCallers = []int{1, 8, 32, 256}

// Cases returns the standard cases: for each payload size, latency,
// throughput with each number of callers, and one-way.
func Cases() []Case {
	var cs []Case
	for _, p := range Payloads {
		cs = append(cs, Case{Latency, p, 1})
		for _, c := range ThroughputCallers {
			cs = append(cs, Case{Throughput, p, c})
		}
		cs = append(cs, Case{OneWay, p, 1})
	}
	return cs
}

// SizeName names a payload size without spaces, for case and benchmark
// names: "64B", "1KiB", "64KiB".
func SizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	default:
		return fmt.Sprintf("%dB", n)
	}
}

// payload returns n bytes of a pattern that does not repeat with any
// short period, so that a reply with bytes moved or dropped is caught.
func payload(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13 // xorshift32
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}
