package core

import (
	"fmt"
	"time"
)

// Streams over a connection (docs/PROTOCOL.md, "Streams"): the stream
// frames, the peer's table of its streams, and remoteLink, which carries
// a Stream's bytes. Data and the half-close travel on a lane of the
// stream's own, so they take turns with every other lane and stay in
// order; credit and resets are control frames.

// streamKey names a stream on a connection: its open ID, and whether
// this side opened it (both sides choose open IDs, so they may collide).
type streamKey struct {
	mine bool
	id   uint64
}

// wireID is the stream's ID in the frames this side sends.
func (k streamKey) wireID() uint64 {
	if k.mine {
		return k.id<<1 | 1
	}
	return k.id << 1
}

// keyOf is the key of the stream a received frame names.
func keyOf(wireID uint64) streamKey {
	return streamKey{mine: wireID&1 == 0, id: wireID >> 1}
}

// streamLane is the outbox lane of stream id: 2 more than a multiple of
// 4, apart from endpoint lanes (odd) and reply lanes (multiples of 4).
func streamLane(id uint64) uint64 { return id<<2 | 2 }

// isStreamFrame reports whether frame is a stream frame other than an
// Open: bytes of a stream, not a message, so MaxMessageSize does not
// apply to it (the frame limit does).
func isStreamFrame(frame []byte) bool {
	if len(frame) < 2 {
		return false
	}
	k := frame[1]
	if k == 0x18 && len(frame) > 2 { // CBOR: a kind above 23 takes a second byte
		k = frame[2]
	}
	return k >= kindStreamData && k <= kindStreamStop
}

// streamFrame encodes a stream frame: data is the body of a data frame
// (a byte string), credit that of a credit frame; others have none.
func streamFrame(kind uint8, id uint64, data []byte, credit uint64, code, message string) []byte {
	b := newFrame(32 + len(data) + len(code) + len(message))[:0]
	b = append(b, 0x80|envelopeFields)
	b = appendUint(b, 0, uint64(kind))
	b = appendUint(b, 0, id)
	b = append(b, 0x60, 0x60) // to, type: ""
	switch kind {
	case kindStreamData:
		b = appendUint(b, 2, uint64(len(data)))
		b = append(b, data...)
	case kindStreamCredit:
		b = appendUint(b, 0, credit)
	default:
		b = append(b, cborNull)
	}
	b = append(b, 0) // timeout
	b = appendUint(b, 3, uint64(len(code)))
	b = append(b, code...)
	b = appendUint(b, 3, uint64(len(message)))
	return append(b, message...)
}

// remoteLink carries a Stream over peer p.
type remoteLink struct {
	p   *peer
	key streamKey
}

func (l *remoteLink) data(s *Stream, b []byte) error {
	return l.queue(s, streamFrame(kindStreamData, l.key.wireID(), b, 0, "", ""))
}

func (l *remoteLink) end(s *Stream) error {
	return l.queue(s, streamFrame(kindStreamEnd, l.key.wireID(), nil, 0, "", ""))
}

// queue puts frame on the stream's lane, waiting for room until the
// stream ends.
func (l *remoteLink) queue(s *Stream, frame []byte) error {
	if err := l.p.data(streamLane(l.key.id), "", frame, "", "", s.ctx.Done(), time.Time{}); err != nil {
		if err == errDone {
			return s.ctxErr()
		}
		return fmt.Errorf("rpcenv: stream to %s: %w", s.remote, err)
	}
	return nil
}

func (l *remoteLink) grant(s *Stream, n int) {
	l.p.control(streamFrame(kindStreamCredit, l.key.wireID(), nil, uint64(n), "", ""))
}

func (l *remoteLink) reset(s *Stream, code, message string) { l.p.resetStream(l.key, code, message) }

// resetStream sends a Stream reset for the stream under key.
func (p *peer) resetStream(key streamKey, code, message string) {
	p.control(streamFrame(kindStreamReset, key.wireID(), nil, 0, code, message))
}

func (l *remoteLink) stop(s *Stream) {
	l.p.control(streamFrame(kindStreamStop, l.key.wireID(), nil, 0, "", ""))
}

func (l *remoteLink) release(s *Stream, failed bool) { l.p.forgetStream(l.key, s) }

// forgetStream takes s, under key, out of p's table.
func (p *peer) forgetStream(key streamKey, s *Stream) {
	p.mu.Lock()
	if p.streams[key] == s {
		delete(p.streams, key)
		if !key.mine {
			p.accepted--
		}
	}
	p.mu.Unlock()
}

// addStream puts s in p's table under key, unless p is closed or, for a
// stream the peer opens, it has MaxStreamsPerConn open already.
func (p *peer) addStream(key streamKey, s *Stream) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == peerClosed {
		return p.closeErr
	}
	if _, dup := p.streams[key]; dup {
		return fmt.Errorf("%w: stream id %d reused while open", ErrProtocol, key.id)
	}
	if !key.mine {
		if p.accepted >= MaxStreamsPerConn {
			return fmt.Errorf("%s has %d streams open to this env on this connection, the most it may", p.label(), MaxStreamsPerConn)
		}
		p.accepted++
	}
	if p.streams == nil {
		p.streams = map[streamKey]*Stream{}
	}
	p.streams[key] = s
	return nil
}

// handleStream acts on a received stream frame. An error means the peer
// broke the protocol.
func (p *peer) handleStream(env *envelope) error {
	if _, ok := p.conn.(StreamConn); ok && env.Kind != kindStreamReset {
		return fmt.Errorf("%w: stream frame of kind %d on a connection whose streams have byte streams of their own", ErrProtocol, env.Kind)
	}
	key := keyOf(env.ID)
	p.mu.Lock()
	s := p.streams[key]
	p.mu.Unlock()
	if s == nil {
		// A stream this side closed, or gave up opening: data or an end
		// for it means the peer still writes, so tell it to stop. (Credit
		// for a stream that ended is normal, and a reset is never
		// answered.)
		if env.Kind == kindStreamData || env.Kind == kindStreamEnd {
			p.resetStream(key, codeOf(ErrStreamClosed), "the stream is closed")
		}
		return nil
	}
	if s.isOver() {
		// Closed here and waiting for the peer's answer to its stop: its
		// end or reset lets this side forget the stream; data is dropped.
		if env.Kind == kindStreamEnd || env.Kind == kindStreamReset {
			s.link.release(s, false)
		}
		return nil
	}
	switch env.Kind {
	case kindStreamData:
		d := frameReader{b: env.Body}
		major, n, ok := d.head()
		if !ok || major != 2 || uint64(len(env.Body)-d.off) != n {
			return fmt.Errorf("%w: stream data must be a byte string", ErrProtocol)
		}
		if n > streamPiece {
			return fmt.Errorf("%w: stream data of %d bytes, more than a frame carries (%d)", ErrProtocol, n, streamPiece)
		}
		return s.deliver(env.Body[d.off:])
	case kindStreamCredit:
		d := frameReader{b: env.Body}
		n, ok := d.uint()
		if !ok || n == 0 || d.off != len(env.Body) {
			return fmt.Errorf("%w: stream credit must be a positive integer", ErrProtocol)
		}
		s.credited(int(min(n, 1<<40)))
	case kindStreamEnd:
		s.ended()
	case kindStreamReset:
		s.fail(&RemoteError{Endpoint: s.remote, Message: env.Message, Code: env.Code})
	case kindStreamStop:
		s.stopped()
	}
	return nil
}

// failStreams ends every stream of a closed peer with cause.
func failStreams(streams map[streamKey]*Stream, cause error) {
	for _, s := range streams {
		s.fail(fmt.Errorf("rpcenv: stream to %s: %w", s.remote, cause))
	}
}
