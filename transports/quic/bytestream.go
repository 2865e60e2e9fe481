package quic

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/rpcenv/rpcenv/core"
)

// Byte streams: each rpcenv stream is a QUIC stream of its own
// (core.StreamConn), opened by the side that opened the rpcenv stream and
// labeled with its 8-byte ID (big-endian) before any data.

var _ core.StreamConn = (*conn)(nil)

// OpenStream opens a QUIC stream and writes its label, id. It waits while
// the peer's stream limit is reached, until ctx is done.
func (c *conn) OpenStream(ctx context.Context, id uint64) (core.ByteStream, error) {
	if c.closed.Load() {
		return nil, c.closedErr("open a stream to")
	}
	s, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("quic: open a stream to %s: %w", c.remote, c.cause(err))
	}
	var label [8]byte
	binary.BigEndian.PutUint64(label[:], id)
	if d, ok := ctx.Deadline(); ok {
		s.SetWriteDeadline(d)
	}
	_, err = s.Write(label[:])
	s.SetWriteDeadline(time.Time{})
	if err != nil {
		abortStream(s, codeStreamAbort)
		return nil, fmt.Errorf("quic: open a stream to %s: %w", c.remote, c.cause(err))
	}
	return byteStream{s}, nil
}

// codeStreamAbort is the code with which the transport aborts a byte
// stream it could not set up; it is the env's own code for an aborted
// stream (docs/PROTOCOL.md, "Streams on QUIC").
const codeStreamAbort = 2

// AcceptStream returns the next QUIC stream the peer opened, once its
// label has arrived. A stream whose label does not come within
// Options.HandshakeTimeout is aborted and skipped; so is one that ends
// before it.
func (c *conn) AcceptStream() (uint64, core.ByteStream, error) {
	for {
		s, err := c.qc.AcceptStream(context.Background()) // ends when the connection closes
		if err != nil {
			return 0, nil, fmt.Errorf("quic: accept a stream from %s: %w (%w)", c.remote, net.ErrClosed, err)
		}
		s.SetReadDeadline(time.Now().Add(c.labelWait))
		var label [8]byte
		_, err = io.ReadFull(s, label[:])
		s.SetReadDeadline(time.Time{})
		if err != nil {
			abortStream(s, codeStreamAbort)
			continue
		}
		return binary.BigEndian.Uint64(label[:]), byteStream{s}, nil
	}
}

func abortStream(s *quicgo.Stream, code quicgo.StreamErrorCode) {
	s.CancelWrite(code)
	s.CancelRead(code)
}

// byteStream is a QUIC stream as a core.ByteStream: the peer's codes
// come out as *core.ByteStreamError.
type byteStream struct{ s *quicgo.Stream }

func (b byteStream) Read(p []byte) (int, error) {
	n, err := b.s.Read(p)
	if err != nil && err != io.EOF {
		err = streamErr(err)
	}
	return n, err
}

func (b byteStream) Write(p []byte) (int, error) {
	n, err := b.s.Write(p)
	if err != nil {
		err = streamErr(err)
	}
	return n, err
}

// CloseWrite sends the FIN. It fails when the writing side was reset: by
// the peer's STOP_SENDING, whose code it then reports.
func (b byteStream) CloseWrite() error {
	if err := b.s.Close(); err != nil {
		if cause := context.Cause(b.s.Context()); cause != nil {
			return streamErr(cause)
		}
		return err
	}
	return nil
}

func (b byteStream) StopReading(code uint64) { b.s.CancelRead(quicgo.StreamErrorCode(code)) }

func (b byteStream) Abort(code uint64) { abortStream(b.s, quicgo.StreamErrorCode(code)) }

// streamErr reports a code the peer ended the stream with as a
// *core.ByteStreamError; other errors (the connection's) pass through.
func streamErr(err error) error {
	var se *quicgo.StreamError
	if errors.As(err, &se) && se.Remote {
		return fmt.Errorf("quic: %w", &core.ByteStreamError{Code: uint64(se.ErrorCode)})
	}
	return err
}
