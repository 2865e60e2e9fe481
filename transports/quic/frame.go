package quic

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/rpcenv/rpcenv/core"
)

// firstChunk is the most readFrame allocates before bytes arrive; larger
// frames grow their buffer by doubling as their bytes come in.
const firstChunk = 4 << 10

// readFrame reads one frame (a 4-byte big-endian length and that many
// bytes) from r into a new slice. It returns io.EOF, and no frame, when r
// ends before the first byte of a frame; a frame of length 0 as (nil,
// nil); an error wrapping core.ErrMessageTooLarge, before reading the
// body, when the length exceeds limit; io.ErrUnexpectedEOF when r ends
// inside a frame. hdr is scratch space, so that it does not escape per
// call.
func readFrame(r io.Reader, limit int, hdr *[4]byte) ([]byte, error) {
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err // io.EOF before a byte, io.ErrUnexpectedEOF inside
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if uint64(n) > uint64(limit) {
		return nil, fmt.Errorf("frame of %d bytes: %w (limit %d)", n, core.ErrMessageTooLarge, limit)
	}
	if n == 0 {
		return nil, nil
	}
	buf := make([]byte, 0, min(n, firstChunk))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(n, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		m := cap(buf)
		if _, err := io.ReadFull(r, buf[len(buf):m]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		buf = buf[:m]
	}
	return buf, nil
}
