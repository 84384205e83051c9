package web

import (
	"fmt"
	"net"
	"strings"
)

// hostSet is the Host names the web chat answers to (issue 12). A page
// from another site whose name the attacker points at this machine (DNS
// rebinding) is same-origin with itself, not with the web chat, so the
// Origin check passes its websocket; only its Host header, the attacker's
// name, gives it away. So every request's Host must be one of:
//
//   - localhost or a loopback address;
//   - the host of --web_address, unless it is every interface (0.0.0.0,
//     ::, or empty), which no browser can name; then, instead, any IP
//     address: a rebinding page's Host is its own DNS name, never an
//     address, and an address is how people reach a machine that has no
//     name;
//   - the host of each --web_origins origin (a proxy in front);
//   - a name in --web_allowed_hosts, or anything if it has "*".
//
// The port in the Host header is not checked: a proxy may serve the chat
// on another one.
type hostSet struct {
	any       bool            // "*" in --web_allowed_hosts
	anyIP     bool            // listening on every interface
	names     map[string]bool // normalized by hostName
	hostports map[string]bool // host:port of --web_origins, as the browser sends them
}

// newHostSet returns the hosts served when listening on listenHost (from
// --web_address), with --web_allowed_hosts and the --web_origins hosts.
func newHostSet(listenHost, allowed string, origins map[string]bool) (hostSet, error) {
	hs := hostSet{names: map[string]bool{}, hostports: map[string]bool{}}
	if ip := net.ParseIP(listenHost); listenHost == "" || ip != nil && ip.IsUnspecified() {
		hs.anyIP = true
	} else {
		hs.names[hostName(listenHost)] = true
	}
	for hp := range origins {
		hs.hostports[hp] = true
		hs.names[hostName(hp)] = true
	}
	for h := range strings.SplitSeq(allowed, ",") {
		h = strings.TrimSpace(h)
		switch {
		case h == "":
			continue
		case h == "*":
			hs.any = true
			continue
		case strings.ContainsAny(h, "/@?#* \t") || strings.Count(h, ":") == 1 && strings.HasSuffix(h, ":"):
			return hostSet{}, fmt.Errorf("web: --web_allowed_hosts: %q is not a host name like chat.example.com", h)
		}
		hs.names[hostName(h)] = true
	}
	return hs, nil
}

// ok reports whether a request's Host header may be served.
func (hs hostSet) ok(hostport string) bool {
	if hs.any || hs.hostports[strings.ToLower(hostport)] {
		return true
	}
	h := hostName(hostport)
	if h == "" {
		return false
	}
	if hs.names[h] || isLoopback(h) {
		return true
	}
	return hs.anyIP && net.ParseIP(h) != nil
}

// hostName returns the host of a Host header or a host[:port] flag value,
// lower-case, without port, brackets or a final dot.
func hostName(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.ToLower(strings.TrimSuffix(h, "."))
}
