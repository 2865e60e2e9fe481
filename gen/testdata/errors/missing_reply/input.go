package p

//rpcgen:ask Driver reply=Nope
type Ping struct{}

//rpcgen:ask Driver
type Pong struct{}

//rpcgen:ask Driver reply=
type Pang struct{}

//rpcgen:ask Driver reply=fmt.Stringer
type Pung struct{}
