package quic_test

import (
	"testing"

	"github.com/rpcenv/rpcenv/conformance"
	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/quic"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Factory{
		NewTransport: func(testing.TB) core.Transport { return quic.New(quic.Options{}) },
		ListenURI:    func(testing.TB) string { return "quic://127.0.0.1:0" },
	})
}

// TestConformanceWithVerifiedTLS runs the suite again with mutual TLS
// from SelfSignedTLS: every env of a case shares the config.
func TestConformanceWithVerifiedTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("the suite already ran with the default TLS")
	}
	cfg, err := quic.SelfSignedTLS()
	if err != nil {
		t.Fatal(err)
	}
	conformance.Run(t, conformance.Factory{
		NewTransport: func(testing.TB) core.Transport {
			return quic.New(quic.Options{TLS: cfg})
		},
		ListenURI: func(testing.TB) string { return "quic://127.0.0.1:0" },
	})
}
