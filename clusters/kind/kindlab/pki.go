package kindlab

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/chaosloop/chaosloop/clusters/kind/cluster"
)

// sharedPKI are the keys kubeadm shares between control-plane nodes: the
// three certificate authorities and the service-account key pair. kind
// copies them from the first control-plane node to the others it knows
// of; the other control-plane nodes here are kind workers (see
// nodePatches), so chaosloop makes them first and mounts them into every
// control-plane node, where kubeadm init and join use them as they are
// ("Using existing ... certificate authority").
var sharedPKI = []struct{ cert, key, cn string }{
	{"ca.crt", "ca.key", "kubernetes"},
	{"front-proxy-ca.crt", "front-proxy-ca.key", "front-proxy-ca"},
	{"etcd/ca.crt", "etcd/ca.key", "etcd-ca"},
}

// pkiDir is where kubeadm keeps them in a node.
const pkiDir = "/etc/kubernetes/pki"

// caValidity is kubeadm's for its own certificate authorities.
const caValidity = 10 * 365 * 24 * time.Hour

// writePKI makes the shared keys under dir, unless they are there (Up
// again keeps the cluster's), and returns their mounts.
func writePKI(dir string) ([]cluster.Mount, error) {
	var mounts []cluster.Mount
	for _, ca := range sharedPKI {
		cert, key := filepath.Join(dir, ca.cert), filepath.Join(dir, ca.key)
		if !exists(cert) || !exists(key) {
			if err := writeCA(cert, key, ca.cn); err != nil {
				return nil, err
			}
		}
		mounts = append(mounts,
			cluster.Mount{Host: cert, Container: pkiDir + "/" + ca.cert},
			cluster.Mount{Host: key, Container: pkiDir + "/" + ca.key})
	}
	pub, key := filepath.Join(dir, "sa.pub"), filepath.Join(dir, "sa.key")
	if !exists(pub) || !exists(key) {
		if err := writeSAKey(pub, key); err != nil {
			return nil, err
		}
	}
	mounts = append(mounts,
		cluster.Mount{Host: pub, Container: pkiDir + "/sa.pub"},
		cluster.Mount{Host: key, Container: pkiDir + "/sa.key"})
	return mounts, nil
}

// writeCA writes a self-signed CA as kubeadm makes them (RSA 2048).
func writeCA(certPath, keyPath, cn string) error {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return err
	}
	now := time.Now().Add(-time.Minute)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now,
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return err
	}
	if err := writePEM(keyPath, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k), 0o600); err != nil {
		return err
	}
	return writePEM(certPath, "CERTIFICATE", der, 0o644)
}

// writeSAKey writes the key pair that signs service-account tokens.
func writeSAKey(pubPath, keyPath string) error {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return err
	}
	if err := writePEM(keyPath, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k), 0o600); err != nil {
		return err
	}
	return writePEM(pubPath, "PUBLIC KEY", pub, 0o644)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
