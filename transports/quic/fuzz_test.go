package quic_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/quic"
)

const fuzzMaxFrame = 1024

// FuzzStreamFrames writes arbitrary bytes, after the preamble, on the
// stream of a raw QUIC connection and reads them back as frames through
// the transport. ReadFrame must not panic, must return exactly the frames
// a plain reading of the bytes finds (each non-empty and at most
// MaxFrameSize), and must stop with the right error: io.EOF at a clean
// end, ErrMessageTooLarge for a frame over the limit, ErrProtocol for an
// empty frame, another error for a truncated one. (internal/framing
// fuzzes the reader itself, much faster.)
func FuzzStreamFrames(f *testing.F) {
	for _, seed := range [][]byte{
		nil,
		appendFrame(nil, []byte("x")),
		appendFrame(appendFrame(nil, []byte("first")), bytes.Repeat([]byte{7}, fuzzMaxFrame)),
		appendFrame(nil, bytes.Repeat([]byte{1}, fuzzMaxFrame+1)),
		{0xff, 0xff, 0xff, 0xff},
		{0, 0, 0, 0},
		{0, 0},
		{0, 0, 0, 9, 'p', 'a', 'r'},
	} {
		f.Add(seed)
	}
	l, err := quic.New(quic.Options{Logger: discardLog}).Listen("127.0.0.1:0", core.ConnOptions{MaxFrameSize: fuzzMaxFrame})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { l.Close() })
	f.Fuzz(func(t *testing.T, data []byte) {
		qc := rawConn(t, l.Addr())
		s := rawStream(t, qc, data)
		s.Close() // FIN
		c := accept(t, l)
		want, wantErr := splitFrames(data)
		for i := 0; ; i++ {
			got, err := c.ReadFrame()
			if err != nil {
				if i < len(want) {
					t.Fatalf("frame %d: %v; want %d bytes", i, err, len(want[i]))
				}
				switch {
				case wantErr == nil && err != io.EOF:
					t.Fatalf("after the last frame: %v; want io.EOF", err)
				case wantErr != nil && !errors.Is(err, wantErr):
					t.Fatalf("after %d frames: %v; want %v", i, err, wantErr)
				}
				break
			}
			if i >= len(want) || !bytes.Equal(got, want[i]) {
				t.Fatalf("frame %d = %q; want the %d frames %q", i, got, len(want), want)
			}
		}
	})
}

func appendFrame(b, body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(body))), body...)
}

// splitFrames is the reference reading of data: the frames it holds, and
// why reading stops (nil at a clean end).
func splitFrames(data []byte) ([][]byte, error) {
	var frames [][]byte
	for len(data) > 0 {
		if len(data) < 4 {
			return frames, io.ErrUnexpectedEOF
		}
		n := binary.BigEndian.Uint32(data)
		switch {
		case n > fuzzMaxFrame:
			return frames, core.ErrMessageTooLarge
		case n == 0:
			return frames, core.ErrProtocol
		case uint64(len(data)-4) < uint64(n):
			return frames, io.ErrUnexpectedEOF
		}
		frames = append(frames, data[4:4+n])
		data = data[4+n:]
	}
	return frames, nil
}
