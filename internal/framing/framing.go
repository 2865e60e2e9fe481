// Package framing is the wire format of rpcenv's stream transports (tcp,
// quic): a connection's bytes are a sequence of frames, each a 4-byte
// big-endian length then that many bytes, and a length of 0 is invalid.
// It owns reading frames from a byte stream ([Reader]: a bounded, reused
// buffer, the size limit checked before anything is allocated) and
// writing batches of frames in as few calls as the writer allows
// ([Writer]). It knows nothing of connections, deadlines or closing: the
// transports map its errors and their own to the core.Conn contract.
package framing

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"

	"github.com/rpcenv/rpcenv/core"
)

// HeaderSize is the size of a frame's length prefix.
const HeaderSize = 4

// MaxFrame is the largest frame the 4-byte length can announce.
const MaxFrame = math.MaxUint32

const (
	// growStep is the first allocation of a frame too large for the
	// read buffer, and the least a frame buffer grows by: a peer must
	// send about as many bytes as the reader holds.
	growStep = 64 << 10
	// keepCap is the largest frame buffer kept between frames once a
	// smaller frame arrives: one large frame does not pin its memory.
	keepCap = 128 << 10
)

// Reader reads frames from a byte stream. It is not safe for concurrent
// use: one goroutine reads at a time.
type Reader struct {
	br    *bufio.Reader
	limit int
	buf   []byte // the frame buffer for frames larger than br's buffer, reused
}

// NewReader returns a Reader of r with a read buffer of size bytes (at
// least 16) that refuses frames over limit bytes (0: no limit but the
// 4 GiB the length can announce).
func NewReader(r io.Reader, size, limit int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, size), limit: limit}
}

// ReadFrame returns the next frame. The slice is valid until the next
// call; it may point into the read buffer.
//
// Errors: io.EOF (unwrapped) when the stream ends cleanly before a frame;
// an error wrapping io.ErrUnexpectedEOF when it ends inside one; an error
// wrapping core.ErrMessageTooLarge, before the body is read or any
// memory is allocated for it, when the length is over the limit; an error
// wrapping core.ErrProtocol for a length of 0; any other error of the
// underlying reader as it is, so that the caller can tell its own close
// or deadline apart.
//
// Frames that fit in the read buffer are returned from it, with no copy.
// Larger ones are read into a buffer that grows as their bytes arrive
// (doubling from 64 KiB, never past the announced length), not as their
// length announces, and that is dropped after a frame over 128 KiB when
// a smaller one follows.
func (r *Reader) ReadFrame() ([]byte, error) {
	hdr, err := r.br.Peek(HeaderSize)
	if err != nil {
		switch {
		case err == io.EOF && len(hdr) == 0:
			return nil, io.EOF
		case err == io.EOF:
			return nil, fmt.Errorf("the stream ends inside a frame's length (%d of %d bytes): %w", len(hdr), HeaderSize, io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	n := uint64(binary.BigEndian.Uint32(hdr))
	switch {
	case n == 0:
		return nil, fmt.Errorf("a frame of length 0: %w", core.ErrProtocol)
	case r.limit > 0 && n > uint64(r.limit):
		return nil, fmt.Errorf("a frame announces %d bytes, over the limit of %d: %w", n, r.limit, core.ErrMessageTooLarge)
	}
	size := int(n)
	if cap(r.buf) > keepCap && size <= keepCap {
		r.buf = nil
	}
	if total := HeaderSize + size; total <= r.br.Size() {
		p, err := r.br.Peek(total)
		if err != nil {
			return nil, torn(err, len(p)-HeaderSize, size)
		}
		r.br.Discard(total)
		return p[HeaderSize:total:total], nil // capped: an append by the caller copies
	}
	r.br.Discard(HeaderSize)
	buf := r.buf[:0]
	for len(buf) < size {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(size, max(2*cap(buf), growStep)))
			copy(grown, buf)
			buf = grown
		}
		k, err := io.ReadFull(r.br, buf[len(buf):min(size, cap(buf))])
		buf = buf[:len(buf)+k]
		if err != nil {
			r.buf = buf[:0]
			return nil, torn(err, len(buf), size)
		}
	}
	r.buf = buf[:0]
	return buf, nil
}

// torn is the error of a read that stopped after got of a frame's n bytes.
func torn(err error, got, n int) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("the stream ends after %d of a frame's %d bytes: %w", max(got, 0), n, io.ErrUnexpectedEOF)
	}
	return err
}

// Buffered returns the number of bytes received and not yet returned by
// ReadFrame.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// flushSize is how many bytes a Writer gathers before it writes them, for
// a writer without writev.
const flushSize = 64 << 10

// Writer writes batches of frames. It is not safe for concurrent use: one
// goroutine writes at a time. It keeps no reference to a frame after
// WriteFrames returns.
type Writer struct {
	w io.Writer
	// vectored: w does writev (a *net.TCPConn, a *net.UnixConn), so
	// frames go from the caller's memory with their headers in one
	// gather write. Otherwise (a tls.Conn, a QUIC stream), where each
	// slice would cost a call (a TLS record, a stream's lock and wake-up),
	// frames are copied into out and written 64 KiB at a time.
	vectored bool
	hdrs     []byte      // the headers of a batch (vectored)
	vec      net.Buffers // the slices of a batch, reused (vectored)
	iov      net.Buffers // vec as WriteTo consumes it; a field, so that it does not escape per call
	out      []byte      // gathered bytes: small frames with their headers (vectored), or everything (not)
}

// NewWriter returns a Writer to w.
func NewWriter(w io.Writer) *Writer {
	fw := &Writer{w: w}
	switch w.(type) {
	case *net.TCPConn, *net.UnixConn:
		fw.vectored = true
	}
	return fw
}

// WriteFrames writes frames, in order, each after its length. It checks
// every frame first, and writes nothing if one is empty (an error
// wrapping core.ErrProtocol) or longer than a length can say (an error
// wrapping core.ErrMessageTooLarge). Otherwise it returns the writer's
// error, if any: an unknown part of the batch may have been written.
//
// With writev it is one system call (more past 512 frames), and
// allocates nothing once its buffers have grown to the largest batch.
// Without, it makes one Write per 64 KiB.
func (w *Writer) WriteFrames(frames [][]byte) error {
	for i, f := range frames {
		switch {
		case len(f) == 0:
			return fmt.Errorf("frame %d of the batch is empty: %w", i, core.ErrProtocol)
		case uint64(len(f)) > MaxFrame:
			return fmt.Errorf("frame %d of the batch has %d bytes, more than a frame's length can say (%d): %w", i, len(f), uint64(MaxFrame), core.ErrMessageTooLarge)
		}
	}
	if w.vectored {
		return w.writev(frames)
	}
	return w.gather(frames)
}

// copyMax is the largest frame writev copies, with its header, into one
// run of the batch's buffer instead of giving it two slices of its own:
// for a small frame the copy costs less than the system call's work per
// slice.
const copyMax = 1 << 10

func (w *Writer) writev(frames [][]byte) error {
	hdrs, copied := 0, 0
	for _, f := range frames {
		if len(f) <= copyMax {
			copied += HeaderSize + len(f)
		} else {
			hdrs += HeaderSize
		}
	}
	if cap(w.hdrs) < hdrs {
		w.hdrs = make([]byte, hdrs)
	}
	if cap(w.out) < copied {
		w.out = make([]byte, 0, copied) // sized first: the runs below point into it
	}
	h, out, run := w.hdrs[:0], w.out[:0], 0
	vec := w.vec[:0]
	for _, f := range frames {
		if len(f) <= copyMax {
			out = binary.BigEndian.AppendUint32(out, uint32(len(f)))
			out = append(out, f...)
			continue
		}
		if len(out) > run {
			vec = append(vec, out[run:len(out):len(out)])
			run = len(out)
		}
		at := len(h)
		h = binary.BigEndian.AppendUint32(h, uint32(len(f)))
		vec = append(vec, h[at:at+HeaderSize:at+HeaderSize], f)
	}
	if len(out) > run {
		vec = append(vec, out[run:len(out):len(out)])
	}
	w.iov = vec
	_, err := w.iov.WriteTo(w.w)
	clear(vec) // no reference to the caller's frames stays behind
	w.vec, w.iov = vec[:0], nil
	if cap(w.out) > 1<<20 {
		w.out = nil // one large batch does not pin its copy
	}
	return err
}

func (w *Writer) gather(frames [][]byte) error {
	if w.out == nil {
		w.out = make([]byte, 0, flushSize)
	}
	out := w.out[:0]
	var hdr [HeaderSize]byte
	for _, f := range frames {
		binary.BigEndian.PutUint32(hdr[:], uint32(len(f)))
		for _, p := range [2][]byte{hdr[:], f} {
			for len(p) > 0 {
				k := min(len(p), flushSize-len(out))
				out = append(out, p[:k]...)
				p = p[k:]
				if len(out) == flushSize {
					if _, err := w.w.Write(out); err != nil {
						return err
					}
					out = out[:0]
				}
			}
		}
	}
	if len(out) > 0 {
		if _, err := w.w.Write(out); err != nil {
			return err
		}
	}
	return nil
}
