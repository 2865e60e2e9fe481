package p

//rpcgen:ask Driver reply:Pong
type Ping struct{}

//rpcgen:ask Driver rep=Pong
type Pong struct{}

//rpcgen:ask Driver reply=Pong reply=Pong
type Pang struct{}

//rpcgen:send Driver reply=Pong
type Pung struct{}
