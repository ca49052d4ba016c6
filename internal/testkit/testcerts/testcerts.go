// Package testcerts generates the TLS material security tests need at test
// time: a CA, server and client certificates it signed, an expired server
// certificate, and a second CA that signed a client certificate no server
// here trusts. Keys are ECDSA P-256, so a whole set takes milliseconds.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files are PEM files written by Generate (keys are 0600).
type Files struct {
	// CA signed every certificate below except the Other* ones.
	CA string
	// ServerCert is valid for 127.0.0.1, ::1 and localhost.
	ServerCert, ServerKey string
	// ExpiredCert is a server certificate for the same names that expired
	// an hour ago.
	ExpiredCert, ExpiredKey string
	// WrongHostCert is a valid server certificate for another host name.
	WrongHostCert, WrongHostKey string
	// ClientCert is a client certificate (mutual TLS).
	ClientCert, ClientKey string
	// OtherCA signed nothing a server here trusts.
	OtherCA string
	// OtherClientCert is a client certificate signed by OtherCA.
	OtherClientCert, OtherClientKey string
}

type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// Generate writes a full set of certificates into dir.
func Generate(dir string) (*Files, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f := &Files{}
	ca, err := newCA("stanmigrate test CA", filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, err
	}
	other, err := newCA("some other CA", filepath.Join(dir, "other-ca.pem"))
	if err != nil {
		return nil, err
	}
	f.CA, f.OtherCA = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "other-ca.pem")
	now := time.Now()
	local := []string{"localhost"}
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	leaves := []struct {
		name       string
		signer     *authority
		client     bool
		dns        []string
		ips        []net.IP
		from, till time.Time
		cert, key  *string
	}{
		{"server", ca, false, local, ips, now.Add(-time.Hour), now.Add(24 * time.Hour), &f.ServerCert, &f.ServerKey},
		{"expired", ca, false, local, ips, now.Add(-48 * time.Hour), now.Add(-time.Hour), &f.ExpiredCert, &f.ExpiredKey},
		{"wrong-host", ca, false, []string{"nats.example.com"}, nil, now.Add(-time.Hour), now.Add(24 * time.Hour), &f.WrongHostCert, &f.WrongHostKey},
		{"client", ca, true, nil, nil, now.Add(-time.Hour), now.Add(24 * time.Hour), &f.ClientCert, &f.ClientKey},
		{"other-client", other, true, nil, nil, now.Add(-time.Hour), now.Add(24 * time.Hour), &f.OtherClientCert, &f.OtherClientKey},
	}
	for _, l := range leaves {
		*l.cert = filepath.Join(dir, l.name+".pem")
		*l.key = filepath.Join(dir, l.name+"-key.pem")
		usage := x509.ExtKeyUsageServerAuth
		if l.client {
			usage = x509.ExtKeyUsageClientAuth
		}
		tmpl := &x509.Certificate{
			Subject:     pkix.Name{CommonName: l.name},
			DNSNames:    l.dns,
			IPAddresses: l.ips,
			NotBefore:   l.from,
			NotAfter:    l.till,
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if err := l.signer.issue(tmpl, *l.cert, *l.key); err != nil {
			return nil, fmt.Errorf("certificate %s: %w", l.name, err)
		}
	}
	return f, nil
}

func newCA(name, certFile string) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(48 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	if err := writePEM(certFile, "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}
	return &authority{cert: cert, key: key}, nil
}

func (a *authority) issue(tmpl *x509.Certificate, certFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl.SerialNumber = serial()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := writePEM(certFile, "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	return writePEM(keyFile, "EC PRIVATE KEY", kder, 0o600)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

func writePEM(path, kind string, der []byte, perm os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), perm)
}
