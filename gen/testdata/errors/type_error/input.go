package p

//rpcgen:send Driver
type Ping struct {
	Field Undefined
}
