package apitest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the files of the server's certificates and keys: one CA signing
// the serving certificate and the admin's client certificate, and the
// service-account signing key. ECDSA P-256 throughout: made in
// milliseconds, where RSA keys take a busy machine seconds.
type pki struct {
	caCert, serverCert, serverKey, clientCert, clientKey, saKey string
}

// AdminUser is the client certificate's user, in group system:masters
// (cluster-admin whatever the authorization mode).
const AdminUser = "chaosloop-apitest-admin"

func newPKI(dir string) (*pki, error) {
	p := &pki{
		caCert:     filepath.Join(dir, "ca.crt"),
		serverCert: filepath.Join(dir, "apiserver.crt"), serverKey: filepath.Join(dir, "apiserver.key"),
		clientCert: filepath.Join(dir, "admin.crt"), clientKey: filepath.Join(dir, "admin.key"),
		saKey: filepath.Join(dir, "sa.key"),
	}
	now := time.Now()
	caKey, err := newKey()
	if err != nil {
		return nil, err
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "chaosloop-apitest-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	if err := writePEM(p.caCert, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	caParsed, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	leaf := func(serial int64, subject pkix.Name, usage x509.ExtKeyUsage, ips []net.IP, dns []string, certFile, keyFile string) error {
		key, err := newKey()
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: subject,
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: ips, DNSNames: dns,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caParsed, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
			return err
		}
		return writeKey(keyFile, key)
	}
	// the API server's own Service address too (the first of ServiceRange)
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(198, 19, 240, 1)}
	dns := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}
	if err := leaf(2, pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth, ips, dns, p.serverCert, p.serverKey); err != nil {
		return nil, err
	}
	admin := pkix.Name{CommonName: AdminUser, Organization: []string{"system:masters"}}
	if err := leaf(3, admin, x509.ExtKeyUsageClientAuth, nil, nil, p.clientCert, p.clientKey); err != nil {
		return nil, err
	}
	sa, err := newKey()
	if err != nil {
		return nil, err
	}
	return p, writeKey(p.saKey, sa)
}

func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func writeKey(file string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(file, "EC PRIVATE KEY", der)
}

func writePEM(file, typ string, der []byte) error {
	return os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
