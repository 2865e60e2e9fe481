package p

//rpcgen:send Driver
type Count int

//rpcgen:send Driver
type Handler interface{ Handle() }

//rpcgen:send Driver
type Alias = Ping

type Ping struct{}

//rpcgen:send Driver
type Box[T any] struct{ V T }
