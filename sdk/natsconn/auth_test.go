package natsconn_test

import (
	"context"
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
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/sdk/natsconn"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

func connect(t *testing.T, url string, auth natsconn.Auth) (*natsconn.Conn, error) {
	t.Helper()
	cfg := natsconn.DefaultConfig()
	cfg.NATSURL = url
	cfg.Auth = auth
	cfg.ConnectWait = 2 * time.Second
	m, err := natsconn.Connect(context.Background(), cfg, nil)
	if err == nil {
		t.Cleanup(func() { _ = m.Close() })
	}
	return m, err
}

// pluginConnects opens a connection with c's plugin options, as go-micro's
// NATS registry does.
func pluginConnects(c *natsconn.Conn) error {
	po := c.PluginOptions()
	nc, err := po.Connect()
	if err != nil {
		return err
	}
	nc.Close()
	return nil
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUserPassword(t *testing.T) {
	s := meshtest.NATS(t, func(o *server.Options) { o.Username, o.Password = "botmesh", "s3cret-pw" })
	m, err := connect(t, s.ClientURL(), natsconn.Auth{User: "botmesh", Password: "s3cret-pw"})
	if err != nil {
		t.Fatalf("password: %v", err)
	}
	if err := pluginConnects(m); err != nil {
		t.Errorf("plugin connection with the password: %v", err)
	}
	if _, err := connect(t, s.ClientURL(), natsconn.Auth{User: "botmesh", PasswordFile: writeFile(t, "pw", "s3cret-pw\n")}); err != nil {
		t.Errorf("password file: %v", err)
	}
	_, err = connect(t, s.ClientURL(), natsconn.Auth{User: "botmesh", Password: "wrong-pw"})
	if err == nil {
		t.Fatal("a wrong password connected")
	}
	if strings.Contains(err.Error(), "wrong-pw") {
		t.Errorf("the error shows the password: %v", err)
	}
}

func TestToken(t *testing.T) {
	s := meshtest.NATS(t, func(o *server.Options) { o.Authorization = "t0ken" })
	if _, err := connect(t, s.ClientURL(), natsconn.Auth{TokenFile: writeFile(t, "tok", "t0ken")}); err != nil {
		t.Errorf("token: %v", err)
	}
	if _, err := connect(t, s.ClientURL(), natsconn.Auth{}); err == nil {
		t.Error("connected without the token")
	}
}

func TestNKey(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	s := meshtest.NATS(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })
	if _, err := connect(t, s.ClientURL(), natsconn.Auth{NKey: writeFile(t, "user.nk", string(seed))}); err != nil {
		t.Errorf("nkey: %v", err)
	}
	if _, err := connect(t, s.ClientURL(), natsconn.Auth{NKey: filepath.Join(t.TempDir(), "missing.nk")}); err == nil || !strings.Contains(err.Error(), "missing.nk") {
		t.Errorf("missing seed file: %v", err)
	}
}

func TestTLS(t *testing.T) {
	caPEM, certPEM, keyPEM := selfSigned(t)
	ca, cert, key := writeFile(t, "ca.pem", caPEM), writeFile(t, "cert.pem", certPEM), writeFile(t, "key.pem", keyPEM)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	s := meshtest.NATS(t, func(o *server.Options) { o.TLSConfig, o.TLS = tc, true })
	m, err := connect(t, s.ClientURL(), natsconn.Auth{TLSCA: ca})
	if err != nil {
		t.Fatalf("TLS with the CA: %v", err)
	}
	// The connections of libraries (go-micro's registry) speak TLS too.
	if err := pluginConnects(m); err != nil {
		t.Errorf("plugin connection over TLS: %v", err)
	}
	if _, err := connect(t, s.ClientURL(), natsconn.Auth{}); err == nil {
		t.Error("connected to a TLS server without trusting its CA")
	}
}

func TestAuthValidate(t *testing.T) {
	for _, tc := range []struct {
		a    natsconn.Auth
		want string
	}{
		{natsconn.Auth{User: "u", Token: "t"}, "give one of"},
		{natsconn.Auth{Password: "p"}, "needs --nats_user"},
		{natsconn.Auth{User: "u", Password: "p", PasswordFile: "f"}, "not both"},
		{natsconn.Auth{TLSCert: "c"}, "go together"},
	} {
		if err := tc.a.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.a, err, tc.want)
		}
	}
}

// selfSigned returns a CA certificate and a certificate for 127.0.0.1 it
// signed, with the key, in PEM.
func selfSigned(t *testing.T) (ca, cert, key string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "botmesh test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	caCert, _ := x509.ParseCertificate(caDER)
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
}

// The credentials file the all-in-one writes: only its user reads it, it
// round-trips, and --nats_creds takes it (with the CA in it for TLS).
func TestCredsFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "botmesh")
	path := filepath.Join(dir, "allinone.creds")
	pw := natsconn.GeneratePassword()
	if len(pw) != 52 || strings.Trim(pw, "abcdefghijklmnopqrstuvwxyz234567") != "" {
		t.Errorf("password %q: want 52 base-32 characters", pw)
	}
	if pw == natsconn.GeneratePassword() {
		t.Error("two passwords alike")
	}
	caPEM, certPEM, keyPEM := selfSigned(t)
	want := natsconn.CredsFile{URL: "tls://127.0.0.1:4222", User: "admin", Password: pw, CA: []byte(caPEM)}
	// An old file (or a link someone planted) is replaced, not followed.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := natsconn.WriteCredsFile(path, want); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(target); err == nil {
		t.Error("wrote through a symbolic link")
	}
	for p, mode := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, path: 0o600} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), mode)
		}
	}
	got, err := natsconn.ReadCredsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != want.URL || got.User != want.User || got.Password != want.Password || string(got.CA) != caPEM {
		t.Errorf("read %+v", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}

	t.Run("--nats_creds with TLS", func(t *testing.T) {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: writeFile(t, "cert.pem", certPEM), KeyFile: writeFile(t, "key.pem", keyPEM)})
		if err != nil {
			t.Fatal(err)
		}
		s := meshtest.NATS(t, func(o *server.Options) {
			o.TLSConfig, o.TLS = tc, true
			o.Users = []*server.User{{Username: "admin", Password: pw}}
		})
		m, err := connect(t, s.ClientURL(), natsconn.Auth{Creds: path})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.NATS().TLSConnectionState(); err != nil {
			t.Errorf("not TLS: %v", err)
		}
		if err := pluginConnects(m); err != nil {
			t.Errorf("plugin connection: %v", err)
		}
	})
	t.Run("--nats_creds without TLS", func(t *testing.T) {
		plain := filepath.Join(t.TempDir(), "plain.creds")
		if err := natsconn.WriteCredsFile(plain, natsconn.CredsFile{User: "admin", Password: pw}); err != nil {
			t.Fatal(err)
		}
		s := meshtest.NATS(t, func(o *server.Options) { o.Users = []*server.User{{Username: "admin", Password: pw}} })
		if _, err := connect(t, s.ClientURL(), natsconn.Auth{Creds: plain}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("not a credentials file", func(t *testing.T) {
		bad := writeFile(t, "bad.creds", "password: hunter2-secret\n")
		_, err := connect(t, "nats://127.0.0.1:1", natsconn.Auth{Creds: bad})
		if err == nil || !strings.Contains(err.Error(), "needs a user and a password") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error %v", err)
		}
	})
}
