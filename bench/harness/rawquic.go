package harness

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/quic-go/quic-go"

	rpcquic "github.com/rpcenv/rpcenv/transports/quic"
)

// rawQUICSystem is the floor for QUIC: quic-go streams between a quic-go
// client and server in the process, over loopback UDP, with nothing on
// top: TLS 1.3 with a self-signed certificate (verified), quic-go's
// default configuration (the flow-control windows rpcenv's quic
// transport has too). It has the Stream workload only: it is there to
// show what rpcenv-quic's streams cost over QUIC's own.
type rawQUICSystem struct{}

func (rawQUICSystem) Name() string { return "raw-quic" }
func (rawQUICSystem) Group() Group { return GroupFloor }

// rawQUICALPN is the application protocol both sides offer.
const rawQUICALPN = "rpcenv-bench-raw"

// streamErrorCode is what a raw-quic server resets a stream with when
// it cannot serve it.
const streamErrorCode quic.StreamErrorCode = 1

func (s rawQUICSystem) unsupported(what string) error {
	return fmt.Errorf("%s: %s: %w (the QUIC floor measures streams only)", s.Name(), what, errors.ErrUnsupported)
}

func (s rawQUICSystem) NewAsker(int) (Asker, error) {
	return nil, s.unsupported("asks")
}

func (s rawQUICSystem) NewSender() (Sender, error) {
	return nil, s.unsupported("one-way messages")
}

func (s rawQUICSystem) NewBulkAsker(func()) (BulkAsker, error) {
	return nil, s.unsupported("asks during bulk sends")
}

func (s rawQUICSystem) NewSlowSender(func()) (SlowSender, error) {
	return nil, s.unsupported("one-way messages")
}

// quicStreamer is one QUIC connection, on which each Stream opens a
// stream that the server reads to its end and answers (sinkStream), one
// stream at a time. Each side has a quic.Transport of its own on a plain
// UDP socket, so that Close can end everything and wait for it.
type quicStreamer struct {
	serverUDP, clientUDP *net.UDPConn
	server, client       *quic.Transport
	ln                   *quic.Listener
	conn                 *quic.Conn         // the client's
	ctx                  context.Context    // of the server's accepts; canceled by Close
	cancel               context.CancelFunc //
	wg                   sync.WaitGroup     // serve
	once                 sync.Once
}

func (s rawQUICSystem) NewStreamer() (Streamer, error) {
	serverTLS, clientTLS, err := selfSignedTLS()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	q := &quicStreamer{}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	fail := func(err error) (Streamer, error) {
		q.Close()
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	loopback := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	if q.serverUDP, err = net.ListenUDP("udp", loopback); err != nil {
		return fail(err)
	}
	if q.clientUDP, err = net.ListenUDP("udp", loopback); err != nil {
		return fail(err)
	}
	q.server = &quic.Transport{Conn: q.serverUDP}
	q.client = &quic.Transport{Conn: q.clientUDP}
	if q.ln, err = q.server.Listen(serverTLS, nil); err != nil {
		return fail(err)
	}
	q.wg.Go(q.serve)
	ctx, cancel := context.WithTimeout(q.ctx, Timeout)
	defer cancel()
	if q.conn, err = q.client.Dial(ctx, q.serverUDP.LocalAddr(), clientTLS, nil); err != nil {
		return fail(err)
	}
	return q, nil
}

// serve accepts the connection and serves its streams one after another,
// until Close.
func (q *quicStreamer) serve() {
	conn, err := q.ln.Accept(q.ctx)
	if err != nil {
		return
	}
	defer conn.CloseWithError(0, "")
	for {
		st, err := conn.AcceptStream(q.ctx)
		if err != nil {
			return
		}
		if err := sinkStream(st); err != nil {
			st.CancelRead(streamErrorCode)
			st.CancelWrite(streamErrorCode)
			continue
		}
		st.Close() // the send direction: the client reads the end of the answer
	}
}

func (q *quicStreamer) Stream(chunk []byte, n int64) (int64, error) {
	ctx, cancel := context.WithTimeout(q.ctx, Timeout)
	defer cancel()
	st, err := q.conn.OpenStreamSync(ctx)
	if err != nil {
		return 0, err
	}
	if err := writeN(st, chunk, n); err != nil {
		st.CancelRead(streamErrorCode)
		return 0, err
	}
	if err := st.Close(); err != nil { // the send direction only
		return 0, err
	}
	return readAnswer(st)
}

// Close closes the client's connection, the listener and both transports,
// and waits for the server.
func (q *quicStreamer) Close() error {
	q.once.Do(func() {
		q.cancel()
		if q.conn != nil {
			q.conn.CloseWithError(0, "")
		}
		if q.ln != nil {
			q.ln.Close()
		}
		for _, tr := range []*quic.Transport{q.server, q.client} {
			if tr != nil {
				tr.Close() // closes its connections; not its UDP socket
			}
		}
		q.wg.Wait()
		for _, uc := range []*net.UDPConn{q.serverUDP, q.clientUDP} {
			if uc != nil {
				uc.Close()
			}
		}
	})
	return nil
}

// selfSignedTLS returns the TLS configs of a raw-quic server and client:
// rpcenv's own self-signed certificate for 127.0.0.1 (the same one its
// QUIC transport makes), verified by both sides.
func selfSignedTLS() (server, client *tls.Config, err error) {
	cfg, err := rpcquic.SelfSignedTLS("127.0.0.1")
	if err != nil {
		return nil, nil, err
	}
	cfg.NextProtos = []string{rawQUICALPN}
	client = cfg.Clone()
	client.ServerName = "127.0.0.1"
	return cfg, client, nil
}
