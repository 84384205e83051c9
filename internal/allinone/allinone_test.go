package allinone

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
)

// The embedded server's certificate verifies, against the CA the
// credentials file carries, for every address another host may use.
func TestServerTLS(t *testing.T) {
	for _, tc := range []struct {
		host string
		ok   []string
		bad  []string
	}{
		{host: "0.0.0.0", ok: []string{"127.0.0.1", "localhost"}, bad: []string{"10.255.255.1", "example.com"}},
		{host: "10.1.2.3", ok: []string{"10.1.2.3", "127.0.0.1"}, bad: []string{"10.1.2.4"}},
	} {
		t.Run(tc.host, func(t *testing.T) {
			srv, caPEM, err := serverTLS(tc.host)
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(caPEM) {
				t.Fatal("no CA in the PEM")
			}
			leaf, err := x509.ParseCertificate(srv.Certificates[0].Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			ok := tc.ok
			if tc.host == "0.0.0.0" {
				if addrs, _ := net.InterfaceAddrs(); len(addrs) > 0 {
					for _, a := range addrs {
						if ipn, isIP := a.(*net.IPNet); isIP {
							ok = append(ok, ipn.IP.String())
						}
					}
				}
			}
			for _, name := range ok {
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
			for _, name := range tc.bad {
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err == nil {
					t.Errorf("verifies for %s", name)
				}
			}
			if srv.MinVersion < tls.VersionTLS12 {
				t.Errorf("TLS minimum %x", srv.MinVersion)
			}
		})
	}
}

func TestPrintServing(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"loopback", Config{NATSHost: "127.0.0.1", CredsFile: "/home/u/.config/botmesh/allinone.creds"},
			[]string{"NATS credentials for botctl and other parts: /home/u/.config/botmesh/allinone.creds (only you can read it)"}},
		{"a data directory", Config{NATSHost: "127.0.0.1", CredsFile: "/c", DataDir: "/home/u/.local/state/botmesh"},
			[]string{"NATS credentials for botctl and other parts: /c (only you can read it)",
				"Data (notes, schedules, audit) kept across restarts in /home/u/.local/state/botmesh (--data_dir)"}},
		{"a LAN address", Config{NATSHost: "10.1.2.3", CredsFile: "/c"},
			[]string{"NATS credentials for botctl and other parts: /c (only you can read it)",
				"NATS is open to other hosts (port 4222), with TLS and a password: a part there needs a copy of /c, given as --nats_creds, and --nats_url tls://10.1.2.3:4222"}},
		{"announced on loopback", Config{NATSHost: "127.0.0.1", Announce: true, CredsFile: "/c"},
			[]string{"NATS credentials for botctl and other parts: /c (only you can read it)",
				"NATS is open to other hosts (port 4222), with TLS and a password: a part there needs a copy of /c, given as --nats_creds, and --nats_url tls://127.0.0.1:4222 or --find_nats (it is announced on the LAN)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			printServing(&b, tc.cfg, "tls://127.0.0.1:4222")
			if got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestDefaultDataDir(t *testing.T) {
	t.Setenv("HOME", "/home/u")
	for state, want := range map[string]string{"/state": "/state/botmesh", "": "/home/u/.local/state/botmesh", "relative": "/home/u/.local/state/botmesh"} {
		t.Setenv("XDG_STATE_HOME", state)
		if got, err := DefaultDataDir(); err != nil || got != want {
			t.Errorf("XDG_STATE_HOME=%q: %q, %v; want %q", state, got, err, want)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{"127.0.0.1": true, "::1": true, "localhost": true, "127.0.0.2": true, "0.0.0.0": false, "": false, "::": false, "10.0.0.1": false, "example.com": false} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v", host, got)
		}
	}
}
