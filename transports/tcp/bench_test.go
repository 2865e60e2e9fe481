package tcp_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/rpc"
	"sync"
	"testing"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/tcp"
)

// BenchPayload is the message of every benchmark, the baselines too: 64 bytes
// of data.
type BenchPayload struct{ Data []byte }

func init() { core.RegisterMessage[BenchPayload]("tcptest.BenchPayload") }

func newPayload() BenchPayload { return BenchPayload{Data: make([]byte, 64)} }

// benchAskers is the number of concurrent askers of the *32 benchmarks.
const benchAskers = 32

// loopbackPair returns both ends of a loopback TCP connection, closed
// when the benchmark ends.
func loopbackPair(b *testing.B) (client, server net.Conn) {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		b.Fatal("accept failed")
	}
	b.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

// BenchmarkRawTCPRoundTrip is the floor for an ask: a 64-byte request
// with a 4-byte length, and the same reply, over one loopback TCP
// connection, with no encoding and no allocation.
func BenchmarkRawTCPRoundTrip(b *testing.B) {
	b.ReportAllocs()
	client, server := loopbackPair(b)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { // echoes until the connection closes
		buf := make([]byte, 4+64)
		for {
			if _, err := io.ReadFull(server, buf[:4]); err != nil {
				return
			}
			n := binary.BigEndian.Uint32(buf)
			if _, err := io.ReadFull(server, buf[4:4+n]); err != nil {
				return
			}
			if _, err := server.Write(buf[:4+n]); err != nil {
				return
			}
		}
	})
	req := binary.BigEndian.AppendUint32(nil, 64)
	req = append(req, make([]byte, 64)...)
	rep := make([]byte, len(req))
	for b.Loop() {
		if _, err := client.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(client, rep); err != nil {
			b.Fatal(err)
		}
	}
	client.Close()
}

// BenchmarkRawTCPWrite is the floor for one-way sends: 64-byte frames
// with a 4-byte length written through a bufio.Writer to a reader that
// counts them. The benchmark ends when the reader has counted b.N.
func BenchmarkRawTCPWrite(b *testing.B) {
	b.ReportAllocs()
	client, server := loopbackPair(b)
	counted := make(chan int, 1)
	n := b.N
	go func() {
		r := bufio.NewReaderSize(server, 64<<10)
		buf := make([]byte, 4+64)
		i := 0
		for ; i < n; i++ {
			if _, err := io.ReadFull(r, buf[:4]); err != nil {
				break
			}
			if _, err := io.ReadFull(r, buf[4:4+binary.BigEndian.Uint32(buf)]); err != nil {
				break
			}
		}
		counted <- i
	}()
	w := bufio.NewWriterSize(client, 64<<10)
	frame := binary.BigEndian.AppendUint32(nil, 64)
	frame = append(frame, make([]byte, 64)...)
	b.ResetTimer()
	for range n {
		w.Write(frame)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if got := <-counted; got != n {
		b.Fatalf("the reader counted %d frames of %d", got, n)
	}
}

// EchoService is the net/rpc service of the baselines.
type EchoService struct{}

// Echo replies with its argument.
func (EchoService) Echo(args *BenchPayload, reply *BenchPayload) error {
	*reply = *args
	return nil
}

// netRPCClient serves EchoService with net/rpc on loopback and returns a client
// with one connection to it.
func netRPCClient(b *testing.B) *rpc.Client {
	b.Helper()
	srv := rpc.NewServer()
	if err := srv.Register(EchoService{}); err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	conns := make(chan net.Conn, 1)
	wg.Go(func() { // accepts one connection and serves it until it closes
		c, err := l.Accept()
		if err != nil {
			return
		}
		conns <- c
		srv.ServeConn(c)
	})
	client, err := rpc.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	sc := <-conns
	b.Cleanup(func() {
		client.Close()
		sc.Close()
		l.Close()
		wg.Wait()
	})
	return client
}

// BenchmarkNetRPCRoundTrip is the standard library's peer of TCPAsk:
// net/rpc (gob) over loopback, one caller.
func BenchmarkNetRPCRoundTrip(b *testing.B) {
	b.ReportAllocs()
	client := netRPCClient(b)
	args := newPayload()
	var reply BenchPayload
	for b.Loop() {
		if err := client.Call("EchoService.Echo", &args, &reply); err != nil {
			b.Fatal(err)
		}
	}
}

// runAskers splits b.N calls among benchAskers goroutines.
func runAskers(b *testing.B, call func() error) {
	b.Helper()
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
				if err := call(); err != nil {
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
}

// BenchmarkNetRPC32 is NetRPCRoundTrip with 32 concurrent callers on one
// connection.
func BenchmarkNetRPC32(b *testing.B) {
	b.ReportAllocs()
	client := netRPCClient(b)
	runAskers(b, func() error {
		args := newPayload()
		var reply BenchPayload
		return client.Call("EchoService.Echo", &args, &reply)
	})
}

// benchEnvs returns a client-mode env's ref to the endpoint ep of a
// listening env, over one connection (opened by the Lookup).
func benchEnvs(b *testing.B, ep core.Endpoint, opts ...core.EndpointOption) *core.Ref {
	b.Helper()
	tr := tcp.New(tcp.Options{})
	server := startEnv(b, tr, core.Config{Name: "server", Listen: "tcp://127.0.0.1:0", Logger: discardLog})
	if _, err := server.Register("ep", ep, opts...); err != nil {
		b.Fatal(err)
	}
	client := startEnv(b, tr, core.Config{Name: "client", Logger: discardLog})
	return mustLookup(b, client, server.Address()+"/ep")
}

// BenchmarkTCPAsk is an ask round trip with one asker, between two envs
// over loopback TCP.
func BenchmarkTCPAsk(b *testing.B) {
	b.ReportAllocs()
	r := benchEnvs(b, echoEndpoint())
	msg := newPayload()
	ctx := context.Background()
	for b.Loop() {
		if _, err := r.Ask(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTCPAsk32 is TCPAsk with 32 concurrent askers over one
// connection, to an endpoint that answers up to 32 at once.
func BenchmarkTCPAsk32(b *testing.B) {
	b.ReportAllocs()
	r := benchEnvs(b, echoEndpoint(), core.WithConcurrency(benchAskers))
	msg := newPayload()
	ctx := context.Background()
	runAskers(b, func() error {
		_, err := r.Ask(ctx, msg)
		return err
	})
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

// BenchmarkTCPSend is one-way sends to an endpoint of another env, over
// loopback TCP, counted as received: the benchmark ends when the
// endpoint has received b.N.
func BenchmarkTCPSend(b *testing.B) {
	b.ReportAllocs()
	c := &sendCounter{want: b.N, done: make(chan struct{})}
	r := benchEnvs(b, c)
	msg := newPayload()
	b.ResetTimer()
	for range b.N {
		if err := r.Send(msg); err != nil {
			b.Fatal(err)
		}
	}
	awaitClosed(b, c.done, "the endpoint to count every send")
}
