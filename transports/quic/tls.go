package quic

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	quicgo "github.com/quic-go/quic-go"
)

// SelfSignedTLS returns a TLS config for Options.TLS built around a fresh
// self-signed certificate (ECDSA P-256, valid from an hour ago for a
// year) for hosts: IP addresses and DNS names; none means 127.0.0.1, ::1
// and localhost. The config presents the certificate, trusts only it, and
// requires it from dialers too (mutual TLS).
//
// What it protects: every env that uses this one config (the same value,
// in one process) talks only to envs that hold its private key, over an
// encrypted link; nobody else can connect, listen in, or impersonate
// either side. What it does not: the key lives in memory and dies with
// the process, so envs in other processes cannot share it; for those,
// issue certificates from a CA of your own, or use core.Config.Secret.
// It is meant for tests and quick starts.
func SelfSignedTLS(hosts ...string) (*tls.Config, error) {
	certs, err := selfSigned(hosts)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(certs[0].Leaf)
	return &tls.Config{
		Certificates: certs,
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}, nil
}

// selfSigned makes a self-signed certificate for hosts (loopback when
// none).
func selfSigned(hosts []string) ([]tls.Certificate, error) {
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "::1", "localhost"}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "rpcenv quic " + hosts[0]},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}, nil
}

// resetKeyInfo is HKDF's info string for the stateless reset key derived
// from a certificate's private key. Changing it changes every derived
// key: peers would then not notice the first restart after the change.
const resetKeyInfo = "rpcenv quic stateless reset key v1"

// resetKey returns the stateless reset key of a Transport with opts: the
// explicit key, else one derived from the certificate's private key, else
// a random one. Only a bad explicit key is an error.
func resetKey(opts Options) (*quicgo.StatelessResetKey, error) {
	var key quicgo.StatelessResetKey
	if opts.StatelessResetKey != nil {
		if len(opts.StatelessResetKey) != len(key) {
			return nil, fmt.Errorf("quic: Options.StatelessResetKey is %d bytes; it must be %d", len(opts.StatelessResetKey), len(key))
		}
		copy(key[:], opts.StatelessResetKey)
		return &key, nil
	}
	if opts.TLS != nil && len(opts.TLS.Certificates) > 0 {
		k, err := resetKeyFromCertificate(opts.TLS.Certificates[0])
		if err == nil {
			return k, nil
		}
		opts.Logger.Warn("quic: cannot derive a stateless reset key from the certificate; "+
			"a restart of this process will only be noticed by its peers' timeouts (set Options.StatelessResetKey)", "err", err)
	}
	rand.Read(key[:]) // never fails (crypto/rand)
	return &key, nil
}

// resetKeyFromCertificate derives a stateless reset key from cert's
// private key with HKDF-SHA256: the same key pair gives the same reset
// key in every process, and the reset key reveals nothing of the private
// key. A private key that cannot be marshaled (one held in a hardware
// module, behind a crypto.Signer) is an error.
func resetKeyFromCertificate(cert tls.Certificate) (*quicgo.StatelessResetKey, error) {
	if cert.PrivateKey == nil {
		return nil, errors.New("no private key in Options.TLS.Certificates[0]")
	}
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("the private key of Options.TLS.Certificates[0] (%T): %w", cert.PrivateKey, err)
	}
	b, err := hkdf.Key(sha256.New, der, nil, resetKeyInfo, len(quicgo.StatelessResetKey{}))
	if err != nil {
		return nil, err
	}
	return (*quicgo.StatelessResetKey)(b), nil
}
