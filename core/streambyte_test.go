package core

import (
	"fmt"
	"testing"
)

// abortRecorder is a ByteStream that records its abort and does nothing
// else.
type abortRecorder struct{ aborted uint64 }

func (b *abortRecorder) Read([]byte) (int, error)  { return 0, nil }
func (b *abortRecorder) Write([]byte) (int, error) { return 0, nil }
func (b *abortRecorder) CloseWrite() error         { return nil }
func (b *abortRecorder) StopReading(uint64)        {}
func (b *abortRecorder) Abort(code uint64)         { b.aborted = code }

// A byte stream that arrives for a stream already over is aborted. The
// peer learns why from a Stream reset sent first, unless the peer ended
// the stream itself: a reset is never answered. A stream that ends
// through its byte stream right after it arrived is not aborted (the
// last case: attach used to look at the stream after publishing the
// byte stream, and a handler that read to the end and half-closed in
// between saw its stream aborted).
func TestAByteStreamForAStreamAlreadyOverIsAbortedWithItsReason(t *testing.T) {
	for _, c := range []struct {
		name  string
		end   func(s *Stream)
		reset bool // a Stream reset of code stream_closed must go out first
		keep  bool // the byte stream must not be aborted
	}{
		{"closed here", func(s *Stream) {
			// Close's last steps, when the peer has not ended its side.
			s.release(fmt.Errorf("rpcenv: stream to test://peer: %w", ErrStreamClosed), false)
			s.link.stop(s)
		}, true, false},
		{"reset by the peer", func(s *Stream) {
			s.fail(&RemoteError{Endpoint: "test://peer", Message: "the reader stopped", Code: codeOf(ErrStreamClosed)})
		}, false, false},
		{"ended through its byte stream", func(s *Stream) {
			// What a handler that reads to the end and half-closes does
			// between attach publishing the byte stream and returning:
			// the stream is over, but not through the link.
			s.mu.Lock()
			s.eof, s.wclosed = true, true
			s.mu.Unlock()
			s.maybeOver()
		}, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &peer{env: &Env{}, dialAddr: "test://peer", closed: make(chan struct{})}
			p.out = newOutbox(p)
			key := streamKey{mine: false, id: 5}
			s := newStream(t.Context(), "test://peer")
			l := newByteLink(p, key)
			s.link = l
			c.end(s)
			bs := &abortRecorder{}
			if !l.attach(s, bs) {
				t.Fatal("attach refused the first byte stream")
			}
			switch {
			case c.keep && bs.aborted != 0:
				t.Errorf("the byte stream was aborted with code %d; want it kept", bs.aborted)
			case !c.keep && bs.aborted != byteStreamAbort:
				t.Errorf("the byte stream was aborted with code %d; want %d", bs.aborted, byteStreamAbort)
			}
			var resets []envelope
			for _, f := range drain(p.out) {
				var env envelope
				if err := decodeEnvelope(f, &env); err != nil {
					t.Fatal(err)
				}
				if env.Kind == kindStreamReset {
					resets = append(resets, env)
				}
			}
			switch {
			case !c.reset && len(resets) != 0:
				t.Errorf("sent %d Stream resets; want none: the peer ended the stream", len(resets))
			case c.reset && (len(resets) != 1 || resets[0].ID != key.wireID() || resets[0].Code != codeOf(ErrStreamClosed)):
				t.Errorf("Stream resets sent: %+v; want one for wire id %d with code %q", resets, key.wireID(), codeOf(ErrStreamClosed))
			}
		})
	}
}
