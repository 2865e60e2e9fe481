package codectest

import "testing"

// BenchmarkCodec runs Benchmarks:
//
//	go test -run '^$' -bench Codec -benchmem ./internal/codectest
func BenchmarkCodec(b *testing.B) {
	for _, bm := range Benchmarks() {
		b.Run(bm.Name(), bm.F)
	}
}
