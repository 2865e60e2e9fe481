package p

//rpcgen:send Driver
type Ref struct{}
