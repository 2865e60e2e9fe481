package harness

import (
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"sync"
)

// NetRPCEcho is the net/rpc service of the net/rpc system (net/rpc
// serves only exported types).
type NetRPCEcho struct{}

// Echo replies with its argument.
func (NetRPCEcho) Echo(args *Payload, reply *Payload) error {
	*reply = *args
	return nil
}

// netrpcSystem is the standard library's net/rpc (gob) over one loopback
// TCP connection and one rpc.Client.
type netrpcSystem struct{}

func (netrpcSystem) Name() string { return "net/rpc" }
func (netrpcSystem) Group() Group { return GroupLibrary }

// netrpcAsker is an rpc.Client and the server connection it talks to.
type netrpcAsker struct {
	client  *rpc.Client
	server  net.Conn
	wg      sync.WaitGroup // ServeConn
	callers []AskFunc
	once    sync.Once
}

func (s netrpcSystem) NewAsker(callers int) (Asker, error) {
	srv := rpc.NewServer()
	if err := srv.Register(NetRPCEcho{}); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	client, server, err := loopback()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	a := &netrpcAsker{client: rpc.NewClient(client), server: server}
	a.wg.Go(func() { srv.ServeConn(server) }) // returns when the connection closes
	for range callers {
		var args, reply Payload // per caller, reused by each call
		a.callers = append(a.callers, func(req []byte) ([]byte, error) {
			args.Data = req
			err := a.client.Call("NetRPCEcho.Echo", &args, &reply)
			return reply.Data, err
		})
	}
	return a, nil
}

func (a *netrpcAsker) Callers() []AskFunc { return a.callers }

// Close closes both ends of the connection and waits for the server.
func (a *netrpcAsker) Close() error {
	a.once.Do(func() {
		a.client.Close()
		a.server.Close()
		a.wg.Wait()
	})
	return nil
}

func (s netrpcSystem) NewSender() (Sender, error) {
	return nil, fmt.Errorf("%s: one-way messages: %w", s.Name(), errors.ErrUnsupported)
}
