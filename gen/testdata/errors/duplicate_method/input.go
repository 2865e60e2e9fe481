package p

//rpcgen:send Driver
//rpcgen:send Driver
type Ping struct{}

//rpcgen:send Driver,Executor,Driver
type Pong struct{}

//rpcgen:send Driver
//rpcgen:ask Driver reply=Pong
type Pang struct{}
