// Package sched is the messages of a toy cluster scheduler, annotated for
// rpcgen: a Driver endpoint that executors register with and stream task
// results to, and Executor endpoints that the driver launches tasks on.
// rpcgen_gen.go, generated from the directives below, holds the typed refs
// (DriverRef, ExecutorRef), the handler interfaces and the endpoint
// constructors.
package sched

import "github.com/rpcenv/rpcenv/core"

//go:generate go run github.com/rpcenv/rpcenv/cmd/rpcgen

// RegisterExecutor is asked by an executor when it starts.
//
//rpcgen:ask Driver reply=RegisteredExecutor
type RegisterExecutor struct {
	ExecutorID string
	Executor   *core.Ref
	Cores      int
}

// RegisteredExecutor answers RegisterExecutor.
type RegisteredExecutor struct{ Accepted bool }

// ReviveOffers asks the driver to offer resources again.
//
//rpcgen:send Driver
type ReviveOffers struct{}

// LaunchTask tells an executor to run a task.
//
//rpcgen:send Executor
type LaunchTask struct {
	TaskID  int64
	Payload []byte
}

// TaskResult opens a stream that carries a finished task's result, too
// large for a message, to the driver; the driver answers on the stream.
//
//rpcgen:stream Driver
type TaskResult struct{ TaskID int64 }
