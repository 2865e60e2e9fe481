package inproc_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/rpcenv/rpcenv/conformance"
	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/inproc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var names atomic.Uint64

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Factory{
		NewTransport: func(testing.TB) core.Transport { return inproc.New() },
		ListenURI:    func(testing.TB) string { return fmt.Sprintf("inproc://env-%d", names.Add(1)) },
	})
}
