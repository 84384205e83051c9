package lan

import (
	"net"
	"strings"
	"testing"

	"github.com/hashicorp/mdns"
)

// Only answers that are botmesh NATS announcements become URLs:
// hashicorp/mdns hands a query every answer it hears on the network.
func TestEntryURL(t *testing.T) {
	name := "nats-1." + Service + "." + Domain + "."
	for _, tc := range []struct {
		name string
		e    *mdns.ServiceEntry
		want string
	}{
		{"ours, IPv4", &mdns.ServiceEntry{Name: name, Port: 4222, AddrV4: net.IPv4(10, 0, 0, 5), InfoFields: []string{marker}}, "nats://10.0.0.5:4222"},
		{"ours, IPv6", &mdns.ServiceEntry{Name: name, Port: 4222, AddrV6: net.ParseIP("fd00::5"), InfoFields: []string{"port=4222", marker}}, "nats://[fd00::5]:4222"},
		{"IPv4 preferred", &mdns.ServiceEntry{Name: name, Port: 4222, AddrV4: net.IPv4(10, 0, 0, 5), AddrV6: net.ParseIP("fd00::5"), InfoFields: []string{marker}}, "nats://10.0.0.5:4222"},
		{"link-local IPv6 only (needs a zone)", &mdns.ServiceEntry{Name: name, Port: 4222, AddrV6: net.ParseIP("fe80::1"), InfoFields: []string{marker}}, ""},
		{"another service type", &mdns.ServiceEntry{Name: "x._http._tcp.local.", Port: 80, AddrV4: net.IPv4(10, 0, 0, 5), InfoFields: []string{marker}}, ""},
		{"no marker", &mdns.ServiceEntry{Name: name, Port: 4222, AddrV4: net.IPv4(10, 0, 0, 5)}, ""},
		{"no port", &mdns.ServiceEntry{Name: name, AddrV4: net.IPv4(10, 0, 0, 5), InfoFields: []string{marker}}, ""},
		{"no address", &mdns.ServiceEntry{Name: name, Port: 4222, InfoFields: []string{marker}}, ""},
		{"nil", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := entryURL(tc.e)
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("got %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

// What Announce makes of an address, and that credentials never leave.
func TestAnnounceAddress(t *testing.T) {
	for _, tc := range []struct {
		in, host string
		port     int
		err      string
	}{
		{in: "nats://127.0.0.1:4222", host: "127.0.0.1", port: 4222},
		{in: "nats://bob:s3cret@10.0.0.5:4223,nats://10.0.0.6:4222", host: "10.0.0.5", port: 4223},
		{in: "0.0.0.0:4222", host: "0.0.0.0", port: 4222},
		{in: "[::1]:4222", host: "::1", port: 4222},
		{in: "nats://bob:s3cret@10.0.0.5", err: `lan: NATS address "nats://[REDACTED]@10.0.0.5" has no port`},
		{in: "10.0.0.5:0", err: `lan: NATS address "10.0.0.5:0": bad port "0"`},
	} {
		host, port, err := hostPort(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: error %v, want %s", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || host != tc.host || port != tc.port {
			t.Errorf("%s: %q %d %v", tc.in, host, port, err)
		}
	}
	ips, err := announceIPs("10.0.0.5")
	if err != nil || len(ips) != 1 || !ips[0].Equal(net.IPv4(10, 0, 0, 5)) {
		t.Errorf("announceIPs(10.0.0.5) = %v, %v", ips, err)
	}
	// Every interface: loopback comes first, so that the address a finder
	// keeps (the last A record) is one other hosts can use if there is one.
	ips, err = announceIPs("0.0.0.0")
	if err != nil || len(ips) == 0 {
		t.Fatalf("announceIPs(0.0.0.0) = %v, %v", ips, err)
	}
	seenOther := false
	for _, ip := range ips {
		if !ip.IsLoopback() {
			seenOther = true
		} else if seenOther {
			t.Errorf("loopback after another address: %v", ips)
		}
	}
	if strings.Contains(redact("nats://bob:s3cret@h:1"), "s3cret") {
		t.Error("redact leaks the password")
	}
}
