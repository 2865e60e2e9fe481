package tcp_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/rpcenv/rpcenv/conformance"
	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/tcp"
)

// testCluster writes a test cluster's PEM files and returns the mutual
// TLS config of each node.
func testCluster(t testing.TB, nodes ...string) map[string]*tls.Config {
	t.Helper()
	dir := t.TempDir()
	if err := writeTestCluster(dir, nodes...); err != nil {
		t.Fatal(err)
	}
	cfgs := map[string]*tls.Config{}
	for _, n := range nodes {
		cfg, err := clusterTLS(dir, n)
		if err != nil {
			t.Fatal(err)
		}
		cfgs[n] = cfg
	}
	return cfgs
}

func TestConformanceOverMutualTLS(t *testing.T) {
	cfg := testCluster(t, "node")["node"]
	conformance.Run(t, conformance.Factory{
		NewTransport: func(testing.TB) core.Transport { return tcp.New(tcp.Options{TLS: cfg}) },
		ListenURI:    func(testing.TB) string { return "tcp://127.0.0.1:0" },
	})
}

func TestTLSRefusesAnUntrustedServer(t *testing.T) {
	ours := testCluster(t, "client")["client"]
	theirs := testCluster(t, "server")["server"] // signed by another CA
	server := startEnv(t, tcp.New(tcp.Options{TLS: theirs}), core.Config{Name: "server", Listen: "tcp://127.0.0.1:0"})
	mustRegister(t, server, "echo", echoEndpoint())
	client := startEnv(t, tcp.New(tcp.Options{TLS: ours}), core.Config{Name: "client"})
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	_, err := client.Lookup(ctx, server.Address()+"/echo")
	if err == nil || !strings.Contains(err.Error(), "certificate") || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lookup of a server whose certificate we do not trust: %v; want an error about its certificate", err)
	}
	if !strings.Contains(err.Error(), server.Address()) && !strings.Contains(err.Error(), strings.TrimPrefix(server.Address(), "tcp://")) {
		t.Errorf("the error %q does not name the address %s", err, server.Address())
	}
}

func TestTLSRefusesAClientWithoutATrustedCertificate(t *testing.T) {
	cfgs := testCluster(t, "server", "client")
	server := startEnv(t, tcp.New(tcp.Options{TLS: cfgs["server"]}), core.Config{Name: "server", Listen: "tcp://127.0.0.1:0"})
	mustRegister(t, server, "echo", echoEndpoint())
	noCert := cfgs["client"].Clone()
	noCert.Certificates = nil // trusts the server, but cannot prove who it is
	client := startEnv(t, tcp.New(tcp.Options{TLS: noCert}), core.Config{Name: "client"})
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if _, err := client.Lookup(ctx, server.Address()+"/echo"); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lookup by a client without a certificate: %v; want a refusal", err)
	}
}

func TestSecretWorksOverTLS(t *testing.T) {
	cfgs := testCluster(t, "server", "client")
	server := startEnv(t, tcp.New(tcp.Options{TLS: cfgs["server"]}), core.Config{Name: "server", Listen: "tcp://127.0.0.1:0", Secret: []byte("shared secret")})
	mustRegister(t, server, "echo", echoEndpoint())
	tr := tcp.New(tcp.Options{TLS: cfgs["client"]})

	good := startEnv(t, tr, core.Config{Name: "good", Secret: []byte("shared secret")})
	r := mustLookup(t, good, server.Address()+"/echo")
	if v, err := askWithin(t, r, "hello"); err != nil || v != "hello" {
		t.Fatalf("Ask with the same secret over TLS = %v, %v", v, err)
	}

	bad := startEnv(t, tr, core.Config{Name: "bad", Secret: []byte("another secret")})
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if _, err := bad.Lookup(ctx, server.Address()+"/echo"); !errors.Is(err, core.ErrUnauthenticated) {
		t.Fatalf("Lookup with another secret over TLS: %v; want ErrUnauthenticated", err)
	}
}
