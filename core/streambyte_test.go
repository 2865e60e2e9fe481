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
// the stream itself: a reset is never answered.
func TestAByteStreamForAStreamAlreadyOverIsAbortedWithItsReason(t *testing.T) {
	for _, c := range []struct {
		name  string
		end   func(s *Stream)
		reset bool // a Stream reset of code stream_closed must go out first
	}{
		{"closed here", func(s *Stream) {
			s.release(fmt.Errorf("rpcenv: stream to test://peer: %w", ErrStreamClosed), false)
		}, true},
		{"reset by the peer", func(s *Stream) {
			s.fail(&RemoteError{Endpoint: "test://peer", Message: "the reader stopped", Code: codeOf(ErrStreamClosed)})
		}, false},
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
			if bs.aborted != byteStreamAbort {
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
