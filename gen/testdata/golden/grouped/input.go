// Package grouped covers the directive placements: grouped declarations,
// several directives on one type, one send to several endpoints, a struct
// declared through another named struct type, and no core import.
package grouped

type (
	// Ping is sent to every node kind.
	//
	//rpcgen:send Worker,Master,Monitor
	Ping struct{ Seq int }

	// Status is asked of a worker and of a master, and sent to a monitor.
	//
	//rpcgen:ask Worker reply=StatusReport
	//rpcgen:ask Master reply=StatusReport
	//rpcgen:send Monitor
	Status struct{}

	// StatusReport answers Status.
	StatusReport struct {
		Healthy bool
		Load    float64
	}
)

// shape is the fields of Shutdown.
type shape struct{ Graceful bool }

// Shutdown has a named struct type as its underlying type.
//
//rpcgen:send Worker
type Shutdown shape

// notAMessage carries no directive and is left alone.
type notAMessage struct{}

// Comments that merely mention rpcgen:send are not directives:
// rpcgen:send Nobody
var _ = notAMessage{}
