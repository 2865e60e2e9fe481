package framing

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/rpcenv/rpcenv/core"
)

// splitFrames is the reference reading of data with limit: the frames it
// holds, and why reading stops (nil at a clean end).
func splitFrames(data []byte, limit int) ([][]byte, error) {
	var frames [][]byte
	for len(data) > 0 {
		if len(data) < HeaderSize {
			return frames, io.ErrUnexpectedEOF
		}
		n := uint64(binary.BigEndian.Uint32(data))
		switch {
		case n == 0:
			return frames, core.ErrProtocol
		case limit > 0 && n > uint64(limit):
			return frames, core.ErrMessageTooLarge
		case uint64(len(data)-HeaderSize) < n:
			return frames, io.ErrUnexpectedEOF
		}
		frames = append(frames, data[HeaderSize:HeaderSize+n])
		data = data[HeaderSize+n:]
	}
	return frames, nil
}

// FuzzReader reads arbitrary bytes as frames, through read buffers of
// several sizes and in short reads. ReadFrame must not panic, must return
// exactly the frames a plain reading of the bytes finds, must stop with
// the error that reading finds, and must never hold a frame buffer larger
// than the limit, nor much larger than the bytes it was given.
func FuzzReader(f *testing.F) {
	for _, seed := range [][]byte{
		nil,
		wire([]byte("x")),
		wire([]byte("first"), bytes.Repeat([]byte{7}, 300)),
		{0xff, 0xff, 0xff, 0xff},
		{0, 0, 0, 0},
		{0, 0},
		{0, 0, 0, 9, 'p', 'a', 'r'},
		wire(bytes.Repeat([]byte{1}, 5000), []byte("after")),
		[]byte("GET / HTTP/1.1\r\n\r\n"),
	} {
		f.Add(seed, uint16(1024), uint8(16), false)
		f.Add(seed, uint16(0), uint8(0), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, limit uint16, size uint8, short bool) {
		want, wantErr := splitFrames(data, int(limit))
		var src io.Reader = bytes.NewReader(data)
		if short {
			src = iotest.OneByteReader(src)
		}
		r := NewReader(src, 16+int(size), int(limit))
		for i := 0; ; i++ {
			got, err := r.ReadFrame()
			if limit > 0 && cap(r.buf) > int(limit) {
				t.Fatalf("a frame buffer of %d bytes with a limit of %d", cap(r.buf), limit)
			}
			if c := cap(r.buf); c > max(growStep, 2*len(data)) {
				t.Fatalf("a frame buffer of %d bytes for %d bytes of input", c, len(data))
			}
			if err != nil {
				if i < len(want) {
					t.Fatalf("frame %d: %v; want %d bytes", i, err, len(want[i]))
				}
				if wantErr == nil && err != io.EOF {
					t.Fatalf("after the last frame: %v; want io.EOF", err)
				}
				if wantErr != nil && !errors.Is(err, wantErr) {
					t.Fatalf("after %d frames: %v; want %v", i, err, wantErr)
				}
				return
			}
			if i >= len(want) || !bytes.Equal(got, want[i]) {
				t.Fatalf("frame %d = %q; want the %d frames %q", i, got, len(want), want)
			}
		}
	})
}
