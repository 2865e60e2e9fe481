package quic_test

import (
	"testing"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/internal/peertest"
	"github.com/rpcenv/rpcenv/transports/quic"
)

// The helpers of internal/peertest, under the names these tests use.

const testWait = peertest.Wait

var (
	mustRegister = peertest.MustRegister
	mustLookup   = peertest.MustLookup
	askWithin    = peertest.AskWithin
	echoEndpoint = peertest.EchoEndpoint
	awaitClosed  = peertest.AwaitClosed
	discardLog   = peertest.DiscardLog
)

// startEnv makes an env on tr (a fresh QUIC transport when nil), shut down
// when the test ends. cfg.Listen "" is client mode.
func startEnv(t testing.TB, tr core.Transport, cfg core.Config) *core.Env {
	t.Helper()
	if tr == nil {
		tr = quic.New(quic.Options{Logger: discardLog})
	}
	return peertest.StartEnv(t, tr, cfg)
}

// await waits for a value on ch, failing the test if none comes.
func await[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	return peertest.Await(t, ch, what)
}
