// Package conformance is the behaviour every rpcenv transport must show,
// as one function a transport's tests call.
//
// A transport author writes one test:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Factory{
//			NewTransport: func(t testing.TB) core.Transport { return mytransport.New(mytransport.Options{}) },
//			ListenURI:    func(t testing.TB) string { return "my://127.0.0.1:0" },
//		})
//	}
//
// Run creates envs on that transport and checks, as subtests whose names
// read as the specification, what package core promises: ordered
// delivery, asks and their failures, refs inside messages, client-mode
// envs, network events, authentication, size limits, timeouts and
// shutdown. Between the envs and the transport the suite puts a thin
// wrapper of its own, which lets it cut connections (as a failed network
// would) and inspect every frame, without the transport's help.
//
// The suite leaves leak checking to the caller: run it from a package
// whose TestMain calls goleak.VerifyTestMain.
package conformance
