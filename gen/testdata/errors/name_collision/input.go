package p

//rpcgen:send Driver
type Ping struct{}

// DriverRef is the user's own.
type DriverRef struct{}

// LookupDriver is the user's own.
func LookupDriver() {}

var driverEndpoint = 0

var fmt = "taken"

//rpcgen:send A,ARef
type Pong struct{}

//rpcgen:send X,NewX
type Pung struct{}
