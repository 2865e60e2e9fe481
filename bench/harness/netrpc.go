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

// netrpcPair is an rpc.Client and the server connection it talks to.
type netrpcPair struct {
	client *rpc.Client
	server net.Conn
	wg     sync.WaitGroup // ServeConn
	once   sync.Once
}

// open serves srv on one end of a new loopback connection and makes a
// client of the other.
func (s netrpcSystem) open(srv *rpc.Server) (*netrpcPair, error) {
	client, server, err := loopback()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	p := &netrpcPair{client: rpc.NewClient(client), server: server}
	p.wg.Go(func() { srv.ServeConn(server) }) // returns when the connection closes
	return p, nil
}

// Close closes both ends of the connection and waits for the server.
func (p *netrpcPair) Close() error {
	p.once.Do(func() {
		p.client.Close()
		p.server.Close()
		p.wg.Wait()
	})
	return nil
}

// netrpcAsker calls NetRPCEcho.Echo.
type netrpcAsker struct {
	*netrpcPair
	callers []AskFunc
}

func (s netrpcSystem) NewAsker(callers int) (Asker, error) {
	srv := rpc.NewServer()
	if err := srv.Register(NetRPCEcho{}); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	p, err := s.open(srv)
	if err != nil {
		return nil, err
	}
	a := &netrpcAsker{netrpcPair: p}
	for range callers {
		var args, reply Payload // per caller, reused by each call
		a.callers = append(a.callers, func(req []byte) ([]byte, error) {
			args.Data = req
			err := p.client.Call("NetRPCEcho.Echo", &args, &reply)
			return reply.Data, err
		})
	}
	return a, nil
}

func (a *netrpcAsker) Callers() []AskFunc { return a.callers }

func (s netrpcSystem) NewSender() (Sender, error) {
	return nil, fmt.Errorf("%s: one-way messages: %w", s.Name(), errors.ErrUnsupported)
}

// netrpcBulk is the bulk receiver of the net/rpc system, registered as
// NetRPCBulk: Take calls its function and drops the payload.
type netrpcBulk struct{ onBulk func() }

// Take receives one bulk message.
func (b netrpcBulk) Take(_ *Payload, _ *bool) error {
	b.onBulk()
	return nil
}

// netrpcBulkAsker calls NetRPCEcho.Echo and NetRPCBulk.Take on one
// client: net/rpc has no one-way messages, so each bulk message is a call
// whose empty reply SendBulk waits for.
type netrpcBulkAsker struct {
	*netrpcPair
	args, reply Payload // Ask's
}

func (s netrpcSystem) NewBulkAsker(onBulk func()) (BulkAsker, error) {
	srv := rpc.NewServer()
	if err := srv.Register(NetRPCEcho{}); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	if err := srv.RegisterName("NetRPCBulk", netrpcBulk{onBulk}); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	p, err := s.open(srv)
	if err != nil {
		return nil, err
	}
	return &netrpcBulkAsker{netrpcPair: p}, nil
}

func (a *netrpcBulkAsker) Ask(req []byte) ([]byte, error) {
	a.args.Data = req
	err := a.client.Call("NetRPCEcho.Echo", &a.args, &a.reply)
	return a.reply.Data, err
}

func (a *netrpcBulkAsker) SendBulk(msg []byte) error {
	var ok bool
	return a.client.Call("NetRPCBulk.Take", &Payload{Data: msg}, &ok)
}

func (s netrpcSystem) NewSlowSender(func()) (SlowSender, error) {
	return nil, fmt.Errorf("%s: one-way messages: %w", s.Name(), errors.ErrUnsupported)
}

func (s netrpcSystem) NewStreamer() (Streamer, error) {
	return nil, fmt.Errorf("%s: streams: %w", s.Name(), errors.ErrUnsupported)
}
