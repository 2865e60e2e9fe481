package quic_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/quic"
)

// The byte streams of a QUIC connection (core.StreamConn): one QUIC
// stream per rpcenv stream, labeled with its ID.

// connPair returns both ends of a fresh connection, as StreamConns.
func connPair(t *testing.T, opts quic.Options) (dialed, accepted core.StreamConn) {
	t.Helper()
	opts.Logger = discardLog
	tr := quic.New(opts)
	l, err := tr.Listen("127.0.0.1:0", core.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	c, err := tr.Dial(ctx, l.Addr(), core.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(core.StreamConn), accept(t, l).(core.StreamConn)
}

type accepted struct {
	id  uint64
	bs  core.ByteStream
	err error
}

// acceptStream calls c.AcceptStream in a goroutine (which ends with the
// call, at the latest when c closes).
func acceptStream(c core.StreamConn) <-chan accepted {
	ch := make(chan accepted, 1)
	go func() {
		id, bs, err := c.AcceptStream()
		ch <- accepted{id, bs, err}
	}()
	return ch
}

func openStream(t *testing.T, c core.StreamConn, id uint64) core.ByteStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	bs, err := c.OpenStream(ctx, id)
	if err != nil {
		t.Fatalf("OpenStream(%d): %v", id, err)
	}
	return bs
}

func TestAByteStreamCarriesItsLabelItsBytesAndItsEnd(t *testing.T) {
	client, server := connPair(t, quic.Options{})
	incoming := acceptStream(server)
	out := openStream(t, client, 1<<40+7)
	if _, err := out.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := out.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	a := await(t, incoming, "AcceptStream")
	if a.err != nil || a.id != 1<<40+7 {
		t.Fatalf("AcceptStream = %d, %v; want the label %d", a.id, a.err, uint64(1<<40+7))
	}
	if got, err := io.ReadAll(a.bs); err != nil || string(got) != "hello" {
		t.Fatalf("the accepting side read %q, %v; want \"hello\" then EOF", got, err)
	}
	if _, err := a.bs.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	a.bs.CloseWrite()
	if got, err := io.ReadAll(out); err != nil || string(got) != "world" {
		t.Fatalf("the opening side read %q, %v; want \"world\" then EOF", got, err)
	}
}

func TestAByteStreamsCodesReachThePeer(t *testing.T) {
	client, server := connPair(t, quic.Options{})
	incoming := acceptStream(server)
	out := openStream(t, client, 1)
	out.Write([]byte("x")) // announces the stream
	in := await(t, incoming, "AcceptStream").bs

	// StopReading: the writer's Write fails with the code, however much
	// it writes (the reader's window bounds it before the code arrives).
	in.StopReading(5)
	var err error
	chunk := make([]byte, 16<<10)
	for range 1024 {
		if _, err = out.Write(chunk); err != nil {
			break
		}
	}
	var be *core.ByteStreamError
	if !errors.As(err, &be) || be.Code != 5 {
		t.Fatalf("Write after the peer's StopReading(5): %v; want a *core.ByteStreamError with code 5", err)
	}
	if err := out.CloseWrite(); !errors.As(err, &be) || be.Code != 5 {
		t.Errorf("CloseWrite after the peer's StopReading(5): %v; want its code", err)
	}

	// Abort: the peer's Read fails with the code, not io.EOF.
	incoming = acceptStream(server)
	out = openStream(t, client, 2)
	out.Write([]byte("y"))
	in = await(t, incoming, "AcceptStream").bs
	out.Abort(9)
	buf := make([]byte, 8)
	for err = nil; err == nil; {
		_, err = in.Read(buf) // "y" may come first
	}
	if !errors.As(err, &be) || be.Code != 9 {
		t.Fatalf("Read after the peer's Abort(9): %v; want a *core.ByteStreamError with code 9", err)
	}
}

// A stream whose label does not come within HandshakeTimeout is aborted,
// and AcceptStream goes on to the next one.
func TestAByteStreamWithoutItsLabelIsAbortedAndSkipped(t *testing.T) {
	l := listen(t, quic.Options{HandshakeTimeout: 200 * time.Millisecond}, 0)
	qc := rawConn(t, l.Addr())
	rawStream(t, qc, nil)
	server := accept(t, l).(core.StreamConn)
	short, err := qc.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	short.Write([]byte{0, 0, 1}) // 3 bytes of an 8-byte label
	labeled, err := qc.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	labeled.Write([]byte{0, 0, 0, 0, 0, 0, 0, 42, 'o', 'k'})
	a := await(t, acceptStream(server), "AcceptStream")
	if a.err != nil || a.id != 42 {
		t.Fatalf("AcceptStream = %d, %v; want the labeled stream, 42", a.id, a.err)
	}
	short.SetReadDeadline(time.Now().Add(testWait))
	_, err = short.Read(make([]byte, 1))
	var se *quicgo.StreamError
	if !errors.As(err, &se) || !se.Remote {
		t.Fatalf("the unlabeled stream's Read: %v; want a reset by the listener", err)
	}
}

// The listener accepts the frame stream and 2 × core.MaxStreamsPerConn
// byte streams at once, and no unidirectional stream.
func TestAPeerCannotOpenMoreStreamsThanTheLimit(t *testing.T) {
	l := listen(t, quic.Options{}, 0)
	qc := rawConn(t, l.Addr())
	rawStream(t, qc, nil)
	accept(t, l)
	var sl *quicgo.StreamLimitReachedError
	if _, err := qc.OpenUniStream(); !errors.As(err, &sl) {
		t.Fatalf("OpenUniStream: %v; want StreamLimitReachedError", err)
	}
	for i := range 2 * core.MaxStreamsPerConn {
		if _, err := qc.OpenStream(); err != nil {
			t.Fatalf("byte stream %d: %v", i+1, err)
		}
	}
	if _, err := qc.OpenStream(); !errors.As(err, &sl) {
		t.Fatalf("one stream more: %v; want StreamLimitReachedError", err)
	}
}

func TestAcceptStreamEndsWhenTheConnectionCloses(t *testing.T) {
	client, server := connPair(t, quic.Options{})
	incoming := acceptStream(server)
	client.Close()
	if a := await(t, incoming, "AcceptStream to end"); !errors.Is(a.err, net.ErrClosed) {
		t.Fatalf("AcceptStream after the peer closed: %v; want net.ErrClosed", a.err)
	}
	incoming = acceptStream(client)
	if a := await(t, incoming, "AcceptStream to end"); !errors.Is(a.err, net.ErrClosed) {
		t.Fatalf("AcceptStream after Close: %v; want net.ErrClosed", a.err)
	}
}

// Envs whose peer misuses byte streams: a wrapping transport makes the
// dialing env hide them (it then sends stream frames), lose the frames
// that carry an abort's reason, or label its byte streams wrongly.

type misuse struct {
	core.Transport
	hide, dropResets, mislabel, failCloseWrite bool
}

func (m *misuse) Dial(ctx context.Context, addr string, opts core.ConnOptions) (core.Conn, error) {
	c, err := m.Transport.Dial(ctx, addr, opts)
	if err != nil {
		return nil, err
	}
	plain := &misusedConn{Conn: c, m: m}
	if m.hide {
		return plain, nil
	}
	return &misusedStreamConn{misusedConn: plain, sc: c.(core.StreamConn)}, nil
}

type misusedConn struct {
	core.Conn
	m *misuse
}

func (c *misusedConn) WriteFrames(frames [][]byte) error {
	if c.m.dropResets {
		kept := make([][]byte, 0, len(frames))
		for _, f := range frames {
			if len(f) > 2 && f[1] == 0x18 && f[2] == 24 { // kind 24: a stream reset
				continue
			}
			kept = append(kept, f)
		}
		frames = kept
	}
	return c.Conn.WriteFrames(frames)
}

type misusedStreamConn struct {
	*misusedConn
	sc core.StreamConn
}

func (c *misusedStreamConn) OpenStream(ctx context.Context, id uint64) (core.ByteStream, error) {
	if c.m.mislabel {
		id += 1 << 40
	}
	bs, err := c.sc.OpenStream(ctx, id)
	if err == nil && c.m.failCloseWrite {
		bs = closeWriteFails{bs}
	}
	return bs, err
}

// closeWriteFails is a byte stream whose CloseWrite fails locally, as a
// transport's might, without telling the peer anything.
type closeWriteFails struct{ core.ByteStream }

func (closeWriteFails) CloseWrite() error { return errors.New("injected CloseWrite failure") }

func (c *misusedStreamConn) AcceptStream() (uint64, core.ByteStream, error) {
	return c.sc.AcceptStream()
}

// handlerStreams is a StreamHandler that hands over the streams it gets.
type handlerStreams chan *core.Stream

func (h handlerStreams) Receive(c *core.Context, msg any) error { return nil }

func (h handlerStreams) ReceiveStream(c *core.Context, msg any, s *core.Stream) error {
	h <- s
	return nil
}

// misusedPair starts a listening env and a client-mode env that dials it
// through m, and opens a stream from the client to the listener.
func misusedPair(t *testing.T, m *misuse) (opener, accepted *core.Stream, server *core.Env) {
	t.Helper()
	cfg := core.Config{HandshakeTimeout: 300 * time.Millisecond}
	cfg.Name, cfg.Listen = "server", "quic://127.0.0.1:0"
	server = startEnv(t, nil, cfg)
	streams := make(handlerStreams, 1)
	mustRegister(t, server, "sink", streams)
	mustRegister(t, server, "echo", echoEndpoint())
	m.Transport = quic.New(quic.Options{Logger: discardLog})
	cfg.Name, cfg.Listen = "client", ""
	client := startEnv(t, m, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	s, err := mustLookup(t, client, server.Address()+"/sink").OpenStream(ctx, "open")
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, await(t, (<-chan *core.Stream)(streams), "the stream to reach the handler"), server
}

// readErr reads s until it fails.
func readErr(s *core.Stream) error {
	_, err := io.Copy(io.Discard, s)
	if err == nil {
		return io.EOF // io.Copy reports a clean end as nil
	}
	return err
}

func TestAnAbortWhoseReasonIsLostStillFailsThePeer(t *testing.T) {
	opener, accepted, _ := misusedPair(t, &misuse{dropResets: true})
	// A byte first, so that the byte stream has reached the handler's side.
	if _, err := opener.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(accepted, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	opener.CloseWithError(errors.New("boom"))
	err := readErr(accepted)
	var re *core.RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("Read after an abort whose reason was lost: %v; want a *core.RemoteError (and never io.EOF)", err)
	}
}

// A stream that fails on this side for a reason of its own (here its
// byte stream's CloseWrite) tells the peer why in a Stream reset before
// aborting the byte stream, as CloseWithError does: the peer's Read fails
// with that reason, not with "sent no reason" after a wait.
func TestALocalFailureSendsItsReasonToThePeer(t *testing.T) {
	opener, accepted, _ := misusedPair(t, &misuse{failCloseWrite: true})
	if _, err := opener.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(accepted, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if err := opener.CloseWrite(); err == nil {
		t.Fatal("CloseWrite succeeded; the injected failure should fail it")
	}
	err := readErr(accepted)
	var re *core.RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Message, "injected CloseWrite failure") {
		t.Fatalf("the peer's Read after the opener's stream failed: %v; want a *core.RemoteError carrying the failure", err)
	}
	if err := readErr(opener); err == nil || !strings.Contains(err.Error(), "injected CloseWrite failure") {
		t.Errorf("the opener's Read after its own failure: %v; want that failure", err)
	}
}

func TestAByteStreamLabeledForNoStreamIsRefusedAndTheStreamFails(t *testing.T) {
	opener, accepted, _ := misusedPair(t, &misuse{mislabel: true})
	if err := readErr(accepted); !errors.Is(err, core.ErrProtocol) {
		t.Errorf("the handler's Read when its byte stream never came: %v; want ErrProtocol", err)
	}
	if err := readErr(opener); !errors.Is(err, core.ErrProtocol) {
		t.Errorf("the opener's Read after its mislabeled byte stream: %v; want ErrProtocol, from the peer", err)
	}
}

func TestStreamFramesWhereByteStreamsAreExpectedCloseTheConnection(t *testing.T) {
	opener, accepted, server := misusedPair(t, &misuse{hide: true})
	opener.Write(bytes.Repeat([]byte("x"), 1024)) // a stream data frame
	if err := readErr(accepted); !errors.Is(err, core.ErrDisconnected) {
		t.Errorf("the handler's Read: %v; want ErrDisconnected", err)
	}
	if err := readErr(opener); !errors.Is(err, core.ErrDisconnected) {
		t.Errorf("the opener's Read: %v; want ErrDisconnected", err)
	}
	stillServes(t, server)
}
