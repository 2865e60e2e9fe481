package tcp_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/tcp"
)

// Messages of the many-peers test.
type (
	// join registers a client's ref with the server.
	join struct{ Ref *core.Ref }
	// numbered is the server's N-th message to one client.
	numbered struct{ N int }
)

func init() {
	core.RegisterMessage[join]("tcptest.join")
	core.RegisterMessage[numbered]("tcptest.numbered")
}

// sink counts the numbered messages it receives and checks their order.
// It is called one message at a time, so needs no lock for n; err is read
// after its env shut down.
type sink struct {
	n    int
	want int
	err  error
	done chan struct{} // closed at the want-th message
}

func (s *sink) Receive(c *core.Context, msg any) error {
	m, ok := msg.(numbered)
	switch {
	case !ok:
		s.err = fmt.Errorf("got a %T", msg)
	case m.N != s.n:
		if s.err == nil {
			s.err = fmt.Errorf("message %d arrived as number %d", m.N, s.n)
		}
	}
	s.n++
	if s.n == s.want {
		close(s.done)
	} else if s.n > s.want && s.err == nil {
		s.err = fmt.Errorf("more than %d messages", s.want)
	}
	return nil
}

func TestTwoHundredClientModePeersEachGetTheirHundredMessagesInOrder(t *testing.T) {
	const clients, perClient = 200, 100
	tr := tcp.New(tcp.Options{}) // one transport value for all the envs
	server := startEnv(t, tr, core.Config{Name: "server", Listen: "tcp://127.0.0.1:0"})
	var mu sync.Mutex
	var joined []*core.Ref
	mustRegister(t, server, "registry", &testEndpoint{Handle: func(c *core.Context, msg any) error {
		mu.Lock()
		joined = append(joined, msg.(join).Ref)
		mu.Unlock()
		return c.Reply(true)
	}})

	envs := make([]*core.Env, clients)
	sinks := make([]*sink, clients)
	for i := range envs {
		cfg := core.Config{Name: fmt.Sprintf("client-%d", i), Transports: []core.Transport{tr}, Logger: newEnvLog(t)}
		e, err := core.NewEnv(cfg)
		if err != nil {
			t.Fatal(err)
		}
		envs[i] = e
		sinks[i] = &sink{want: perClient, done: make(chan struct{})}
	}
	t.Cleanup(func() { // shut the clients down together: one by one is slow
		var wg sync.WaitGroup
		for _, e := range envs {
			if e != nil {
				wg.Go(func() { shutdownEnv(t, e) })
			}
		}
		wg.Wait()
	})

	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, e := range envs {
		wg.Go(func() {
			self, err := e.Register("sink", sinks[i])
			if err == nil {
				var reg *core.Ref
				if reg, err = e.Lookup(t.Context(), server.Address()+"/registry"); err == nil {
					_, err = reg.Ask(t.Context(), join{Ref: self})
				}
			}
			if err != nil {
				errs <- fmt.Errorf("%s: %w", e.Name(), err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The handler's writes reach this goroutine through a TCP round trip,
	// which the race detector does not count as synchronization: read
	// joined under its lock.
	mu.Lock()
	refs := joined
	mu.Unlock()
	if len(refs) != clients {
		t.Fatalf("%d clients joined, want %d", len(refs), clients)
	}

	// The server reaches each client-mode env over the connection that
	// env opened.
	for _, r := range refs {
		wg.Go(func() {
			for n := range perClient {
				if err := r.Send(numbered{N: n}); err != nil {
					t.Errorf("Send %d to %s: %v", n, r, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i, s := range sinks {
		awaitClosed(t, s.done, fmt.Sprintf("client %d's %d messages", i, perClient))
	}
	if got := server.DeadLetters(); got != 0 {
		t.Errorf("the server counted %d dead letters", got)
	}
	for i, e := range envs {
		shutdownEnv(t, e) // after which the sink's fields are settled
		if s := sinks[i]; s.err != nil || s.n != perClient {
			t.Errorf("client %d: %d messages, error %v", i, s.n, s.err)
		}
	}
}
