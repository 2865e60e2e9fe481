package quic_test

import (
	"context"
	"sync"
	"testing"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/quic"
	"github.com/rpcenv/rpcenv/transports/tcp"
)

// BenchPayload is the message of every benchmark, QUIC and TCP alike: 64
// bytes of data.
type BenchPayload struct{ Data []byte }

func init() { core.RegisterMessage[BenchPayload]("quictest.BenchPayload") }

func newPayload() BenchPayload { return BenchPayload{Data: make([]byte, 64)} }

// benchAskers is the number of concurrent askers of the *32 benchmarks.
const benchAskers = 32

// benchTransports are the transports each benchmark runs over, in the
// same run, so that their ratio means something.
var benchTransports = []struct {
	name   string
	new    func() core.Transport
	listen string
}{
	{"QUIC", func() core.Transport { return quic.New(quic.Options{Logger: discardLog}) }, "quic://127.0.0.1:0"},
	{"TCP", func() core.Transport { return tcp.New(tcp.Options{}) }, "tcp://127.0.0.1:0"},
}

// benchEnvs returns a client-mode env's ref to the endpoint ep of a
// listening env, over one connection (opened by the Lookup).
func benchEnvs(b *testing.B, tr core.Transport, listen string, ep core.Endpoint, opts ...core.EndpointOption) *core.Ref {
	b.Helper()
	server := startEnv(b, tr, core.Config{Name: "server", Listen: listen, Logger: discardLog})
	if _, err := server.Register("ep", ep, opts...); err != nil {
		b.Fatal(err)
	}
	client := startEnv(b, tr, core.Config{Name: "client", Logger: discardLog})
	return mustLookup(b, client, server.Address()+"/ep")
}

// BenchmarkAsk is an ask round trip with one asker, between two envs over
// loopback.
func BenchmarkAsk(b *testing.B) {
	for _, tr := range benchTransports {
		b.Run(tr.name, func(b *testing.B) {
			b.ReportAllocs()
			r := benchEnvs(b, tr.new(), tr.listen, echoEndpoint())
			msg := newPayload()
			ctx := context.Background()
			for b.Loop() {
				if _, err := r.Ask(ctx, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAsk32 is Ask with 32 concurrent askers over one connection, to
// an endpoint that answers up to 32 at once.
func BenchmarkAsk32(b *testing.B) {
	for _, tr := range benchTransports {
		b.Run(tr.name, func(b *testing.B) {
			b.ReportAllocs()
			r := benchEnvs(b, tr.new(), tr.listen, echoEndpoint(), core.WithConcurrency(benchAskers))
			msg := newPayload()
			ctx := context.Background()
			var wg sync.WaitGroup
			errs := make(chan error, benchAskers)
			b.ResetTimer()
			for i := range benchAskers {
				n := b.N / benchAskers
				if i < b.N%benchAskers {
					n++
				}
				wg.Go(func() {
					for range n {
						if _, err := r.Ask(ctx, msg); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
		})
	}
}

// sendCounter counts the sends it receives and closes done at the want-th.
type sendCounter struct {
	n, want int
	done    chan struct{}
}

func (c *sendCounter) Receive(*core.Context, any) error {
	if c.n++; c.n == c.want {
		close(c.done)
	}
	return nil
}

// BenchmarkSend is one-way sends to an endpoint of another env, counted
// as received: the benchmark ends when the endpoint has received b.N.
func BenchmarkSend(b *testing.B) {
	for _, tr := range benchTransports {
		b.Run(tr.name, func(b *testing.B) {
			b.ReportAllocs()
			c := &sendCounter{want: b.N, done: make(chan struct{})}
			r := benchEnvs(b, tr.new(), tr.listen, c)
			msg := newPayload()
			b.ResetTimer()
			for range b.N {
				if err := r.Send(msg); err != nil {
					b.Fatal(err)
				}
			}
			awaitClosed(b, c.done, "the endpoint to count every send")
		})
	}
}
