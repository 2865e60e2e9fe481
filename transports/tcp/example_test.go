package tcp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/tcp"
)

// writeTestCluster makes the PEM files of a small test cluster in dir: a
// certificate authority (ca.pem; its key is not kept, so no more
// certificates can be signed) and, for each node, a certificate
// (NODE.pem) and its key (NODE-key.pem). Every node certificate is good
// for both ends of a connection (server and client authentication) at
// 127.0.0.1 and localhost, for one year. openssl can make the same files
// (see docs).
func writeTestCluster(dir string, nodes ...string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "rpcenv test cluster CA"},
		NotBefore:             now.Add(-time.Hour), // tolerate clocks a little behind
		NotAfter:              now.AddDate(1, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, "ca.pem"), "CERTIFICATE", caDER); err != nil {
		return err
	}
	for _, node := range nodes {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: node},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.AddDate(1, 0, 0),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
			DNSNames:     []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(filepath.Join(dir, node+".pem"), "CERTIFICATE", der); err != nil {
			return err
		}
		if err := writePEM(filepath.Join(dir, node+"-key.pem"), "PRIVATE KEY", keyDER); err != nil {
			return err
		}
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func writePEM(path, kind string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600)
}

// clusterTLS is the tls.Config of one node for mutual TLS: it presents
// the node's certificate on both sides of a connection, and trusts only
// certificates signed by the cluster's CA, on both sides too.
func clusterTLS(dir, node string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, node+".pem"), filepath.Join(dir, node+"-key.pem"))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, err
	}
	cas := x509.NewCertPool()
	if !cas.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("ca.pem holds no certificate")
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},        // who we are, as server and as client
		RootCAs:      cas,                            // whom we accept as a server
		ClientCAs:    cas,                            // whom we accept as a client
		ClientAuth:   tls.RequireAndVerifyClientCert, // mutual TLS
		MinVersion:   tls.VersionTLS13,
	}, nil
}

type pongEndpoint struct{}

func (pongEndpoint) Receive(c *core.Context, msg any) error { return c.Reply("pong") }

// A two-node cluster over mutual TLS: each env gets a tls.Config made
// from its node's PEM files and the cluster's CA.
func Example_mutualTLS() {
	dir, err := os.MkdirTemp("", "cluster")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	if err := writeTestCluster(dir, "driver", "worker"); err != nil {
		panic(err)
	}
	newEnv := func(node, listen string) *core.Env {
		cfg, err := clusterTLS(dir, node)
		if err != nil {
			panic(err)
		}
		env, err := core.NewEnv(core.Config{
			Name:       node,
			Listen:     listen,
			Transports: []core.Transport{tcp.New(tcp.Options{TLS: cfg})},
		})
		if err != nil {
			panic(err)
		}
		return env
	}
	driver := newEnv("driver", "tcp://127.0.0.1:0")
	defer driver.Shutdown(context.Background())
	worker := newEnv("worker", "") // client mode: it dials out only
	defer worker.Shutdown(context.Background())
	if _, err := driver.Register("ping", pongEndpoint{}); err != nil {
		panic(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ping, err := worker.Lookup(ctx, driver.Address()+"/ping")
	if err != nil {
		panic(err)
	}
	reply, err := ping.Ask(ctx, "ping")
	if err != nil {
		panic(err)
	}
	fmt.Println(reply)
	// Output: pong
}
