package tcp_test

import (
	"testing"

	"github.com/rpcenv/rpcenv/internal/peertest"
	"github.com/rpcenv/rpcenv/transports/tcp"
)

func TestTalksToAnotherProcessAndSeesItDieBySIGKILL(t *testing.T) {
	peertest.TestSIGKILL(t, "tcp", tcp.New(tcp.Options{}))
}

func TestAPeerThatStopsAnsweringIsDeclaredDeadAfterPeerTimeout(t *testing.T) {
	peertest.TestSIGSTOP(t, "tcp", tcp.New(tcp.Options{}))
}

func TestAListenerOutOfDescriptorsKeepsAccepting(t *testing.T) {
	peertest.TestEMFILE(t, "tcp", tcp.New(tcp.Options{}))
}

func TestThroughAFaultProxy(t *testing.T) {
	peertest.TestFaults(t, "tcp", tcp.New(tcp.Options{}))
}

func TestAStreamToAProcessKilledMidStreamFails(t *testing.T) {
	peertest.TestStreamSIGKILL(t, "tcp", tcp.New(tcp.Options{}))
}
