package quic_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/quic"
)

// reloaded returns cfg's certificate as another process would load it:
// its key marshaled and parsed again into a new value.
func reloaded(t *testing.T, cfg *tls.Config) *tls.Config {
	t.Helper()
	cert := cfg.Certificates[0]
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: cert.Certificate, PrivateKey: priv}}}
}

func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	cfg, err := quic.SelfSignedTLS()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func resetKey(opts quic.Options) [32]byte {
	opts.Logger = discardLog
	return quic.ResetKey(quic.New(opts))
}

func TestTheResetKeyIsDerivedFromTheCertificate(t *testing.T) {
	cfg := selfSigned(t)
	key := resetKey(quic.Options{TLS: cfg})
	if again := resetKey(quic.Options{TLS: reloaded(t, cfg)}); again != key {
		t.Error("the same certificate, loaded again, gives another reset key")
	}
	if other := resetKey(quic.Options{TLS: selfSigned(t)}); other == key {
		t.Error("another certificate gives the same reset key")
	}
	if key == ([32]byte{}) {
		t.Error("the derived key is zero")
	}
}

func TestAnExplicitResetKeyWinsOverTheCertificate(t *testing.T) {
	explicit := bytes.Repeat([]byte{7}, 32)
	if got := resetKey(quic.Options{TLS: selfSigned(t), StatelessResetKey: explicit}); !bytes.Equal(got[:], explicit) {
		t.Errorf("reset key %x; want Options.StatelessResetKey %x", got, explicit)
	}
}

// Without a key or a certificate, each Transport has a key of its own.
func TestWithoutACertificateTheResetKeyIsRandom(t *testing.T) {
	if a, b := resetKey(quic.Options{}), resetKey(quic.Options{}); a == b || a == ([32]byte{}) {
		t.Errorf("two transports without TLS have the keys %x and %x; want two random keys", a, b)
	}
}

func TestAResetKeyOfTheWrongLengthFailsListen(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33} {
		tr := quic.New(quic.Options{Logger: discardLog, StatelessResetKey: make([]byte, n)})
		l, err := tr.Listen("127.0.0.1:0", core.ConnOptions{})
		if err == nil {
			l.Close()
			t.Fatalf("Listen with a %d-byte StatelessResetKey succeeded", n)
		}
		if !strings.Contains(err.Error(), "Options.StatelessResetKey") || !strings.Contains(err.Error(), "must be 32") {
			t.Errorf("Listen with a %d-byte key: %v; want an error naming Options.StatelessResetKey and its length", n, err)
		}
	}
}
