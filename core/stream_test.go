package core

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// holder is a StreamHandler that hands each stream to the test.
type holder chan *Stream

func (holder) Receive(*Context, any) error { return nil }
func (h holder) ReceiveStream(c *Context, msg any, s *Stream) error {
	h <- s
	return nil
}

func openHeld(t *testing.T) (mine, theirs *Stream) {
	t.Helper()
	e, err := NewEnv(Config{Name: "streams"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Shutdown(context.Background()) })
	h := make(holder, 1)
	ref, err := e.Register("held", h)
	if err != nil {
		t.Fatal(err)
	}
	mine, err = ref.OpenStream(context.Background(), "open")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case theirs = <-h:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream never reached its handler")
	}
	return mine, theirs
}

// A reader that does not read holds the writer at the window: the
// receiver buffers at most streamWindow bytes, and the writer's next
// Write waits until the reader takes some.
func TestAStreamsWriterWaitsForItsSlowReader(t *testing.T) {
	mine, theirs := openHeld(t)
	if n, err := mine.Write(make([]byte, streamWindow)); err != nil || n != streamWindow {
		t.Fatalf("Write of the whole window = %d, %v", n, err)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := mine.Write([]byte{1})
		wrote <- err
	}()
	theirs.mu.Lock()
	buffered := theirs.inLen
	theirs.mu.Unlock()
	mine.mu.Lock()
	credit := mine.credit
	mine.mu.Unlock()
	if buffered != streamWindow || credit != 0 {
		t.Fatalf("after a window's worth: %d bytes buffered, %d of credit left; want %d and 0", buffered, credit, streamWindow)
	}
	select {
	case err := <-wrote:
		t.Fatalf("a Write beyond the window returned (%v) while nothing was read", err)
	default:
	}
	if _, err := io.ReadFull(theirs, make([]byte, streamWindow/4)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("Write once the reader read: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reader read a quarter of the window and the writer stayed blocked")
	}
}

// A peer that sends beyond the credit it was given, or more than a frame
// carries at once, breaks the protocol.
func TestStreamDataBeyondTheWindowIsAProtocolViolation(t *testing.T) {
	s := newStream(context.Background(), "peer")
	s.link = &localLink{twin: s}
	for range streamWindow / streamPiece {
		if err := s.deliver(make([]byte, streamPiece)); err != nil {
			t.Fatalf("a window's worth, a frame at a time: %v", err)
		}
	}
	if err := s.deliver([]byte{1}); !errors.Is(err, ErrProtocol) {
		t.Fatalf("one byte beyond the window: %v, want ErrProtocol", err)
	}
	fresh := newStream(context.Background(), "peer")
	if err := fresh.deliver(make([]byte, streamPiece+1)); !errors.Is(err, ErrProtocol) {
		t.Fatalf("one piece of %d bytes: %v, want ErrProtocol", streamPiece+1, err)
	}
}

// Stream frames are envelopes the envelope decoder takes, and their
// bodies carry the data and the credit.
func TestStreamFramesDecode(t *testing.T) {
	for _, tc := range []struct {
		kind   uint8
		data   []byte
		credit uint64
		code   string
	}{
		{kindStreamData, []byte("payload"), 0, ""},
		{kindStreamData, nil, 0, ""},
		{kindStreamCredit, nil, 65536, ""},
		{kindStreamEnd, nil, 0, ""},
		{kindStreamReset, nil, 0, "stream_closed"},
	} {
		f := streamFrame(tc.kind, 7, tc.data, tc.credit, tc.code, "why")
		var env envelope
		if err := decodeEnvelope(f, &env); err != nil {
			t.Fatalf("kind %d: %v", tc.kind, err)
		}
		if env.Kind != tc.kind || env.ID != 7 || env.Code != tc.code || env.Message != "why" {
			t.Fatalf("kind %d decoded as %+v", tc.kind, env)
		}
		if isData(f) != (tc.kind == kindStreamData || tc.kind == kindStreamEnd) {
			t.Errorf("kind %d: isData = %v", tc.kind, isData(f))
		}
	}
}

// A message too large for one names the way to send more.
func TestATooLargeMessagePointsToStreams(t *testing.T) {
	e, err := NewEnv(Config{MaxMessageSize: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	r := newRef(e, "x", "tcp://127.0.0.1:1", "other", "other") // another env's: the message is encoded
	err = r.Send(strings.Repeat("x", 2<<10))
	if !errors.Is(err, ErrMessageTooLarge) || !strings.Contains(err.Error(), "Ref.OpenStream") {
		t.Fatalf("Send of 2 KiB with a 1 KiB limit: %v; want ErrMessageTooLarge naming Ref.OpenStream", err)
	}
}

// Whatever stream frames a peer sends, the env neither panics nor holds
// more than a stream's window: a frame is acted on or refused with an
// error (the connection would then close).
func FuzzStreamFrames(f *testing.F) {
	f.Add(uint8(kindStreamData), uint64(3), []byte{0x43, 1, 2, 3})
	f.Add(uint8(kindStreamCredit), uint64(2), []byte{0x19, 0x10, 0x00})
	f.Add(uint8(kindStreamEnd), uint64(3), []byte{cborNull})
	f.Add(uint8(kindStreamReset), uint64(2), []byte{cborNull})
	f.Add(uint8(kindStreamStop), uint64(3), []byte{cborNull})
	f.Add(uint8(kindStreamData), uint64(99), []byte{0x5a, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, kind uint8, id uint64, body []byte) {
		e := &Env{}
		p := &peer{env: e, closed: make(chan struct{}), calls: map[uint64]*call{}, inCalls: map[uint64]*inCall{}}
		p.out = newOutbox(p)
		for _, key := range []streamKey{{mine: true, id: 1}, {mine: false, id: 1}} {
			s := newStream(context.Background(), "peer")
			s.link = &remoteLink{p: p, key: key}
			if err := p.addStream(key, s); err != nil {
				t.Fatal(err)
			}
		}
		env := envelope{Kind: kindStreamData + kind%5, ID: id, Body: body, Code: "c", Message: "m"}
		for range 8 { // again and again: a window's worth and beyond
			if err := p.handleStream(&env); err != nil && !errors.Is(err, ErrProtocol) {
				t.Fatalf("error not a protocol violation: %v", err)
			}
		}
		for _, s := range p.streams {
			s.mu.Lock()
			held := s.inLen
			s.mu.Unlock()
			if held > streamWindow {
				t.Fatalf("a stream holds %d bytes, beyond its window", held)
			}
		}
		p.out.close(errors.New("done"))
	})
}
