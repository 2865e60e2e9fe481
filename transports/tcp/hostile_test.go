package tcp_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rpcenv/rpcenv/core"
)

// hostileTarget is a listening env that drops a silent connection after
// 100ms, and a client env with a ref to its echo endpoint.
type hostileTarget struct {
	server *core.Env
	host   string // the server's host:port, for raw dials
	echo   *core.Ref
}

func newHostileTarget(t *testing.T) *hostileTarget {
	t.Helper()
	server := startEnv(t, nil, core.Config{Name: "server", Listen: "tcp://127.0.0.1:0", HandshakeTimeout: 100 * time.Millisecond})
	mustRegister(t, server, "echo", echoEndpoint())
	return &hostileTarget{server: server, host: strings.TrimPrefix(server.Address(), "tcp://")}
}

// stillWorks checks that a proper client env can still ask the server.
func (h *hostileTarget) stillWorks(t *testing.T) {
	t.Helper()
	client := startEnv(t, nil, core.Config{Name: "client"})
	r := mustLookup(t, client, h.server.Address()+"/echo")
	if v, err := askWithin(t, r, "still there?"); err != nil || v != "still there?" {
		t.Fatalf("ask after the hostile peer = %v, %v; want the echo", v, err)
	}
}

// attack dials the server raw, writes b and, if halfClose, closes its
// writing side; then it reads until the server closes the connection.
// That the server closes it proves it did not keep the connection, nor
// a goroutine blocked on it. The read deadline only guards against a hang.
func (h *hostileTarget) attack(t *testing.T, b []byte, halfClose bool) {
	t.Helper()
	c, err := net.Dial("tcp", h.host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(b) > 0 {
		if _, err := c.Write(b); err != nil {
			t.Fatalf("write %d hostile bytes: %v", len(b), err)
		}
	}
	if halfClose {
		c.(*net.TCPConn).CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(testWait))
	_, err = io.Copy(io.Discard, c) // the handshake frame the server may send, then EOF
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the hostile connection open for %v", testWait)
	}
	// A reset instead of a FIN is a close too.
}

// noGoroutineLeftSince fails if goroutines started after the snapshot
// still run. There is no signal for a goroutine's exit, so goleak polls,
// with a bound.
func noGoroutineLeftSince(t *testing.T, snapshot goleak.Option) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for {
		err := goleak.Find(snapshot) // itself retries for a while
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left by the hostile connection: %v", err)
		}
	}
}

// lengthPrefix is the 4-byte header of a frame of n bytes.
func lengthPrefix(n int) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(n))
}

func TestHostileBytesDoNotHurtTheEnv(t *testing.T) {
	garbageFrame := append(lengthPrefix(64), []byte("\xff\x00not cbor at all, not an rpcenv handshake\x1f\xbf\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")[:64]...)
	cases := []struct {
		name      string
		bytes     []byte
		halfClose bool
	}{
		{"GarbageBytes", []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), false},
		{"TruncatedFrameThenClose", append(lengthPrefix(100), "only part of it"...), true},
		{"NothingAtAllIsDroppedAfterHandshakeTimeout", nil, false},
		{"ValidLengthWithGarbageInside", garbageFrame, false},
		{"EmptyFrame", lengthPrefix(0), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHostileTarget(t)
			snapshot := goleak.IgnoreCurrent()
			h.attack(t, tc.bytes, tc.halfClose)
			noGoroutineLeftSince(t, snapshot)
			h.stillWorks(t)
		})
	}
}

func TestAFrameAnnouncing4GiBIsRefusedWithoutAllocatingIt(t *testing.T) {
	h := newHostileTarget(t)
	snapshot := goleak.IgnoreCurrent()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h.attack(t, append([]byte{0xff, 0xff, 0xff, 0xff}, "and a few bytes of the body"...), false)
	runtime.GC()
	runtime.ReadMemStats(&after)
	const slack = 8 << 20
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > slack {
		t.Errorf("the heap grew by %d bytes after a frame announcing 4 GiB", grew)
	}
	// TotalAlloc counts what was allocated and freed again too.
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > slack {
		t.Errorf("%d bytes were allocated for a frame announcing 4 GiB", allocated)
	}
	noGoroutineLeftSince(t, snapshot)
	h.stillWorks(t)
}
