package harness

import (
	"errors"
	"testing"
)

// The benchmarks run the report's systems under testing.B, one case at a
// time, so that any case can be profiled:
//
//	go -C bench test ./harness -run '^$' -bench 'Ask/rpcenv-tcp/64B' -cpuprofile cpu.out
//
// Names are Benchmark<Workload>/<BenchName>/<SizeName>. Allocations count
// the client and the server together.

// BenchmarkAsk is sequential asks from one caller.
func BenchmarkAsk(b *testing.B) { benchAsks(b, 1) }

// BenchmarkAsk32 is asks from 32 concurrent callers over one connection.
func BenchmarkAsk32(b *testing.B) { benchAsks(b, 32) }

func benchAsks(b *testing.B, callers int) {
	for _, sys := range Systems() {
		for _, size := range Payloads {
			b.Run(BenchName(sys)+"/"+SizeName(size), func(b *testing.B) {
				b.ReportAllocs()
				a, err := sys.NewAsker(callers)
				if errors.Is(err, errors.ErrUnsupported) {
					b.Skip(err)
				}
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() {
					if err := a.Close(); err != nil {
						b.Error(err)
					}
				})
				req := payload(size)
				if err := warmUp(a.Callers(), req); err != nil {
					b.Fatal(err)
				}
				run := newAskRun(a.Callers(), req, b.N, nil)
				b.ResetTimer()
				if _, err := run.run(); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// BenchmarkOneWay is one-way messages from one sender, timed until the
// receiver has counted b.N.
func BenchmarkOneWay(b *testing.B) {
	for _, sys := range Systems() {
		for _, size := range Payloads {
			b.Run(BenchName(sys)+"/"+SizeName(size), func(b *testing.B) {
				b.ReportAllocs()
				s, err := sys.NewSender()
				if errors.Is(err, errors.ErrUnsupported) {
					b.Skip(err)
				}
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() {
					if err := s.Close(); err != nil {
						b.Error(err)
					}
				})
				msg := payload(size)
				if err := s.SendN(msg, warmMessages); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				if err := s.SendN(msg, b.N); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// BenchmarkStream is bulk data through one stream: each operation is one
// write of StreamChunk bytes, and the b.N writes go through one stream,
// timed until the server has answered with the count. MB/s is the rate.
func BenchmarkStream(b *testing.B) {
	for _, sys := range Systems() {
		b.Run(BenchName(sys)+"/"+SizeName(StreamChunk), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(StreamChunk)
			st, err := sys.NewStreamer()
			if errors.Is(err, errors.ErrUnsupported) {
				b.Skip(err)
			}
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				if err := st.Close(); err != nil {
					b.Error(err)
				}
			})
			chunk := payload(StreamChunk)
			if err := streamChecked(st, chunk, streamWarm); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			if err := streamChecked(st, chunk, int64(b.N)*StreamChunk); err != nil {
				b.Fatal(err)
			}
		})
	}
}
