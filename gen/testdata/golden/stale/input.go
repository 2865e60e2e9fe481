// Package stale has a previous output file that no longer compiles (it
// names a message type since removed) and declares the names being
// generated again: regenerating must ignore it.
package stale

import "github.com/rpcenv/rpcenv/core"

// Hello greets the driver with the sender's ref.
//
//rpcgen:send Driver
type Hello struct{ From *core.Ref }
