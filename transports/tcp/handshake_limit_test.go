package tcp_test

import (
	"encoding/binary"
	"errors"
	"net"
	"testing"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/tcp"
)

// An unauthenticated peer cannot make the env read a large frame: the
// first frames (its handshake) have a limit of their own, checked on the
// length before any of the body is read.
func TestHandshakeFramesHaveTheirOwnSmallLimit(t *testing.T) {
	opts := core.ConnOptions{MaxFrameSize: 1 << 20, HandshakeFrames: 1, HandshakeFrameSize: 4096}
	frame := func(n int) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(n)), make([]byte, n)...)
	}
	for _, tc := range []struct {
		name  string
		wire  []byte // what the peer sends, then it closes
		reads []int  // the frame sizes ReadFrame returns before its error
		large bool   // the error wraps ErrMessageTooLarge
	}{
		{"a first frame over the handshake limit", frame(64 << 10), nil, true},
		{"a first frame at the limit, then a large one", append(frame(4096), frame(64<<10)...), []int{4096, 64 << 10}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := tcp.New(tcp.Options{}).Listen("127.0.0.1:0", opts)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			raw, err := net.Dial("tcp", l.Addr())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := raw.Write(tc.wire); err != nil {
				t.Fatal(err)
			}
			raw.Close()
			c, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, want := range tc.reads {
				f, err := c.ReadFrame()
				if err != nil || len(f) != want {
					t.Fatalf("ReadFrame: %d bytes, %v; want %d bytes", len(f), err, want)
				}
			}
			_, err = c.ReadFrame()
			if got := errors.Is(err, core.ErrMessageTooLarge); got != tc.large || err == nil {
				t.Fatalf("ReadFrame after %d frames: %v; want an error, wrapping ErrMessageTooLarge: %v", len(tc.reads), err, tc.large)
			}
		})
	}
}
