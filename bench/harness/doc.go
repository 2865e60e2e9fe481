// Package harness measures rpcenv beside gRPC-go, net/rpc and raw floors
// (a hand-written TCP protocol, a raw QUIC stream, Go channels) on the
// same workloads, in one process, and renders what it measured.
//
// It owns the systems under test (system.go: the interfaces and the
// list; rpcenv.go, grpc.go, netrpc.go, rawtcp.go, rawquic.go and chan.go:
// one file per kind), the cases (cases.go), the measurement engine
// (measure.go: calibration, rounds, medians; stress.go: the stress
// workloads, asks during bulk sends and the heap behind a slow receiver;
// stream.go: bulk data through one stream) and the
// rendering of results (report.go: markdown tables and targets; svg.go:
// the chart; region.go: updating the marked region of a markdown file).
// The report command (bench/cmd/report) and the testing.B benchmarks of
// this package are thin shells over it.
//
// It does not own rpcenv: it uses only the public API of the root module,
// and lives in a module of its own so that gRPC never enters rpcenv's
// dependencies.
package harness
