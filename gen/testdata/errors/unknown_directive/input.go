package p

//rpcgen:sned Driver
type Ping struct{}

//rpcgen:asks Driver
type Pong struct{}

//rpcgen:streams Driver
type Pang struct{}
