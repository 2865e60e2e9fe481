package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Streams on a StreamConn (docs/PROTOCOL.md, "Streams on QUIC"): each
// stream has a byte stream of the transport's own, which the side that
// opened the stream opens once the open is accepted and labels with the
// open's ID. The stream's bytes, its half-close and its flow control are
// the byte stream's; only the opening message and an abort's reason
// cross as frames on the connection. This file owns byteLink, which
// carries a Stream that way, and the loop that takes the peer's byte
// streams.

// MaxStreamsPerConn is how many streams a peer may have open to an env
// over one connection (the streams it opened; each may buffer up to a
// stream window here). An Open beyond it is refused. A transport that
// implements StreamConn lets the peer open at least this many byte
// streams at once.
const MaxStreamsPerConn = 128

const (
	// byteStreamStop is the code with which a stream's reader stops the
	// peer's writes: it closed the stream before the end (Stream.Close).
	byteStreamStop uint64 = 1
	// byteStreamAbort is the code of a stream aborted by either side
	// (CloseWithError, or a failure here): the reason follows as a Reset
	// frame on the connection.
	byteStreamAbort uint64 = 2
)

// byteLink carries a Stream over a byte stream of a StreamConn. The
// Stream's Read and Write go straight to the byte stream (read and
// write), bypassing its buffer and credit; data and grant are not used.
type byteLink struct {
	p   *peer
	key streamKey

	mu    sync.Mutex
	bs    ByteStream    // set once, by attach
	ready chan struct{} // closed by attach
	timer *time.Timer   // the accepting side's bound on waiting for bs
	told  bool          // the abort's reason went out in a Reset frame, or needs none (tell)
	dead  bool          // the stream ended here before bs came: attach aborts bs
}

func newByteLink(p *peer, key streamKey) *byteLink {
	return &byteLink{p: p, key: key, ready: make(chan struct{})}
}

// attach gives the link its byte stream. It returns false if it has one
// already. A stream that ended here before it came (failed, aborted or
// closed: its reason went out then) aborts it. Whether the stream ended
// is decided under mu with bs: once bs is published, the stream may end
// through it at once (read to its end and half-closed), which must not
// abort it.
func (l *byteLink) attach(s *Stream, bs ByteStream) bool {
	l.mu.Lock()
	if l.bs != nil {
		l.mu.Unlock()
		return false
	}
	l.bs = bs
	if l.timer != nil {
		l.timer.Stop()
	}
	close(l.ready)
	dead := l.dead
	l.mu.Unlock()
	if dead {
		bs.Abort(byteStreamAbort)
	}
	return true
}

// expect bounds, on the accepting side, the wait for the opener's byte
// stream: it should follow the acceptance within a round trip. A stream
// whose byte stream has not come after the env's handshake timeout is
// aborted on both sides.
func (l *byteLink) expect(s *Stream) {
	wait := l.p.env.handshakeTimeout
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bs == nil {
		l.timer = time.AfterFunc(wait, func() {
			err := fmt.Errorf("%w: the stream's byte stream did not arrive within %v", ErrProtocol, wait)
			s.abort(fmt.Errorf("rpcenv: stream from %s: %w", s.remote, err), codeOf(ErrProtocol), errorText(err))
		})
	}
}

// stream waits for the byte stream, until s ends (it then returns the
// error of the side named by reading).
func (l *byteLink) stream(s *Stream, reading bool) (ByteStream, error) {
	select {
	case <-l.ready:
		return l.bs, nil
	case <-s.ctx.Done():
		if err := s.sideErr(reading); err != nil {
			return nil, err
		}
		s.fail(s.ctxErr()) // the env stopped
		return nil, s.sideErr(reading)
	}
}

// read is Stream.Read on a byte stream.
func (l *byteLink) read(s *Stream, p []byte) (int, error) {
	s.mu.Lock()
	eof, err := s.eof, s.rerr
	s.mu.Unlock()
	if eof {
		return 0, io.EOF
	}
	if err != nil {
		return 0, err
	}
	bs, err := l.stream(s, true)
	if err != nil {
		return 0, err
	}
	n, err := bs.Read(p)
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		s.ended()
		if n > 0 {
			return n, nil
		}
		return 0, io.EOF
	}
	return n, l.broken(s, err, true)
}

// write is Stream.Write on a byte stream.
func (l *byteLink) write(s *Stream, p []byte) (int, error) {
	s.writing.Lock()
	defer s.writing.Unlock()
	s.mu.Lock()
	err := s.writeErr()
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	bs, err := l.stream(s, false)
	if err != nil || len(p) == 0 {
		return 0, err
	}
	n, err := bs.Write(p)
	if err != nil {
		return n, l.broken(s, err, false)
	}
	return n, nil
}

// broken turns an error of the byte stream into the stream's, and
// returns the error of the side named by reading.
func (l *byteLink) broken(s *Stream, err error, reading bool) error {
	if own := s.sideErr(reading); own != nil {
		return own // this side ended it first (Close, a failure), which canceled the byte stream
	}
	var be *ByteStreamError
	switch {
	case errors.As(err, &be) && be.Code == byteStreamStop && !reading:
		s.writeStopped()
		s.maybeOver()
	case errors.As(err, &be) && be.Code == byteStreamAbort:
		// The peer aborted the stream. Its reason is a Reset frame on
		// the connection, which may come after this: wait for it a
		// while (it fails s, which ends s.ctx).
		t := time.NewTimer(l.p.env.handshakeTimeout)
		select {
		case <-s.ctx.Done():
		case <-t.C:
			s.fail(&RemoteError{Endpoint: s.remote, Message: "the peer aborted the stream and sent no reason"})
		}
		t.Stop()
	case errors.As(err, &be):
		s.fail(&RemoteError{Endpoint: s.remote, Message: fmt.Sprintf("the peer ended the stream with code %d, which rpcenv does not use", be.Code)})
	default:
		s.fail(fmt.Errorf("rpcenv: stream to %s: %w: %v", s.remote, ErrDisconnected, err))
	}
	return s.sideErr(reading)
}

func (l *byteLink) data(s *Stream, p []byte) error {
	return errors.New("rpcenv: internal error: stream data on a byte stream's link") // Write goes to write
}

func (l *byteLink) grant(s *Stream, n int) {} // Read goes to read: the byte stream gives credit itself

func (l *byteLink) end(s *Stream) error {
	bs, err := l.stream(s, false)
	if err != nil {
		return err
	}
	if err := bs.CloseWrite(); err != nil {
		var be *ByteStreamError
		if errors.As(err, &be) && be.Code == byteStreamStop {
			s.writeStopped() // the peer stopped reading: nothing to end
			return nil
		}
		return l.broken(s, err, false)
	}
	return nil
}

// reset sends the abort's reason on the connection, then aborts the byte
// stream (when it has come: attach aborts it otherwise).
func (l *byteLink) reset(s *Stream, code, message string) {
	l.mu.Lock()
	l.told = true
	l.mu.Unlock()
	l.p.resetStream(l.key, code, message)
	l.abortStream()
}

// stop is Close before the peer's end: the byte stream has come, since
// Close half-closed first, which waits for it.
func (l *byteLink) stop(s *Stream) {
	l.mu.Lock()
	bs := l.bs
	l.dead = l.dead || bs == nil
	l.mu.Unlock()
	if bs != nil {
		bs.StopReading(byteStreamStop)
	} else {
		l.tell(s) // closed before its byte stream came, which attach aborts
	}
	l.release(s, false)
}

// release forgets the stream and, when it failed, aborts its byte
// stream. A failure of this side's own (the connection's, the env
// stopping, a Write or CloseWrite that failed) is told to the peer first
// in a Reset frame, as reset does, so that the peer learns why rather
// than waiting for a reason; a failure the peer caused (its reset, its
// abort) is not answered.
func (l *byteLink) release(s *Stream, failed bool) {
	l.p.forgetStream(l.key, s)
	l.mu.Lock()
	if l.timer != nil {
		l.timer.Stop()
	}
	l.mu.Unlock()
	if failed {
		l.tell(s)
		l.abortStream()
	}
}

// tell sends the peer, once, a Stream reset with the reason s ended, ahead
// of an abort of its byte stream; not when the peer ended it (a reset, an
// abort of its own), since a reset is never answered.
func (l *byteLink) tell(s *Stream) {
	l.mu.Lock()
	told := l.told
	l.told = true
	l.mu.Unlock()
	cause := context.Cause(s.ctx)
	var re *RemoteError
	if told || cause == nil || errors.As(cause, &re) {
		return
	}
	l.p.resetStream(l.key, codeOf(cause), errorText(cause))
}

func (l *byteLink) abortStream() {
	l.mu.Lock()
	bs := l.bs
	l.dead = l.dead || bs == nil
	l.mu.Unlock()
	if bs != nil {
		bs.Abort(byteStreamAbort)
	}
}

// acceptByteStreams gives each byte stream the peer opens to the stream
// it names, until the connection closes. A byte stream for no stream
// (one this side aborted, or never had) is aborted; a second one for a
// stream breaks the protocol. It runs in a goroutine of the read loop's,
// which waits for it.
func (p *peer) acceptByteStreams(sc StreamConn) {
	for {
		id, bs, err := sc.AcceptStream()
		if err != nil {
			if !p.gone() {
				p.close(fmt.Errorf("%w: accept a stream from %s: %v", ErrDisconnected, p.label(), err))
			}
			return
		}
		key := streamKey{mine: false, id: id}
		p.mu.Lock()
		s := p.streams[key]
		p.mu.Unlock()
		var l *byteLink
		if s != nil {
			l, _ = s.link.(*byteLink)
		}
		if l == nil {
			// A stream this side has forgotten (it ended, and its reason,
			// if it failed, went out then) or never had: tell the opener,
			// which would otherwise wait for a reason.
			p.resetStream(key, codeOf(ErrStreamClosed), "the stream is closed")
			bs.Abort(byteStreamAbort)
			continue
		}
		if !l.attach(s, bs) {
			bs.Abort(byteStreamAbort)
			p.env.protocolError(p, fmt.Errorf("%w: a second byte stream for stream %d", ErrProtocol, id))
			return
		}
	}
}
