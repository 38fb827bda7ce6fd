package kindlab

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func parsePEM(t *testing.T, path, typ string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	blk, _ := pem.Decode(b)
	require.NotNil(t, blk, path)
	require.Equal(t, typ, blk.Type, path)
	return blk.Bytes
}

// The shared keys are what kubeadm takes as existing: CAs that sign, a
// service-account key pair that matches; made once, kept on the next Up.
func TestSharedPKI(t *testing.T) {
	dir := t.TempDir()
	mounts, err := writePKI(dir)
	require.NoError(t, err)
	require.Len(t, mounts, 8)
	for _, ca := range sharedPKI {
		cert, err := x509.ParseCertificate(parsePEM(t, filepath.Join(dir, ca.cert), "CERTIFICATE"))
		require.NoError(t, err)
		require.True(t, cert.IsCA)
		require.Equal(t, ca.cn, cert.Subject.CommonName)
		require.NotZero(t, cert.KeyUsage&x509.KeyUsageCertSign)
		key, err := x509.ParsePKCS1PrivateKey(parsePEM(t, filepath.Join(dir, ca.key), "RSA PRIVATE KEY"))
		require.NoError(t, err)
		require.True(t, key.PublicKey.Equal(cert.PublicKey))
	}
	pub, err := x509.ParsePKIXPublicKey(parsePEM(t, filepath.Join(dir, "sa.pub"), "PUBLIC KEY"))
	require.NoError(t, err)
	key, err := x509.ParsePKCS1PrivateKey(parsePEM(t, filepath.Join(dir, "sa.key"), "RSA PRIVATE KEY"))
	require.NoError(t, err)
	require.True(t, key.PublicKey.Equal(pub.(*rsa.PublicKey)))
	before, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	require.NoError(t, err)
	_, err = writePKI(dir)
	require.NoError(t, err)
	after, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	require.NoError(t, err)
	require.Equal(t, before, after)
}
