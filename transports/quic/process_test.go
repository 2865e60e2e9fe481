package quic_test

import (
	"testing"

	"github.com/rpcenv/rpcenv/internal/peertest"
	"github.com/rpcenv/rpcenv/transports/quic"
)

func TestTalksToAnotherProcessAndSeesItDieBySIGKILL(t *testing.T) {
	peertest.TestSIGKILL(t, "quic", quic.New(quic.Options{Logger: discardLog}))
}

func TestAPeerThatStopsAnsweringIsDeclaredDeadAfterPeerTimeout(t *testing.T) {
	peertest.TestSIGSTOP(t, "quic", quic.New(quic.Options{Logger: discardLog}))
}

func TestThroughAFaultProxy(t *testing.T) {
	peertest.TestFaults(t, "quic", quic.New(quic.Options{Logger: discardLog}))
}

func TestAStreamToAProcessKilledMidStreamFails(t *testing.T) {
	peertest.TestStreamSIGKILL(t, "quic", quic.New(quic.Options{Logger: discardLog}))
}
