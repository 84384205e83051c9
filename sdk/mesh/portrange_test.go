package mesh_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"go-micro.dev/v4/registry"
)

func TestParseListenAddress(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want mesh.ListenAddress
		err  string
	}{
		{in: "127.0.0.1:0", want: mesh.ListenAddress{Host: "127.0.0.1"}},
		{in: ":9100", want: mesh.ListenAddress{First: 9100, Last: 9100}},
		{in: ":9100-9199", want: mesh.ListenAddress{First: 9100, Last: 9199}},
		{in: "[::1]:9100-9101", want: mesh.ListenAddress{Host: "::1", First: 9100, Last: 9101}},
		{in: "host-name:9100-9100", want: mesh.ListenAddress{Host: "host-name", First: 9100, Last: 9100}},
		{in: "127.0.0.1", err: `server_address "127.0.0.1" is not host:port or host:first-last (e.g. 127.0.0.1:9100-9199): missing port in address`},
		{in: "", err: `server_address "" is not host:port or host:first-last (e.g. 127.0.0.1:9100-9199): missing port in address`},
		{in: ":abc", err: `server_address ":abc": port "abc" is not a number`},
		{in: ":9200-9100", err: `server_address ":9200-9100": the port range ends (9100) before it starts (9200)`},
		{in: ":0-10", err: `server_address ":0-10": a port range cannot start at 0 (0 means any free port; give it alone)`},
		{in: ":9100-", err: `server_address ":9100-": a port is missing`},
		{in: ":-9100", err: `server_address ":-9100": a port is missing`},
		{in: ":70000", err: `server_address ":70000": port 70000 is not between 0 and 65535`},
		{in: ":9100-70000", err: `server_address ":9100-70000": port 70000 is not between 0 and 65535`},
		{in: ":9100-9200-9300", err: `server_address ":9100-9200-9300": port "9200-9300" is not a number`},
		{in: ":+80", err: `server_address ":+80": port "+80" is not a number`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := mesh.ParseListenAddress(tc.in)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// A bad range is refused when the config is checked, before anything
// starts; the nats transport ignores the address.
func TestValidateServerAddress(t *testing.T) {
	c := mesh.DefaultConfig()
	c.Transport = mesh.TransportHTTP
	c.ServerAddress = "127.0.0.1:9200-9100"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "the port range ends (9100) before it starts (9200)") {
		t.Errorf("validate: %v", err)
	}
	c.Transport = mesh.TransportNATS
	if err := c.Validate(); err != nil {
		t.Errorf("nats transport: %v", err)
	}
}

// holdPorts listens on n consecutive loopback ports and returns the first
// and the listeners; they are released when the test ends.
func holdPorts(t *testing.T, n int) (int, []net.Listener) {
	t.Helper()
	for range 50 {
		l0, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		first := l0.Addr().(*net.TCPAddr).Port
		held := []net.Listener{l0}
		ok := true
		for p := first + 1; p < first+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			held = append(held, l)
		}
		if ok && first+n-1 <= 65535 {
			t.Cleanup(func() {
				for _, l := range held {
					l.Close()
				}
			})
			return first, held
		}
		for _, l := range held {
			l.Close()
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0, nil
}

// A go-micro server on the http transport with a port range: it takes the
// first free port, says clearly when every port is taken, and a malformed
// range stops Connect.
func TestServerPortRange(t *testing.T) {
	s := meshtest.NATS(t)
	serve := func(t *testing.T, addr string) (string, error) {
		t.Helper()
		m := meshtest.Mesh(t, s, func(c *mesh.Config) {
			c.Transport = mesh.TransportHTTP
			c.ServerAddress = addr
		})
		srv := m.NewServer("portrange.test")
		if err := srv.Start(); err != nil {
			return "", err
		}
		t.Cleanup(func() { _ = srv.Stop() })
		svcs, err := m.Registry().GetService("portrange.test", registry.GetContext(t.Context()))
		if err != nil {
			t.Fatal(err)
		}
		for _, sv := range svcs {
			for _, n := range sv.Nodes {
				return n.Address, nil
			}
		}
		t.Fatal("server started but not registered")
		return "", nil
	}

	t.Run("first free port", func(t *testing.T) {
		first, held := holdPorts(t, 3)
		held[2].Close() // first and first+1 stay taken; first+2 is free
		got, err := serve(t, fmt.Sprintf("127.0.0.1:%d-%d", first, first+5))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("127.0.0.1:%d", first+2); got != want {
			t.Fatalf("registered at %s, want %s (the first free port of the range)", got, want)
		}
	})

	t.Run("every port taken", func(t *testing.T) {
		first, _ := holdPorts(t, 3)
		addr := fmt.Sprintf("127.0.0.1:%d-%d", first, first+2)
		_, err := serve(t, addr)
		var pr *mesh.PortRangeError
		if !errors.As(err, &pr) {
			t.Fatalf("error %v, want a PortRangeError", err)
		}
		if want := fmt.Sprintf("mesh: no free port in %s: all 3 ports are in use", addr); !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	})

	t.Run("malformed range", func(t *testing.T) {
		c := mesh.DefaultConfig()
		c.NATSURL = s.ClientURL()
		c.Transport = mesh.TransportHTTP
		c.ServerAddress = "127.0.0.1:91oo-9199"
		_, err := mesh.Connect(t.Context(), c)
		if err == nil || err.Error() != `mesh: server_address "127.0.0.1:91oo-9199": port "91oo" is not a number` {
			t.Fatalf("connect: %v", err)
		}
	})
}
