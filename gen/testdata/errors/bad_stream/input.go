package p

//rpcgen:stream
type A struct{}

//rpcgen:stream Driver,Executor
type B struct{}

//rpcgen:stream Driver reply=Pong
type C struct{}

//rpcgen:stream Driver window=64
type D struct{}

//rpcgen:stream Driver Executor
type E struct{}

//rpcgen:stream driver
type F struct{}

type Pong struct{}
