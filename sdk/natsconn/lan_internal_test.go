package natsconn

import (
	"bytes"
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
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botmesh/botmesh/sdk/lan"
	"github.com/nats-io/nats-server/v2/server"
)

// startNATS runs a NATS server on a random loopback port and returns its
// host:port.
func startNATS(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(s.Shutdown)
	return s.Addr().String()
}

func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// fakeLAN replaces lan.Find with answers from a list, and counts calls.
func fakeLAN(t *testing.T, answers ...func() (string, error)) *atomic.Int32 {
	t.Helper()
	calls := &atomic.Int32{}
	old := lanFind
	lanFind = func(ctx context.Context, _ time.Duration, _ *slog.Logger) (string, error) {
		i := int(calls.Add(1)) - 1
		if i >= len(answers) {
			i = len(answers) - 1
		}
		return answers[i]()
	}
	t.Cleanup(func() { lanFind = old })
	return calls
}

func setLocal(t *testing.T, addr string) {
	t.Helper()
	old := localNATS
	localNATS = addr
	t.Cleanup(func() { localNATS = old })
}

func findConfig() Config {
	c := DefaultConfig()
	c.FindNATS = true
	c.ConnectWait = 2 * time.Second
	c.LANWait = 50 * time.Millisecond
	return c
}

// How a process given no NATS address picks one: the server on this host
// first, then the LAN; explicit addresses win; no multicast falls back to
// the default at once.
func TestFindNATS(t *testing.T) {
	t.Run("a server on this host is used without asking the LAN", func(t *testing.T) {
		addr := startNATS(t)
		setLocal(t, addr)
		calls := fakeLAN(t, func() (string, error) { return "", errors.New("must not be called") })
		started := time.Now()
		m, err := Connect(t.Context(), findConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		t.Logf("connected %s after Connect", time.Since(started))
		if got := m.Config().NATSURL; got != "nats://"+addr || m.NATS().ConnectedAddr() != addr {
			t.Errorf("NATS URL %s, connected to %s; want %s", got, m.NATS().ConnectedAddr(), addr)
		}
		if calls.Load() != 0 {
			t.Errorf("asked the LAN %d times", calls.Load())
		}
	})

	t.Run("else the first server announced on the LAN", func(t *testing.T) {
		addr := startNATS(t)
		setLocal(t, closedPort(t))
		calls := fakeLAN(t,
			func() (string, error) { return "", lan.ErrNotFound },
			func() (string, error) { return "", lan.ErrNotFound },
			func() (string, error) { return "nats://" + addr, nil })
		m, err := Connect(t.Context(), findConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if m.NATS().ConnectedAddr() != addr || calls.Load() != 3 {
			t.Errorf("connected to %s after %d LAN queries; want %s after 3", m.NATS().ConnectedAddr(), calls.Load(), addr)
		}
	})

	t.Run("an explicit address wins", func(t *testing.T) {
		addr := startNATS(t)
		setLocal(t, closedPort(t))
		calls := fakeLAN(t, func() (string, error) { return "", errors.New("must not be called") })
		c := findConfig()
		c.NATSURL = "nats://" + addr
		m, err := Connect(t.Context(), c, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if m.NATS().ConnectedAddr() != addr || calls.Load() != 0 {
			t.Errorf("connected to %s after %d LAN queries", m.NATS().ConnectedAddr(), calls.Load())
		}
	})

	t.Run("no multicast: the default address at once", func(t *testing.T) {
		local := closedPort(t)
		setLocal(t, local)
		calls := fakeLAN(t, func() (string, error) { return "", errors.New("failed to bind to any multicast udp port") })
		c := findConfig()
		c.ConnectWait = 300 * time.Millisecond
		_, err := Connect(t.Context(), c, nil)
		// One LAN query, then the default, which Connect waits for as it
		// always did.
		if calls.Load() != 1 || err == nil || !strings.Contains(err.Error(), fmt.Sprintf("NATS at nats://%s did not answer", local)) {
			t.Errorf("after %d LAN queries: %v", calls.Load(), err)
		}
	})

	t.Run("nothing anywhere: a clear error when the wait is over", func(t *testing.T) {
		local := closedPort(t)
		setLocal(t, local)
		fakeLAN(t, func() (string, error) { time.Sleep(20 * time.Millisecond); return "", lan.ErrNotFound })
		c := findConfig()
		c.ConnectWait = 300 * time.Millisecond
		_, err := Connect(t.Context(), c, nil)
		want := fmt.Sprintf("no NATS server found on %s or announced on the LAN: context deadline exceeded", local)
		if err == nil || err.Error() != want {
			t.Errorf("error %v, want %s", err, want)
		}
	})
}

// recordingAuth is a NATS server authenticator that records every
// credential a client presented, and accepts only bob/s3cret-pw.
type recordingAuth struct {
	mu   sync.Mutex
	seen []string
}

func (r *recordingAuth) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, o.Username+":"+o.Password+":"+o.Token)
	return o.Username == "bob" && o.Password == "s3cret-pw"
}

func (r *recordingAuth) presented() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

// fakeNATS is a TCP listener on loopback that says a NATS INFO without
// TLS, as anyone on a LAN may, and records every byte a client sends.
func fakeNATS(t *testing.T) (addr string, received func() string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var mu sync.Mutex
	var got bytes.Buffer
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.WriteString(c, `INFO {"server_id":"FAKE","version":"2.15.2","proto":1,"host":"127.0.0.1","port":4222,"max_payload":1048576,"auth_required":true}`+"\r\n")
				buf := make([]byte, 4096)
				for {
					_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
					n, err := c.Read(buf)
					mu.Lock()
					got.Write(buf[:n])
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String(), func() string {
		mu.Lock()
		defer mu.Unlock()
		return got.String()
	}
}

// testCA returns a CA certificate (PEM) and a server TLS configuration
// whose certificate it signed for 127.0.0.1.
func testCA(t *testing.T) ([]byte, *tls.Config) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nats"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		&tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// startNATSWith runs a NATS server on loopback with edit applied and
// returns its host:port.
func startNATSWith(t *testing.T, edit func(*server.Options)) string {
	t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true}
	edit(o)
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(s.Shutdown)
	return s.Addr().String()
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Anyone on the LAN can announce a NATS server. One found there gets no
// credential (password, token, credentials file) unless its TLS
// certificate verifies: the attacks, each against a server that records
// what it receives.
func TestFoundOnLANGetsNoCredentialsUnverified(t *testing.T) {
	caPEM, _ := testCA(t)
	credsFile := writeTemp(t, "mesh.creds", []byte("url: nats://127.0.0.1:1\nuser: bob\npassword: s3cret-pw\n"))
	for _, tc := range []struct {
		name   string
		auth   Auth
		secret string
	}{
		{"password", Auth{User: "bob", Password: "s3cret-pw"}, "s3cret-pw"},
		{"token", Auth{Token: "t0ken-s3cret"}, "t0ken-s3cret"},
		{"botmesh credentials file", Auth{Creds: credsFile}, "s3cret-pw"},
	} {
		t.Run(tc.name+", a fake server without TLS", func(t *testing.T) {
			addr, received := fakeNATS(t)
			setLocal(t, closedPort(t))
			fakeLAN(t, func() (string, error) { return "nats://" + addr, nil })
			c := findConfig()
			c.Auth = tc.auth
			_, err := Connect(t.Context(), c, nil)
			want := "refusing the NATS server found on the LAN at nats://" + addr + ": it does not offer TLS, and this process sends its credentials only to a server whose TLS certificate it verifies. Give the server's address with --nats_url, or serve it with TLS and trust its CA (--nats_tls_ca, or the CA in --nats_creds)"
			if err == nil || err.Error() != want {
				t.Errorf("error:\n%v\nwant:\n%s", err, want)
			}
			time.Sleep(50 * time.Millisecond) // what a client would have sent by now
			if got := received(); got != "" {
				t.Errorf("the fake server received %q", got)
			}
		})
	}

	t.Run("a real NATS server without TLS", func(t *testing.T) {
		rec := &recordingAuth{}
		addr := startNATSWith(t, func(o *server.Options) { o.CustomClientAuthentication = rec })
		setLocal(t, closedPort(t))
		fakeLAN(t, func() (string, error) { return "nats://" + addr, nil })
		c := findConfig()
		c.Auth = Auth{User: "bob", Password: "s3cret-pw"}
		if _, err := Connect(t.Context(), c, nil); err == nil || !strings.Contains(err.Error(), "it does not offer TLS") {
			t.Errorf("error %v", err)
		}
		if p := rec.presented(); len(p) != 0 {
			t.Errorf("the server was presented %q", p)
		}
	})

	t.Run("a TLS server whose certificate another CA signed", func(t *testing.T) {
		_, otherTLS := testCA(t)
		rec := &recordingAuth{}
		addr := startNATSWith(t, func(o *server.Options) {
			o.CustomClientAuthentication, o.TLSConfig, o.TLS = rec, otherTLS, true
		})
		setLocal(t, closedPort(t))
		fakeLAN(t, func() (string, error) { return "nats://" + addr, nil })
		c := findConfig()
		c.Auth = Auth{User: "bob", Password: "s3cret-pw", TLSCA: writeTemp(t, "ca.pem", caPEM)}
		_, err := Connect(t.Context(), c, nil)
		if err == nil || !strings.Contains(err.Error(), "its TLS certificate does not verify for 127.0.0.1") {
			t.Errorf("error %v", err)
		}
		if p := rec.presented(); len(p) != 0 {
			t.Errorf("the server was presented %q", p)
		}
	})

	t.Run("without credentials there is nothing to keep", func(t *testing.T) {
		addr := startNATS(t)
		setLocal(t, closedPort(t))
		fakeLAN(t, func() (string, error) { return "nats://" + addr, nil })
		m, err := Connect(t.Context(), findConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if got := m.Config().NATSURL; got != "nats://"+addr {
			t.Errorf("NATS URL %s", got)
		}
	})
}

// A server found on the LAN whose certificate verifies against the CA
// given (--nats_tls_ca, or the one in a botmesh credentials file) gets the
// credentials, and every connection to it, the registry's included, speaks
// TLS.
func TestFoundOnLANVerifiedByTLS(t *testing.T) {
	caPEM, srvTLS := testCA(t)
	for _, tc := range []struct {
		name string
		auth func() Auth
	}{
		{"--nats_tls_ca", func() Auth {
			return Auth{User: "bob", Password: "s3cret-pw", TLSCA: writeTemp(t, "ca.pem", caPEM)}
		}},
		{"the CA in a botmesh credentials file", func() Auth {
			return Auth{Creds: writeTemp(t, "mesh.creds", append([]byte("user: bob\npassword: s3cret-pw\n"), caPEM...))}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingAuth{}
			addr := startNATSWith(t, func(o *server.Options) {
				o.CustomClientAuthentication, o.TLSConfig, o.TLS = rec, srvTLS, true
			})
			setLocal(t, closedPort(t))
			fakeLAN(t, func() (string, error) { return "nats://" + addr, nil })
			c := findConfig()
			c.Auth = tc.auth()
			m, err := Connect(t.Context(), c, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if got := m.Config().NATSURL; got != "tls://"+addr {
				t.Errorf("NATS URL %s, want tls://%s", got, addr)
			}
			if _, err := m.NATS().TLSConnectionState(); err != nil {
				t.Errorf("not TLS: %v", err)
			}
			// Libraries that open their own connections (go-micro's
			// registry) get the same TLS and credentials.
			po := m.PluginOptions()
			other, err := po.Connect()
			if err != nil {
				t.Fatalf("a connection with the plugin options: %v", err)
			}
			other.Close()
			for _, p := range rec.presented() {
				if p != "bob:s3cret-pw:" {
					t.Errorf("presented %q", p)
				}
			}
		})
	}
}
