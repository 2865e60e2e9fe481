package core_test

import (
	"context"
	"fmt"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/inproc"
)

// Greet is a message; Greeting answers it.
type Greet struct{ Name string }
type Greeting struct{ Text string }

func init() {
	core.RegisterMessage[Greet]("example.Greet")
	core.RegisterMessage[Greeting]("example.Greeting")
}

// greeter is an endpoint: it answers Greet asks.
type greeter struct{}

func (greeter) Receive(c *core.Context, msg any) error {
	g := msg.(Greet)
	return c.Reply(Greeting{Text: "hello, " + g.Name})
}

// Two envs, one listening and one in client mode, exchange an ask.
func Example() {
	ns := inproc.New()
	server, _ := core.NewEnv(core.Config{Listen: "inproc://server", Transports: []core.Transport{ns}})
	defer server.Shutdown(context.Background())
	server.Register("greeter", greeter{})

	client, _ := core.NewEnv(core.Config{Transports: []core.Transport{ns}})
	defer client.Shutdown(context.Background())
	ref, err := client.Lookup(context.Background(), "inproc://server/greeter")
	if err != nil {
		panic(err)
	}
	reply, err := core.Ask[Greeting](context.Background(), ref, Greet{Name: "rpcenv"})
	fmt.Println(reply.Text, err)
	// Output: hello, rpcenv <nil>
}

// An env without transports delivers between its own endpoints, without
// encoding anything.
func ExampleEnv_Register() {
	env, _ := core.NewEnv(core.Config{Name: "local"})
	defer env.Shutdown(context.Background())
	ref, _ := env.Register("greeter", greeter{})
	reply, _ := ref.Ask(context.Background(), Greet{Name: "local"})
	fmt.Println(reply.(Greeting).Text)
	// Output: hello, local
}

// Sends are fire-and-forget; an endpoint that wants to know about
// failures implements ErrorHandler.
func ExampleRef_Send() {
	env, _ := core.NewEnv(core.Config{})
	defer env.Shutdown(context.Background())
	got := make(chan string, 1)
	ref, _ := env.Register("inbox", endpointFunc(func(c *core.Context, msg any) error {
		got <- msg.(string)
		return nil
	}))
	ref.Send("a string needs no registration")
	fmt.Println(<-got)
	// Output: a string needs no registration
}

// A registered struct type travels as itself; an unregistered one is
// refused at once, wherever the endpoint lives.
func ExampleRegisterMessage() {
	type Unknown struct{ X int }
	env, _ := core.NewEnv(core.Config{})
	defer env.Shutdown(context.Background())
	ref, _ := env.Register("greeter", greeter{})
	err := ref.Send(Unknown{X: 1})
	fmt.Println(err != nil)
	// Output: true
}

type endpointFunc func(c *core.Context, msg any) error

func (f endpointFunc) Receive(c *core.Context, msg any) error { return f(c, msg) }
