package p

//rpcgen:send Driver
func Ping() {}

//rpcgen:send Driver
var x = 0

type Pong struct{} //rpcgen:send Driver

//rpcgen:send Driver
type (
	Pang struct{}
)

func f() {
	//rpcgen:send Driver
	type Local struct{}
	_ = Local{}
}
