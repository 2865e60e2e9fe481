package conformance

import (
	"testing"

	"go.uber.org/goleak"
)

// Run runs the whole suite against the transport f describes, one
// subtest per behaviour. It needs no help from the transport beyond
// core.Transport: connection loss is simulated by closing the transport's
// own connections.
//
// After the last subtest, Run fails t if a goroutine that started while
// it ran is still running (go.uber.org/goleak): every case shuts its envs
// down and closes its listeners and connections, so what is left was
// leaked by the transport (or core). This assumes nothing else starts
// goroutines while Run runs: do not call t.Parallel in the test that
// calls Run, nor run Run in parallel with another test of the package.
func Run(t *testing.T, f Factory) {
	if f.NewTransport == nil || f.ListenURI == nil {
		t.Fatal("conformance.Run: Factory.NewTransport and Factory.ListenURI are required")
	}
	before := goleak.IgnoreCurrent()
	for _, group := range groups {
		t.Run(group.name, func(t *testing.T) {
			for _, c := range group.cases {
				t.Run(c.name, func(t *testing.T) {
					c.run(t, newHarness(t, f))
				})
			}
		})
	}
	if err := goleak.Find(before); err != nil {
		t.Errorf("goroutines still running after the suite (every case shut its envs down and closed its connections): %v", err)
	}
}

type testCase struct {
	name string
	run  func(t *testing.T, h *harness)
}

type group struct {
	name  string
	cases []testCase
}

var groups = []group{
	{"Conn", connCases},
	{"Delivery", deliveryCases},
	{"Payload", payloadCases},
	{"Volume", volumeCases},
	{"Lifecycle", lifecycleCases},
	{"Ask", askCases},
	{"NotFound", notFoundCases},
	{"Refs", refCases},
	{"Types", typeCases},
	{"Limits", limitCases},
	{"Secret", secretCases},
	{"Network", networkCases},
	{"ClientPeers", clientPeerCases},
	{"Cut", cutCases},
	{"Shutdown", shutdownCases},
	{"Pressure", pressureCases},
	{"Order", sendThenAskCases},
	{"Streams", streamCases},
	{"Files", fileCases},
	{"Interceptors", interceptCases},
}
