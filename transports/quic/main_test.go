package quic_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// quic-go logs once when the kernel gives it a smaller UDP receive
	// buffer than it asks for; that is no test failure (README).
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	if spec := os.Getenv(serverVar); spec != "" {
		os.Exit(serveChild(spec)) // the test binary run as a server by startServer
	}
	goleak.VerifyTestMain(m)
}
