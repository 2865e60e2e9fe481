package codectest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/rpcenv/rpcenv/core"
)

// The library's modes with core's options (core/codec.go): the
// reflection path the generated codecs are measured and checked against.
var (
	encOpts = cbor.EncOptions{Time: cbor.TimeRFC3339Nano, IndefLength: cbor.IndefLengthForbidden, Sort: cbor.SortBytewiseLexical}
	encMode = mustMode(encOpts.UserBufferEncMode())
	decMode = mustMode(cbor.DecOptions{MaxNestedLevels: 32, MaxArrayElements: 1 << 20, MaxMapPairs: 1 << 20, DupMapKey: cbor.DupMapKeyEnforcedAPF, IndefLength: cbor.IndefLengthForbidden}.DecMode())
)

func mustMode[M any](m M, err error) M {
	if err != nil {
		panic(err)
	}
	return m
}

// wireRef is a ref as a remote env sends it: made by decoding its wire
// form, tag 62064 around [name, address, env id, env name].
func wireRef(name, addr string) *core.Ref {
	b, err := encMode.Marshal(cbor.Tag{Number: 62064, Content: []string{name, addr, "0123456789abcdef", "driver"}})
	if err != nil {
		panic(err)
	}
	r := new(core.Ref)
	if err := r.UnmarshalCBOR(b); err != nil {
		panic(err)
	}
	return r
}

// Launch is the nested message of the codec benchmark: a task launch
// with four maps, two slices, a 2 KiB payload, a nested pointer, a ref
// and a time (2.5 KiB encoded).
func Launch() LaunchTask {
	return LaunchTask{
		Task: TaskDescription{
			TaskID: 1 << 40, Attempt: 2, ExecutorID: "exec-17", Name: "result task 3.0 in stage 7",
			PartitionID: 3, CPUs: 4,
			Files:      map[string]int64{"lookup.csv": 1733000000, "model.bin": 1733000100},
			Jars:       map[string]int64{"app.jar": 1733000200},
			Properties: map[string]string{"spark.job.id": "7", "spark.scheduler.pool": "default", "spark.job.description": "nightly aggregate"},
			Resources:  map[string][]string{"gpu": {"0", "1"}},
			Locality:   []int64{3, 9, 27},
			Payload:    bytes.Repeat([]byte{0xab}, 2048),
			Retry:      &RetryPolicy{MaxAttempts: 4, Backoff: 250 * time.Millisecond, Blacklist: []string{"exec-3"}},
		},
		Executor: wireRef("executor", "tcp://10.0.0.7:7078"),
		Sent:     time.Date(2026, 12, 1, 2, 3, 4, 567891000, time.UTC),
	}
}

// FlatSample is the flat message of the codec benchmark.
func FlatSample() Flat {
	return Flat{ID: 7, Name: "worker-7", Data: make([]byte, 64), OK: true, Score: 0.5, Count: 3}
}

// A Benchmark is one codec benchmark: Message is "LaunchTask" or
// "Flat", Codec "generated" or "library", Op "encode" or "decode".
type Benchmark struct {
	Message, Codec, Op string
	F                  func(*testing.B)
}

// Name is "Message/Codec/Op".
func (bm Benchmark) Name() string { return bm.Message + "/" + bm.Codec + "/" + bm.Op }

// Benchmarks returns the codec benchmarks: each message encoded into a
// reused buffer and decoded into a new value, as core does, with the
// generated codec and with the library's. The bench report runs them too.
func Benchmarks() []Benchmark {
	type generated interface {
		AppendRPC([]byte) ([]byte, error)
	}
	type decoder interface{ DecodeRPC([]byte) bool }
	// The generated methods are asserted at run time, not named here:
	// rpcgen type-checks this package without them when it regenerates
	// rpcgen_gen.go.
	var out []Benchmark
	for _, m := range []struct {
		name  string
		v     generated
		fresh func() decoder
	}{
		{"LaunchTask", any(Launch()).(generated), func() decoder { return any(new(LaunchTask)).(decoder) }},
		{"Flat", any(FlatSample()).(generated), func() decoder { return any(new(Flat)).(decoder) }},
	} {
		data, err := m.v.AppendRPC(nil)
		if err != nil {
			panic(fmt.Sprintf("codectest: %s: %v", m.name, err))
		}
		out = append(out,
			Benchmark{m.name, "generated", "encode", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				buf := make([]byte, 0, len(data))
				for b.Loop() {
					buf, _ = m.v.AppendRPC(buf[:0])
				}
			}},
			Benchmark{m.name, "generated", "decode", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					if !m.fresh().DecodeRPC(data) {
						b.Fatal("DecodeRPC refused AppendRPC's output")
					}
				}
			}},
			Benchmark{m.name, "library", "encode", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				var out bytes.Buffer
				for b.Loop() {
					out.Reset()
					if err := encMode.MarshalToBuffer(m.v, &out); err != nil {
						b.Fatal(err)
					}
				}
			}},
			Benchmark{m.name, "library", "decode", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					if err := decMode.Unmarshal(data, m.fresh()); err != nil {
						b.Fatal(err)
					}
				}
			}},
		)
	}
	return out
}
