package quic_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/quic"
)

// stillServes checks that env answers a proper client.
func stillServes(t *testing.T, env *core.Env) {
	t.Helper()
	client := startEnv(t, nil, core.Config{Name: "proper"})
	if v, err := askWithin(t, mustLookup(t, client, env.Address()+"/echo"), "hi"); err != nil {
		t.Fatalf("ask after the hostile peer: %v, %v", v, err)
	}
}

func TestMalformedStreamsCloseOnlyTheirConnection(t *testing.T) {
	env := startEnv(t, nil, core.Config{Name: "target", Listen: "quic://127.0.0.1:0", HandshakeTimeout: time.Second})
	mustRegister(t, env, "echo", echoEndpoint())
	addr := strings.TrimPrefix(env.Address(), "quic://")
	for _, tc := range []struct {
		name  string
		bytes []byte
		fin   bool
	}{
		{"garbage", []byte("\x00\x00\x00\x10this is no cbor!"), true},
		{"a 4 GiB length", []byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3}, false},
		{"a length over the frame limit", []byte{0, 0x20, 0, 0}, false},
		{"a truncated frame", []byte{0, 0, 0, 100, 1, 2, 3}, true},
		{"an empty frame", []byte{0, 0, 0, 0}, false},
		{"random bytes", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			qc := rawConn(t, addr)
			s := rawStream(t, qc, tc.bytes)
			if tc.fin {
				s.Close()
			}
			awaitClosed(t, qc.Context().Done(), "the env to close the hostile connection")
			var ae *quicgo.ApplicationError
			if err := context.Cause(qc.Context()); !errors.As(err, &ae) {
				t.Logf("connection closed with %v", err)
			}
			stillServes(t, env)
		})
	}
}

func TestAPeerThatNeverFinishesTheHandshakeLeaksNothing(t *testing.T) {
	tr := quic.New(quic.Options{Logger: discardLog, HandshakeTimeout: 200 * time.Millisecond})
	env := startEnv(t, tr, core.Config{Name: "target", Listen: "quic://127.0.0.1:0"})
	mustRegister(t, env, "echo", echoEndpoint())
	addr := strings.TrimPrefix(env.Address(), "quic://")
	uc, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	// A datagram shaped like a QUIC Initial (long header, version 1) with
	// garbage inside, and a few of plain garbage.
	initial := make([]byte, 1200)
	initial[0] = 0xc0
	copy(initial[1:], []byte{0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0})
	for _, p := range [][]byte{initial, []byte("hello?"), make([]byte, 1500)} {
		if _, err := uc.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	stillServes(t, env)
	// goleak (TestMain) checks that nothing is left behind.
}
