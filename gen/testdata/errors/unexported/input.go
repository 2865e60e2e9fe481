package p

//rpcgen:send Driver
type ping struct{}

var _ = ping{}
