package quic

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/rpcenv/rpcenv/core"
)

// FuzzStreamFrames feeds arbitrary stream bytes to readFrame, as a
// stream reader does, with a small limit: it must never panic, never
// return a frame over the limit or longer than the bytes given, and
// must end every input with io.EOF (clean end), io.ErrUnexpectedEOF
// (truncated) or ErrMessageTooLarge.
func FuzzStreamFrames(f *testing.F) {
	frame := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
			b = append(b, p...)
		}
		return b
	}
	f.Add(frame([]byte("hello")), 64)
	f.Add(frame([]byte("a"), []byte("bc"), nil), 64)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1}, 1<<20)
	f.Add([]byte{0, 0, 0, 100, 1, 2, 3}, 1000)
	f.Add(frame(bytes.Repeat([]byte{7}, 10000)), 20000)
	f.Add([]byte{0, 0}, 10)
	f.Fuzz(func(t *testing.T, data []byte, limit int) {
		if limit < 0 || limit > 1<<20 {
			limit = 1 << 20
		}
		r := bytes.NewReader(data)
		var hdr [4]byte
		total := 0
		for {
			fr, err := readFrame(r, limit, &hdr)
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.Is(err, core.ErrMessageTooLarge) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(fr) > limit {
				t.Fatalf("frame of %d bytes over the limit %d", len(fr), limit)
			}
			if total += 4 + len(fr); total > len(data) {
				t.Fatalf("frames of %d bytes from %d bytes of input", total, len(data))
			}
		}
	})
}
