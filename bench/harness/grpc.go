package harness

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// rawCodec is a gRPC codec for messages that are already bytes (*[]byte),
// so that no protobuf cost is charged to gRPC: marshalling hands gRPC the
// slice itself, unmarshalling copies the received bytes once.
type rawCodec struct{}

// rawCodecName is rawCodec's name, the content-subtype the clients select.
const rawCodecName = "rawbytes"

func init() { encoding.RegisterCodecV2(rawCodec{}) }

func (rawCodec) Name() string { return rawCodecName }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawbytes: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

// Unmarshal copies data into *v, reusing its capacity: gRPC frees data
// when Unmarshal returns.
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawbytes: cannot unmarshal into %T", v)
	}
	n := data.Len()
	if cap(*b) < n {
		*b = make([]byte, n)
	}
	*b = (*b)[:n]
	data.CopyTo(*b)
	return nil
}

// The service, written by hand in place of protoc's output: Unary echoes
// one request, Echo echoes every message of a bidi stream, Count counts
// the messages of a client stream and answers with the count (8 bytes,
// big endian), calling the server's onMessage, if any, for each, and
// Drain answers a client stream with the count of its bytes (8 bytes,
// big endian).
const (
	grpcService = "rpcenv.bench.Bench"
	grpcUnary   = "/" + grpcService + "/Unary"
	grpcEcho    = "/" + grpcService + "/Echo"
	grpcCount   = "/" + grpcService + "/Count"
	grpcDrain   = "/" + grpcService + "/Drain"
)

var grpcDesc = grpc.ServiceDesc{
	ServiceName: grpcService,
	HandlerType: (*any)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Unary", Handler: grpcUnaryHandler}},
	Streams: []grpc.StreamDesc{
		{StreamName: "Echo", Handler: grpcEchoHandler, ServerStreams: true, ClientStreams: true},
		{StreamName: "Count", Handler: grpcCountHandler, ClientStreams: true},
		{StreamName: "Drain", Handler: grpcDrainHandler, ClientStreams: true},
	},
}

func grpcUnaryHandler(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	var b []byte
	if err := dec(&b); err != nil {
		return nil, err
	}
	return &b, nil
}

func grpcEchoHandler(_ any, s grpc.ServerStream) error {
	for {
		var b []byte // fresh each time: gRPC may still hold the last reply
		if err := s.RecvMsg(&b); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if err := s.SendMsg(&b); err != nil {
			return err
		}
	}
}

// grpcServer is the service's implementation: what Count calls for each
// message, or nil.
type grpcServer struct{ onMessage func() }

func grpcCountHandler(srv any, s grpc.ServerStream) error {
	onMessage := srv.(*grpcServer).onMessage
	var n uint64
	var b []byte
	for {
		if err := s.RecvMsg(&b); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		n++
		if onMessage != nil {
			onMessage()
		}
	}
	reply := binary.BigEndian.AppendUint64(nil, n)
	return s.SendMsg(&reply)
}

func grpcDrainHandler(_ any, s grpc.ServerStream) error {
	var n uint64
	var b []byte // reused: the codec copies each message into it
	for {
		if err := s.RecvMsg(&b); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		n += uint64(len(b))
	}
	reply := binary.BigEndian.AppendUint64(nil, n)
	return s.SendMsg(&reply)
}

// grpcSystem is gRPC-go over one loopback TCP connection, with unary calls
// (grpc-unary) or streams (grpc-stream).
type grpcSystem struct{ stream bool }

func (s grpcSystem) Name() string {
	if s.stream {
		return "grpc-stream"
	}
	return "grpc-unary"
}

func (grpcSystem) Group() Group { return GroupLibrary }

// grpcPair is a gRPC server and a client connection to it.
type grpcPair struct {
	server *grpc.Server
	conn   *grpc.ClientConn
	ctx    context.Context // of every call; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // Serve
	once   sync.Once
	err    error
}

// open starts a server whose Count calls onMessage (if not nil) for each
// message, with opts, and connects a client to it.
func (s grpcSystem) open(onMessage func(), opts ...grpc.ServerOption) (*grpcPair, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	p := &grpcPair{server: grpc.NewServer(append(opts, grpc.WaitForHandlers(true))...)}
	p.server.RegisterService(&grpcDesc, &grpcServer{onMessage: onMessage})
	p.wg.Go(func() { p.server.Serve(l) })
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.conn, err = grpc.NewClient("passthrough:///"+l.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.CallContentSubtype(rawCodecName)))
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	return p, nil
}

// Close cancels every call and stream in progress, closes the client
// connection, then stops the server and waits for its handlers.
func (p *grpcPair) Close() error {
	p.once.Do(func() {
		p.cancel()
		if p.conn != nil {
			p.err = p.conn.Close()
		}
		p.server.Stop()
		p.wg.Wait()
	})
	return p.err
}

// grpcAsker makes unary calls, or ping-pongs on one bidi stream per
// caller.
type grpcAsker struct {
	*grpcPair
	callers []AskFunc
}

func (s grpcSystem) NewAsker(callers int) (Asker, error) {
	p, err := s.open(nil)
	if err != nil {
		return nil, err
	}
	a := &grpcAsker{grpcPair: p}
	for range callers {
		call, err := s.caller(p)
		if err != nil {
			a.Close()
			return nil, err
		}
		a.callers = append(a.callers, call)
	}
	return a, nil
}

// caller returns an AskFunc that makes unary calls on p's connection, or
// ping-pongs on a bidi stream of its own.
func (s grpcSystem) caller(p *grpcPair) (AskFunc, error) {
	var box, reply []byte // per caller, so that passing &box does not allocate per call
	if !s.stream {
		return func(req []byte) ([]byte, error) {
			box = req
			err := p.conn.Invoke(p.ctx, grpcUnary, &box, &reply)
			return reply, err
		}, nil
	}
	st, err := p.conn.NewStream(p.ctx, &grpcDesc.Streams[0], grpcEcho)
	if err != nil {
		return nil, fmt.Errorf("%s: open stream: %w", s.Name(), err)
	}
	return func(req []byte) ([]byte, error) {
		box = req
		if err := st.SendMsg(&box); err != nil {
			return nil, err
		}
		err := st.RecvMsg(&reply)
		return reply, err
	}, nil
}

func (a *grpcAsker) Callers() []AskFunc { return a.callers }

// grpcSender sends each batch on one client-streaming call.
type grpcSender struct{ *grpcPair }

func (s grpcSystem) NewSender() (Sender, error) {
	if !s.stream {
		return nil, fmt.Errorf("%s: one-way messages: %w", s.Name(), errors.ErrUnsupported)
	}
	p, err := s.open(nil)
	if err != nil {
		return nil, err
	}
	return grpcSender{p}, nil
}

func (s grpcSender) SendN(msg []byte, n int) error {
	st, err := s.conn.NewStream(s.ctx, &grpcDesc.Streams[1], grpcCount)
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	for i := range n {
		if err := st.SendMsg(&msg); err != nil {
			return fmt.Errorf("send %d of %d: %w", i+1, n, err)
		}
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	var reply []byte
	if err := st.RecvMsg(&reply); err != nil {
		return fmt.Errorf("receive the count: %w", err)
	}
	if len(reply) != 8 || binary.BigEndian.Uint64(reply) != uint64(n) {
		return fmt.Errorf("the server counted %x, want %d", reply, n)
	}
	return nil
}

// grpcBulkAsker asks as grpcAsker does, and sends bulk on a Count stream,
// all on one ClientConn: one HTTP/2 connection.
type grpcBulkAsker struct {
	*grpcPair
	ask  AskFunc
	bulk grpc.ClientStream
}

// grpcMaxMessage is the largest message a bulk-ask server accepts (gRPC's
// default is 4 MiB); clients send any size by default.
const grpcMaxMessage = 1 << 30

func (s grpcSystem) NewBulkAsker(onBulk func()) (BulkAsker, error) {
	p, err := s.open(onBulk, grpc.MaxRecvMsgSize(grpcMaxMessage))
	if err != nil {
		return nil, err
	}
	a := &grpcBulkAsker{grpcPair: p}
	if a.ask, err = s.caller(p); err != nil {
		p.Close()
		return nil, err
	}
	if a.bulk, err = p.conn.NewStream(p.ctx, &grpcDesc.Streams[1], grpcCount); err != nil {
		p.Close()
		return nil, fmt.Errorf("%s: open stream: %w", s.Name(), err)
	}
	return a, nil
}

func (a *grpcBulkAsker) Ask(req []byte) ([]byte, error) { return a.ask(req) }
func (a *grpcBulkAsker) SendBulk(msg []byte) error      { return a.bulk.SendMsg(&msg) }

// grpcSlowSender sends on one Count stream, which Close cancels.
type grpcSlowSender struct {
	*grpcPair
	st  grpc.ClientStream
	box []byte // passing &box does not allocate per message
}

func (s grpcSystem) NewSlowSender(receive func()) (SlowSender, error) {
	if !s.stream {
		return nil, fmt.Errorf("%s: one-way messages: %w", s.Name(), errors.ErrUnsupported)
	}
	p, err := s.open(receive)
	if err != nil {
		return nil, err
	}
	st, err := p.conn.NewStream(p.ctx, &grpcDesc.Streams[1], grpcCount)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("%s: open stream: %w", s.Name(), err)
	}
	return &grpcSlowSender{grpcPair: p, st: st}, nil
}

func (s *grpcSlowSender) Send(msg []byte) error {
	s.box = msg
	return s.st.SendMsg(&s.box)
}

// grpcStreamer sends each stream's bytes as the messages of one Drain
// client stream, each a chunk, and takes the count (CloseAndRecv).
type grpcStreamer struct {
	*grpcPair
	box []byte // passing &box does not allocate per message
}

func (s grpcSystem) NewStreamer() (Streamer, error) {
	if !s.stream {
		return nil, fmt.Errorf("%s: streams: %w (grpc-stream is gRPC's client stream)", s.Name(), errors.ErrUnsupported)
	}
	p, err := s.open(nil)
	if err != nil {
		return nil, err
	}
	return &grpcStreamer{grpcPair: p}, nil
}

func (s *grpcStreamer) Stream(chunk []byte, n int64) (int64, error) {
	st, err := s.conn.NewStream(s.ctx, &grpcDesc.Streams[2], grpcDrain)
	if err != nil {
		return 0, fmt.Errorf("open stream: %w", err)
	}
	for sent := int64(0); sent < n; {
		s.box = chunk[:min(int64(len(chunk)), n-sent)]
		if err := st.SendMsg(&s.box); err != nil {
			return 0, fmt.Errorf("send at byte %d of %d: %w", sent, n, err)
		}
		sent += int64(len(s.box))
	}
	if err := st.CloseSend(); err != nil {
		return 0, err
	}
	var reply []byte
	if err := st.RecvMsg(&reply); err != nil {
		return 0, fmt.Errorf("receive the count: %w", err)
	}
	if len(reply) != answerSize {
		return 0, fmt.Errorf("the answer has %d bytes, want %d", len(reply), answerSize)
	}
	return int64(binary.BigEndian.Uint64(reply)), nil
}
