// Package msg is the protocol of the cluster example: the messages a
// Driver endpoint and its Executor endpoints exchange, annotated for
// rpcgen. rpcgen_gen.go, generated from the directives below, holds the
// typed refs (DriverRef, ExecutorRef), the handler interfaces and the
// endpoint constructors.
//
// The flow: an executor looks up the driver and asks RegisterExecutor
// with its own ref inside; the driver keeps that ref, sends LaunchTask
// through it while the executor has free cores, and the executor answers
// each task by asking StatusUpdate. Executors ask Heartbeat
// periodically; one the driver expired is told to register again. At
// the end the driver asks each executor StopExecutor and gets its
// statistics back.
package msg

import (
	"time"

	"github.com/rpcenv/rpcenv/core"
)

//go:generate go run github.com/rpcenv/rpcenv/cmd/rpcgen

// RegisterExecutor is asked by an executor when it starts. Executor is
// the executor's own ref: the driver reaches the executor back through it,
// also when the executor's env is in client mode (has no listener).
//
//rpcgen:ask Driver reply=Registered
type RegisterExecutor struct {
	ExecutorID string
	Executor   *core.Ref
	Cores      int
	// Heartbeat is how often the executor sends Heartbeat; the driver
	// expires it after three intervals without one.
	Heartbeat time.Duration
}

// Registered answers RegisterExecutor.
type Registered struct {
	Accepted bool
	Reason   string // why not, when not Accepted
	// File is the URI of the task code the executor fetches before it
	// runs a task (core.Env.Open), as a Spark executor fetches the jars;
	// FileSHA256 is its hash, which the executor checks.
	File       string
	FileSHA256 [32]byte
}

// StatusUpdate is asked by an executor when a task is done. Asking (not
// sending) it lets the executor measure the round trip.
//
//rpcgen:ask Driver reply=StatusAck
type StatusUpdate struct {
	ExecutorID string
	TaskID     int64
	Result     uint64
}

// StatusAck answers StatusUpdate.
type StatusAck struct {
	// Duplicate is set when the task's result was already counted (the
	// task was re-launched and another executor reported it first).
	Duplicate bool
	// Reregister is set when the driver does not know the executor any
	// more (see HeartbeatAck).
	Reregister bool
}

// Heartbeat tells the driver the executor is alive. It is an ask, so
// that the driver can answer an executor it no longer knows.
//
//rpcgen:ask Driver reply=HeartbeatAck
type Heartbeat struct {
	ExecutorID string
}

// HeartbeatAck answers Heartbeat.
type HeartbeatAck struct {
	// Reregister is set when the driver does not know the executor: it
	// expired it (no heartbeat for three intervals, during a partition
	// say) and re-launched its tasks elsewhere. The executor asks
	// RegisterExecutor again and gets work again, as a Spark executor
	// does on HeartbeatResponse(reregisterBlockManager = true).
	Reregister bool
}

// LaunchTask tells an executor to count the primes in [From, To).
//
//rpcgen:send Executor
type LaunchTask struct {
	TaskID   int64
	From, To uint64
	// List asks for the primes themselves instead of their count: the
	// executor opens a ListPrimes stream to the driver and writes each
	// prime as 8 little-endian bytes. The list is larger than a message
	// may be.
	List bool
}

// ListPrimes opens the stream that carries a listed task's primes to the
// driver; the driver answers on it with one byte, 1 when the list is
// right, and closes.
//
//rpcgen:stream Driver
type ListPrimes struct {
	ExecutorID string
	TaskID     int64
	Primes     int // how many follow, 8 bytes each
}

// StopExecutor is asked by the driver when the job is over; the executor
// answers with its statistics and then shuts down.
//
//rpcgen:ask Executor reply=ExecutorStats
type StopExecutor struct{}

// ExecutorStats answers StopExecutor.
type ExecutorStats struct {
	Tasks int
	// FetchNanos and FetchBytes are the time and size of the task code's
	// fetch (Registered.File).
	FetchNanos, FetchBytes int64
	// AskLatencies are the round trips of the executor's asks to the
	// driver (RegisterExecutor and every StatusUpdate), in nanoseconds.
	AskLatencies []int64
}
