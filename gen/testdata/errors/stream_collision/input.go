package p

//rpcgen:stream Driver
type Logs struct{}

//rpcgen:send Driver
type OpenLogs struct{}

//rpcgen:ask Driver reply=Pong
type OpenTail struct{}

//rpcgen:stream Driver
type Tail struct{}

//rpcgen:stream Driver
//rpcgen:send Driver
type Ping struct{}

//rpcgen:stream Driver
type Count int

//rpcgen:stream Driver
type upload struct{}

// Ref generates DriverRef.OpenRef, which collides with nothing.
//
//rpcgen:stream Driver
type Ref struct{}

// OpenLogs and Logs go to different endpoints here: no collision.
//
//rpcgen:stream Executor
type Pang struct{}

//rpcgen:send Executor
type OpenPung struct{}

//rpcgen:stream Monitor
type Pung struct{}

type Pong struct{}
