package conformance

import (
	"testing"
)

// Run runs the whole suite against the transport f describes, one
// subtest per behaviour. It needs no help from the transport beyond
// core.Transport: connection loss is simulated by closing the transport's
// own connections.
func Run(t *testing.T, f Factory) {
	if f.NewTransport == nil || f.ListenURI == nil {
		t.Fatal("conformance.Run: Factory.NewTransport and Factory.ListenURI are required")
	}
	for _, group := range groups {
		t.Run(group.name, func(t *testing.T) {
			for _, c := range group.cases {
				t.Run(c.name, func(t *testing.T) {
					c.run(t, newHarness(t, f))
				})
			}
		})
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
	{"Delivery", deliveryCases},
	{"Lifecycle", lifecycleCases},
	{"Ask", askCases},
	{"NotFound", notFoundCases},
	{"Refs", refCases},
	{"Types", typeCases},
	{"Limits", limitCases},
	{"Secret", secretCases},
	{"Network", networkCases},
	{"Shutdown", shutdownCases},
	{"Pressure", pressureCases},
	{"Order", sendThenAskCases},
}
