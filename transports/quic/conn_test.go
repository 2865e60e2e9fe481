package quic_test

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/internal/conntest"
	"github.com/rpcenv/rpcenv/transports/quic"
)

var factory = conntest.Factory{
	NewTransport: func(testing.TB) core.Transport { return quic.New(quic.Options{Logger: discardLog}) },
	Addr:         "127.0.0.1:0",
}

func TestConn(t *testing.T) { conntest.Run(t, factory) }

// listen returns a listener of a fresh transport whose connections read
// frames of at most limit bytes, closed when the test ends.
func listen(t *testing.T, opts quic.Options, limit int) core.Listener {
	t.Helper()
	opts.Logger = discardLog
	l, err := quic.New(opts).Listen("127.0.0.1:0", core.ConnOptions{MaxFrameSize: limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// rawConn opens a QUIC connection to addr as a hostile peer would: right
// ALPN, no certificate check, no transport behind it.
func rawConn(t *testing.T, addr string) *quicgo.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	qc, err := quicgo.DialAddr(ctx, addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{quic.ALPN}}, nil)
	if err != nil {
		t.Fatalf("raw dial %s: %v", addr, err)
	}
	t.Cleanup(func() { qc.CloseWithError(0, "") })
	return qc
}

// rawStream opens the connection's stream and writes the preamble and b.
func rawStream(t *testing.T, qc *quicgo.Conn, b []byte) *quicgo.Stream {
	t.Helper()
	s, err := qc.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(append([]byte("rpcenv/2"), b...)); err != nil {
		t.Fatal(err)
	}
	return s
}

// accept returns the listener's next connection, closed when the test
// ends.
func accept(t *testing.T, l core.Listener) core.Conn {
	t.Helper()
	type accepted struct {
		c   core.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() { // ends with Accept, at the latest when l closes
		c, err := l.Accept()
		ch <- accepted{c, err}
	}()
	a := await(t, ch, "Accept")
	if a.err != nil {
		t.Fatalf("Accept: %v", a.err)
	}
	t.Cleanup(func() { a.c.Close() })
	return a.c
}

// The listener refuses a frame over the limit on its length: the peer
// sends the length and nothing more, and ReadFrame fails at once instead
// of waiting for a body.
func TestAFrameOverTheLimitIsRefusedBeforeItsBodyArrives(t *testing.T) {
	l := listen(t, quic.Options{}, 1<<10)
	qc := rawConn(t, l.Addr())
	rawStream(t, qc, []byte{0, 0x10, 0, 0}) // 1 MiB announced, no body, no FIN
	c := accept(t, l)
	if _, err := c.ReadFrame(); !errors.Is(err, core.ErrMessageTooLarge) {
		t.Fatalf("ReadFrame: %v; want ErrMessageTooLarge", err)
	}
	c.Close()
	awaitClosed(t, qc.Context().Done(), "the listener to close the connection")
	var ae *quicgo.ApplicationError
	if err := context.Cause(qc.Context()); !errors.As(err, &ae) || ae.ErrorCode == 0 {
		t.Errorf("the connection was closed with %v; want an application error code", err)
	}
}

// A client that completes the QUIC handshake and then opens no stream
// does not hold Accept: the next client is accepted, and the silent one
// is dropped after HandshakeTimeout.
func TestASilentClientDoesNotHoldAccept(t *testing.T) {
	tr := quic.New(quic.Options{Logger: discardLog, HandshakeTimeout: 300 * time.Millisecond})
	l, err := tr.Listen("127.0.0.1:0", core.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	silent := rawConn(t, l.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	client, err := tr.Dial(ctx, l.Addr(), core.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server := accept(t, l)
	if err := client.WriteFrames([][]byte{[]byte("hello")}); err != nil {
		t.Fatal(err)
	}
	if f, err := server.ReadFrame(); err != nil || string(f) != "hello" {
		t.Fatalf("ReadFrame = %q, %v", f, err)
	}
	awaitClosed(t, silent.Context().Done(), "the silent client to be dropped")
}

func TestAStreamWithoutThePreambleIsRefused(t *testing.T) {
	l := listen(t, quic.Options{}, 0)
	qc := rawConn(t, l.Addr())
	s, err := qc.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	awaitClosed(t, qc.Context().Done(), "the listener to close the connection")
}

func TestAPeerOfTheFirstVersionIsRefused(t *testing.T) {
	l := listen(t, quic.Options{}, 0)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	qc, err := quicgo.DialAddr(ctx, l.Addr(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"rpcenv/1"}}, nil)
	if err == nil {
		qc.CloseWithError(0, "")
		t.Fatal("a dial with ALPN rpcenv/1 succeeded")
	}
}
