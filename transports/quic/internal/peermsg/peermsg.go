// Package peermsg holds the messages that the two-process tests exchange
// with their child program (testdata/peer): both register them under the
// same wire names, which is what lets them cross between processes.
package peermsg

import "github.com/rpcenv/rpcenv/core"

// Echo is answered with itself by the child's "echo" endpoint, and is
// what the child sends to a ref it was given.
type Echo struct {
	N int
	S string
}

// Carry carries a ref. Asked to "echo", the child sends Echo{N, "back"} to
// Ref and replies with a Carry holding a ref to itself. Asked to "hang",
// the child sends Echo{N, "hanging"} to Ref and never answers.
type Carry struct {
	Ref *core.Ref
	N   int
}

func init() {
	core.RegisterMessage[Echo]("quictest.peer.Echo")
	core.RegisterMessage[Carry]("quictest.peer.Carry")
}
