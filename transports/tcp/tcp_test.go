package tcp_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/rpcenv/rpcenv/conformance"
	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/tcp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Factory{
		NewTransport: func(testing.TB) core.Transport { return tcp.New(tcp.Options{}) },
		ListenURI:    func(testing.TB) string { return "tcp://127.0.0.1:0" },
	})
}
