package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// Streams (docs/ARCHITECTURE.md, "Streams"): a Stream is a bidirectional,
// flow-controlled byte stream between two envs (or two endpoints of one
// env), opened with a message. This file owns the Stream itself: its
// receive buffer, its send credit, and how it ends. How its bytes cross
// is a streamLink's: localLink joins two Streams of one env,
// remoteLink (streamconn.go) carries them over a connection.

const (
	// streamWindow is how many bytes a stream's receiver lets its sender
	// write ahead of what it has read: the most a stream buffers on the
	// receiving side (docs/PROTOCOL.md, "Streams").
	streamWindow = 256 << 10
	// streamPiece is the most data one stream frame carries.
	streamPiece = 64 << 10
)

// StreamHandler is implemented by an endpoint that accepts streams. The
// opening message is delivered in the endpoint's order, like any other,
// to ReceiveStream instead of Receive. The *Stream stays usable after
// ReceiveStream returns, from any goroutine, until it is closed; an error
// returned by ReceiveStream aborts the stream with it (CloseWithError).
// The env accepts the stream before ReceiveStream runs: c.Reply and
// c.Fail have nothing to answer and return ErrAlreadyAnswered.
type StreamHandler interface {
	ReceiveStream(c *Context, msg any, s *Stream) error
}

// Stream is a bidirectional, flow-controlled byte stream, opened with
// Ref.OpenStream and accepted by a StreamHandler. Read and Write may be
// called from different goroutines at once; concurrent Reads (or
// Writes) are not ordered with each other.
//
// A Write waits while the peer has not read what was written before
// (at most 256 KiB is ahead of its reader), so a slow reader bounds the
// memory on both sides; other streams, asks and sends on the same
// connection go on meanwhile. When the peer goes (its env stops, its
// connection breaks or is declared dead), Read and Write fail with an
// error wrapping ErrDisconnected or ErrEnvStopped: a stream that did not
// finish never ends with io.EOF.
type Stream struct {
	link   streamLink
	remote string // what the peer is, for errors: its endpoint's URI or its env's
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu sync.Mutex
	// The receiving side.
	in      [][]byte // data not yet read, in order; in[0][inOff:] comes next
	inOff   int
	inLen   int  // bytes in in
	granted int  // bytes the peer may still send without more credit (what it has been granted, less what arrived)
	unacked int  // bytes read and not yet given back as credit
	eof     bool // the peer half-closed: Read returns io.EOF once in is drained
	rerr    error
	rwait   chan struct{} // closed when data, EOF or an error arrives; nil when no Read waits
	// The sending side.
	credit  int  // bytes this side may still send
	wclosed bool // CloseWrite was called
	werr    error
	wwait   chan struct{} // closed when credit or an error arrives; nil when no Write waits
	writing sync.Mutex    // one Write at a time: a Write's pieces are not interleaved with another's
	over    bool          // both directions are done, or the stream failed: released

	bytes *streamBytes // the env's stream byte counters (Env.Stats); nil in tests
}

// streamBytes counts the bytes an env's streams read and wrote.
type streamBytes struct{ in, out atomic.Uint64 }

// streamBufs recycles the buffers received stream data waits in: a
// stream that moves gigabytes then allocates nothing per frame.
var streamBufs = sync.Pool{New: func() any { return new([streamPiece]byte) }}

// streamBuf returns a copy of p (at most streamPiece bytes) in a
// recycled buffer.
func streamBuf(p []byte) []byte {
	b := streamBufs.Get().(*[streamPiece]byte)
	return b[:copy(b[:], p)]
}

// freeStreamBuf gives back a buffer made by streamBuf.
func freeStreamBuf(b []byte) {
	if cap(b) == streamPiece {
		streamBufs.Put((*[streamPiece]byte)(b[:streamPiece]))
	}
}

// streamLink is how a Stream's output reaches its peer.
type streamLink interface {
	// data sends p (at most streamPiece bytes, within the credit). It may
	// wait for room, until s ends. It must not keep p.
	data(s *Stream, p []byte) error
	// end half-closes: no data follows.
	end(s *Stream) error
	// grant gives the peer n more bytes of credit.
	grant(s *Stream, n int)
	// reset aborts the stream on the peer's side with code and message.
	reset(s *Stream, code, message string)
	// stop tells the peer this side reads no more: its writes fail.
	stop(s *Stream)
	// release forgets the stream: both directions are done, or it failed
	// (failed: what the link holds for it is dropped).
	release(s *Stream, failed bool)
}

func newStream(parent context.Context, remote string) *Stream {
	s := &Stream{remote: remote, granted: streamWindow, credit: streamWindow}
	s.ctx, s.cancel = context.WithCancelCause(parent)
	return s
}

// Context returns a context that ends when the stream ends: both
// directions are closed, it was aborted by either side, the peer went
// away, or the env stopped. context.Cause tells why.
func (s *Stream) Context() context.Context { return s.ctx }

// Read reads what the peer wrote. It returns io.EOF once the peer has
// called CloseWrite (or Close) and everything before it was read. Before
// that, it fails with an error wrapping ErrDisconnected or ErrEnvStopped
// if the peer or the env went first, with the peer's error (a
// *RemoteError) if it called CloseWithError, and with ErrStreamClosed
// after Close or CloseWithError on this side.
func (s *Stream) Read(p []byte) (int, error) {
	n, err := s.read(p)
	if n > 0 && s.bytes != nil {
		s.bytes.in.Add(uint64(n))
	}
	return n, err
}

func (s *Stream) read(p []byte) (int, error) {
	if l, ok := s.link.(*byteLink); ok {
		return l.read(s, p)
	}
	s.mu.Lock()
	for s.inLen == 0 && !s.eof && s.rerr == nil {
		s.wait(&s.rwait)
	}
	if s.inLen == 0 {
		err := s.rerr
		if err == nil {
			err = io.EOF
		}
		s.mu.Unlock()
		return 0, err
	}
	n := 0
	for n < len(p) && len(s.in) > 0 {
		c := copy(p[n:], s.in[0][s.inOff:])
		n += c
		s.inOff += c
		if s.inOff == len(s.in[0]) {
			freeStreamBuf(s.in[0])
			s.in[0] = nil
			s.in = s.in[1:]
			s.inOff = 0
		}
	}
	s.inLen -= n
	s.unacked += n
	give := 0
	if s.unacked >= streamWindow/4 && !s.eof && s.rerr == nil {
		give, s.unacked = s.unacked, 0
		s.granted += give
	}
	s.mu.Unlock()
	if give > 0 {
		s.link.grant(s, give)
	}
	return n, nil
}

// Write writes p to the peer, waiting while the peer's window is full. It
// returns ErrStreamClosed after CloseWrite or Close, and the stream's
// error once it failed (see Read).
func (s *Stream) Write(p []byte) (int, error) {
	n, err := s.write(p)
	if n > 0 && s.bytes != nil {
		s.bytes.out.Add(uint64(n))
	}
	return n, err
}

func (s *Stream) write(p []byte) (int, error) {
	if l, ok := s.link.(*byteLink); ok {
		return l.write(s, p)
	}
	s.writing.Lock()
	defer s.writing.Unlock()
	n := 0
	for n < len(p) || len(p) == 0 {
		s.mu.Lock()
		for s.credit <= 0 && s.werr == nil && !s.wclosed {
			s.wait(&s.wwait)
		}
		if err := s.writeErr(); err != nil {
			s.mu.Unlock()
			return n, err
		}
		if len(p) == 0 {
			s.mu.Unlock()
			return 0, nil
		}
		m := min(len(p)-n, streamPiece, s.credit)
		s.credit -= m
		s.mu.Unlock()
		if err := s.link.data(s, p[n:n+m]); err != nil {
			s.fail(err)
			s.mu.Lock()
			err = s.writeErr()
			s.mu.Unlock()
			return n, err
		}
		n += m
	}
	return n, nil
}

// wait parks until *slot (rwait or wwait) is closed, or the stream's
// Context ends (the stream then fails). Called with mu held; it returns
// with mu held.
func (s *Stream) wait(slot *chan struct{}) {
	if *slot == nil {
		*slot = make(chan struct{})
	}
	ch := *slot
	s.mu.Unlock()
	select {
	case <-ch:
	case <-s.ctx.Done():
		s.fail(s.ctxErr())
	}
	s.mu.Lock()
}

// writeErr is why Write cannot go on, or nil. Called with mu held.
func (s *Stream) writeErr() error {
	switch {
	case s.werr != nil:
		return s.werr
	case s.wclosed:
		return fmt.Errorf("rpcenv: stream to %s: write after CloseWrite: %w", s.remote, ErrStreamClosed)
	}
	return nil
}

// CloseWrite half-closes the stream: the peer's Read returns io.EOF once
// it has read everything written before. Reading goes on. Calling it
// again does nothing.
func (s *Stream) CloseWrite() error {
	s.writing.Lock() // after any Write in progress
	defer s.writing.Unlock()
	s.mu.Lock()
	if s.wclosed || s.werr != nil {
		err := s.werr
		s.mu.Unlock()
		if err != nil && !errors.Is(err, ErrStreamClosed) {
			return err
		}
		return nil
	}
	s.wclosed = true
	s.mu.Unlock()
	if err := s.link.end(s); err != nil {
		s.fail(err)
		return err
	}
	s.maybeOver()
	return nil
}

// Close is done with both directions: it half-closes the writing side
// if that is still open (what was written still reaches the peer, then
// its io.EOF) and stops reading. If the peer has not finished writing,
// it is told: its Write fails with ErrStreamClosed, and what it sent is
// dropped. Close returns nil once the stream is closed, whoever closed
// it; it returns the stream's error when the stream had failed.
func (s *Stream) Close() error {
	s.mu.Lock()
	failed, peerDone, over := s.rerr, s.eof, s.over
	s.mu.Unlock()
	if failed != nil && !errors.Is(failed, ErrStreamClosed) {
		s.release(failed, true)
		return failed
	}
	if over {
		return nil
	}
	if err := s.CloseWrite(); err != nil {
		return err
	}
	if peerDone {
		return nil // both directions ended: CloseWrite released it
	}
	// Over here, but the link keeps it until the peer answers the stop,
	// so that what it sent meanwhile is dropped quietly.
	s.release(fmt.Errorf("rpcenv: stream to %s: %w", s.remote, ErrStreamClosed), false)
	s.mu.Lock()
	ended := s.eof // the peer's end came in meanwhile: nothing to wait for
	s.mu.Unlock()
	if ended {
		s.link.release(s, false)
		return nil
	}
	s.link.stop(s)
	return nil
}

// CloseWithError aborts the stream: the peer's Read and Write fail with a
// *RemoteError carrying err's text (and, when err wraps one of this
// package's sentinels, its code, so that errors.Is works there too).
// This side's Read and Write then fail with ErrStreamClosed. A nil err
// is as Close. It does nothing on a stream already closed or failed.
func (s *Stream) CloseWithError(err error) error {
	if err == nil {
		return s.Close()
	}
	msg := errorText(err)
	s.abort(fmt.Errorf("rpcenv: stream to %s: aborted (%v): %w", s.remote, err, ErrStreamClosed), codeOf(err), msg)
	return nil
}

// abort ends the stream here with local (unless it failed already) and
// tells the peer with code and message.
func (s *Stream) abort(local error, code, message string) {
	s.mu.Lock()
	if s.over {
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.link.reset(s, code, message)
	s.release(local, true)
}

// The receiving side, called by the link.

// deliver adds a copy of p (at most streamPiece bytes) to what Read
// returns. It fails when the peer sent beyond the credit it was given.
func (s *Stream) deliver(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.over || s.rerr != nil || s.eof {
		return nil // a stream this side closed: dropped
	}
	if len(p) > streamPiece || len(p) > s.granted {
		return fmt.Errorf("%w: stream data beyond its window (%d bytes, %d granted)", ErrProtocol, len(p), s.granted)
	}
	s.granted -= len(p)
	if len(p) > 0 {
		s.in = append(s.in, streamBuf(p))
		s.inLen += len(p)
	}
	s.wakeReader()
	return nil
}

// ended marks the peer's half-close.
func (s *Stream) ended() {
	s.mu.Lock()
	s.eof = true
	s.wakeReader()
	s.mu.Unlock()
	s.maybeOver()
}

// credited adds n bytes of send credit.
func (s *Stream) credited(n int) {
	s.mu.Lock()
	s.credit = min(s.credit+n, 1<<40)
	s.wakeWriter()
	s.mu.Unlock()
}

// fail ends both directions with err, unless the stream ended already.
func (s *Stream) fail(err error) { s.release(err, true) }

// stopped is the peer's Close before it read everything: Write fails
// from now on, and the peer is answered with a reset, after which it
// forgets the stream. What the peer wrote stays readable.
func (s *Stream) stopped() {
	if !s.writeStopped() {
		return
	}
	s.link.reset(s, codeOf(ErrStreamClosed), "the stream is closed")
	s.maybeOver()
}

// writeStopped makes Write fail because the peer stopped reading. It
// returns false if the stream is over.
func (s *Stream) writeStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.over {
		return false
	}
	if s.werr == nil {
		s.werr = &RemoteError{Endpoint: s.remote, Message: "the peer closed the stream", Code: codeOf(ErrStreamClosed)}
	}
	s.wakeWriter()
	return true
}

// sideErr is the error of the reading side (reading) or the writing
// side, or nil while it is open. A reading side that saw the peer's end
// has io.EOF.
func (s *Stream) sideErr(reading bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !reading {
		return s.werr
	}
	if s.eof && s.rerr == nil {
		return io.EOF
	}
	return s.rerr
}

// isOver reports whether the stream has ended on this side.
func (s *Stream) isOver() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.over
}

// release ends the stream on this side with err: Write fails with it
// and so does Read, unless the peer had finished writing (what it wrote
// then stays readable, and Read ends with io.EOF); its Context ends, and
// the link forgets it if forget is set.
func (s *Stream) release(err error, forget bool) {
	s.mu.Lock()
	if s.over {
		s.mu.Unlock()
		return
	}
	s.over = true
	if !s.eof {
		if s.rerr == nil {
			s.rerr = err
		}
		for _, b := range s.in {
			freeStreamBuf(b)
		}
		s.in, s.inLen, s.inOff = nil, 0, 0
	}
	if s.werr == nil {
		s.werr = err
	}
	s.wakeReader()
	s.wakeWriter()
	s.mu.Unlock()
	s.cancel(err)
	if forget {
		s.link.release(s, true)
	}
}

// maybeOver releases the stream once both directions are done: this
// side half-closed (or the peer stopped it) and the peer's EOF has been
// seen. What the peer wrote before its EOF stays readable.
func (s *Stream) maybeOver() {
	s.mu.Lock()
	done := (s.wclosed || s.werr != nil) && s.eof && !s.over
	if done {
		s.over = true
		if s.werr == nil {
			s.werr = fmt.Errorf("rpcenv: stream to %s: %w", s.remote, ErrStreamClosed)
		}
	}
	s.mu.Unlock()
	if done {
		s.cancel(ErrStreamClosed)
		s.link.release(s, false)
	}
}

// wakeReader and wakeWriter wake a waiting Read or Write. Called with
// mu held.
func (s *Stream) wakeReader() { wake(&s.rwait) }
func (s *Stream) wakeWriter() { wake(&s.wwait) }

// wake closes *slot, if a waiter made it.
func wake(slot *chan struct{}) {
	if *slot != nil {
		close(*slot)
		*slot = nil
	}
}

// ctxErr is the stream's error once its Context ended: the cause the
// stream ended with or, when the env's context ended it (it has no
// cause), ErrEnvStopped.
func (s *Stream) ctxErr() error {
	if err := context.Cause(s.ctx); err != nil && err != context.Canceled {
		return err
	}
	return fmt.Errorf("rpcenv: stream to %s: %w", s.remote, ErrEnvStopped)
}

// localLink joins the two Streams of a stream between endpoints of one
// env: what one writes is delivered to the other directly (copied, as a
// connection would), with the same credit rules.
type localLink struct{ twin *Stream }

// newLocalPair makes the two ends of a local stream: opener's and
// acceptor's. Both end when parent does.
func newLocalPair(parent context.Context, opener, acceptor string) (*Stream, *Stream) {
	a, b := newStream(parent, acceptor), newStream(parent, opener)
	a.link, b.link = &localLink{twin: b}, &localLink{twin: a}
	return a, b
}

func (l *localLink) data(s *Stream, p []byte) error { return l.twin.deliver(p) }

func (l *localLink) end(s *Stream) error {
	l.twin.ended()
	return nil
}

func (l *localLink) grant(s *Stream, n int) { l.twin.credited(n) }

func (l *localLink) reset(s *Stream, code, message string) {
	l.twin.fail(&RemoteError{Endpoint: l.twin.remote, Message: message, Code: code})
}

func (l *localLink) stop(s *Stream) { l.twin.stopped() }

func (l *localLink) release(s *Stream, failed bool) {}
