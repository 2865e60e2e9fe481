package codectest

import (
	"bytes"
	"testing"
)

// BenchmarkCodec encodes and decodes messages with the generated codec
// and with the library's (reflection), as core does: encode appends to a
// reused buffer; decode makes a new value.
//
//	go test -run '^$' -bench Codec -benchmem ./internal/codectest
func BenchmarkCodec(b *testing.B) {
	launch := sampleLaunch(b)
	flat := Flat{ID: 7, Name: "worker-7", Data: make([]byte, 64), OK: true, Score: 0.5, Count: 3}
	for _, m := range []struct {
		name  string
		v     appender
		fresh func() decoder
	}{
		{"LaunchTask", launch, func() decoder { return new(LaunchTask) }},
		{"Flat", flat, func() decoder { return new(Flat) }},
	} {
		data := mustAppend(b, m.v)
		b.Run(m.name+"/generated/encode", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			buf := make([]byte, 0, len(data))
			for b.Loop() {
				buf, _ = m.v.AppendRPC(buf[:0])
			}
		})
		b.Run(m.name+"/generated/decode", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if !m.fresh().DecodeRPC(data) {
					b.Fatal("DecodeRPC refused AppendRPC's output")
				}
			}
		})
		b.Run(m.name+"/library/encode", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			em, err := encOpts.UserBufferEncMode()
			if err != nil {
				b.Fatal(err)
			}
			var out bytes.Buffer
			for b.Loop() {
				out.Reset()
				if err := em.MarshalToBuffer(m.v, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(m.name+"/library/decode", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := decMode.Unmarshal(data, m.fresh()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// decoder is what rpcgen generates on a pointer to a message type.
type decoder interface{ DecodeRPC([]byte) bool }
