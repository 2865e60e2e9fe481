package quic_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	quicgo "github.com/quic-go/quic-go"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/quic"
)

// relay is a man in the middle that terminates TLS: it accepts QUIC
// connections with a certificate of its own (which zero Options do not
// check), dials target for each, and copies the frame stream both ways.
type relay struct {
	ln   *quicgo.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	open []*quicgo.Conn
}

func startRelay(t *testing.T, target string) *relay {
	t.Helper()
	cfg, err := quic.SelfSignedTLS()
	if err != nil {
		t.Fatal(err)
	}
	cfg.ClientAuth, cfg.NextProtos = tls.NoClientCert, []string{quic.ALPN}
	ln, err := quicgo.ListenAddr("127.0.0.1:0", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln}
	r.wg.Go(func() {
		for {
			a, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			r.wg.Go(func() { r.pipe(a, target) })
		}
	})
	t.Cleanup(r.close)
	return r
}

func (r *relay) track(c *quicgo.Conn) {
	r.mu.Lock()
	r.open = append(r.open, c)
	r.mu.Unlock()
}

// pipe connects the accepted connection a to target and copies a's first
// stream to a stream of the new connection and back.
func (r *relay) pipe(a *quicgo.Conn, target string) {
	r.track(a)
	ctx := a.Context()
	b, err := quicgo.DialAddr(ctx, target, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{quic.ALPN}}, nil)
	if err != nil {
		a.CloseWithError(0, "")
		return
	}
	r.track(b)
	sa, err := a.AcceptStream(ctx)
	if err != nil {
		return
	}
	sb, err := b.OpenStreamSync(ctx)
	if err != nil {
		return
	}
	var copies sync.WaitGroup
	copies.Go(func() { io.Copy(sb, sa); sb.Close() })
	copies.Go(func() { io.Copy(sa, sb); sa.Close() })
	copies.Wait()
	a.CloseWithError(0, "")
	b.CloseWithError(0, "")
}

func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) close() {
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.open {
		c.CloseWithError(0, "")
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// TestARelayThatTerminatesTLSFailsTheSecretsProof checks channel binding:
// with QUIC's zero Options (no certificate check) and a shared secret, a
// relay that terminates TLS and passes every byte on fails the handshake
// with ErrUnauthenticated, because each side's proof covers its own TLS
// session. Without a secret the same relay connects, which shows that it
// relays faithfully.
func TestARelayThatTerminatesTLSFailsTheSecretsProof(t *testing.T) {
	for _, secret := range []string{"", "s3cret"} {
		srv := startEnv(t, nil, core.Config{Name: "srv", Listen: "quic://127.0.0.1:0", Secret: []byte(secret)})
		mustRegister(t, srv, "echo", echoEndpoint())
		r := startRelay(t, strings.TrimPrefix(srv.Address(), "quic://"))
		cli := startEnv(t, nil, core.Config{Name: "cli", Secret: []byte(secret)})
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		_, err := cli.Lookup(ctx, "quic://"+r.addr()+"/echo")
		cancel()
		switch {
		case secret == "" && err != nil:
			t.Fatalf("without a secret, through the relay: %v; want the lookup to succeed", err)
		case secret != "" && !errors.Is(err, core.ErrUnauthenticated):
			t.Fatalf("with a secret, through a relay that terminates TLS: %v; want ErrUnauthenticated", err)
		case secret != "" && !strings.Contains(err.Error(), "terminates TLS"):
			t.Errorf("the error %q does not say that something may terminate TLS", err)
		}
	}
}
