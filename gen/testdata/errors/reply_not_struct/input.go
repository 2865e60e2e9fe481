package p

//rpcgen:ask Driver reply=Count
type Ping struct{}

type Count int

//rpcgen:ask Driver reply=answer
type Pong struct{}

type answer struct{}

//rpcgen:ask Driver reply=Handle
type Pang struct{}

func Handle() {}

//rpcgen:ask Driver reply=Box
type Pung struct{}

type Box[T any] struct{ V T }
