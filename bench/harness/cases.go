package harness

import (
	"fmt"
	"slices"
)

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
	// BulkAsk is one caller making sequential asks, each one timed, while
	// another goroutine sends large one-way messages (Stress.BulkSize)
	// over the same connection (stress.go).
	BulkAsk
	// SlowHeap is one sender sending one-way messages as fast as it can,
	// for a fixed time, to a receiver that takes SlowDelay over each,
	// with the heap sampled meanwhile (stress.go).
	SlowHeap
	// Stream is one client moving a fixed amount of bytes
	// (Stress.StreamBytes) to the server through one stream, timed from
	// the open to the server's answer, with the heap sampled meanwhile
	// (stream.go).
	Stream
)

// Workloads returns every workload, in report order.
func Workloads() []Workload {
	return []Workload{Latency, Throughput, OneWay, BulkAsk, SlowHeap, Stream}
}

// String names the workload in case names and in -workloads lists.
func (w Workload) String() string {
	switch w {
	case Latency:
		return "latency"
	case Throughput:
		return "throughput"
	case OneWay:
		return "oneway"
	case BulkAsk:
		return "bulk-ask"
	case SlowHeap:
		return "slow-heap"
	case Stream:
		return "stream"
	default:
		return fmt.Sprintf("Workload(%d)", int(w))
	}
}

// stress says whether w is one of the workloads that run for a fixed
// amount of work rather than a calibrated one, and whose failures are
// results rather than the end of Run: the stress workloads, and Stream.
func (w Workload) stress() bool { return w == BulkAsk || w == SlowHeap || w == Stream }

// SelectWorkloads returns the workloads named in list, a comma-separated
// list of names, in report order. An empty list selects every workload;
// an unknown name is an error that lists the known ones.
func SelectWorkloads(list string) ([]Workload, error) {
	return selectNamed("workload", list, Workloads(), func(w Workload) []string { return []string{w.String()} })
}

// A Case is one workload with one payload size.
type Case struct {
	Workload Workload
	Payload  int // bytes in each request (and reply), one-way message, or write into a stream
	Callers  int // concurrent callers: 1 except for Throughput
}

// String names the case: "latency/64B", "throughput-32/1KiB",
// "oneway/64KiB", "bulk-ask/64B".
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

// BulkAskPayload and SlowHeapPayload are the payload sizes of the
// stress cases: the small asks made during bulk sends, and the one-way
// messages sent to the slow receiver. StreamChunk is the payload of the
// stream case: the size of each write into the stream, and of each
// message of gRPC's client stream.
const (
	BulkAskPayload  = 64
	SlowHeapPayload = 1 << 10
	StreamChunk     = 64 << 10
)

// Cases returns the standard cases of the given workloads, or of every
// workload if none is given: for each payload size, latency, throughput
// with each number of callers, and one-way; then bulk-ask and slow-heap,
// with one payload size each.
func Cases(ws ...Workload) []Case {
	if len(ws) == 0 {
		ws = Workloads()
	}
	var cs []Case
	for _, p := range Payloads {
		if slices.Contains(ws, Latency) {
			cs = append(cs, Case{Latency, p, 1})
		}
		if slices.Contains(ws, Throughput) {
			for _, c := range ThroughputCallers {
				cs = append(cs, Case{Throughput, p, c})
			}
		}
		if slices.Contains(ws, OneWay) {
			cs = append(cs, Case{OneWay, p, 1})
		}
	}
	if slices.Contains(ws, BulkAsk) {
		cs = append(cs, Case{BulkAsk, BulkAskPayload, 1})
	}
	if slices.Contains(ws, SlowHeap) {
		cs = append(cs, Case{SlowHeap, SlowHeapPayload, 1})
	}
	if slices.Contains(ws, Stream) {
		cs = append(cs, Case{Stream, StreamChunk, 1})
	}
	return cs
}

// SizeName names a payload size without spaces, for case and benchmark
// names: "64B", "1KiB", "64KiB", "1GiB".
func SizeName(n int) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
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
