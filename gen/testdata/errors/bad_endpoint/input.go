package p

//rpcgen:send driver
type Ping struct{}

//rpcgen:send Driver,,Dri-ver
type Pong struct{}

//rpcgen:ask Driver,Executor reply=Pong
type Pang struct{}

//rpcgen:send
type Pung struct{}

//rpcgen:send Driver, Executor
type Peng struct{}
