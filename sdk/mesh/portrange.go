package mesh

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"

	"go-micro.dev/v4/transport"
)

// ListenAddress is a server address with the http transport: a host and a
// port, or a host and a range of ports ("127.0.0.1:9100-9199"), of which the
// server takes the first free one (go-micro's util/net.Listen tries them in
// order).
type ListenAddress struct {
	// Host may be empty (every interface).
	Host string
	// First and Last bound the ports tried; equal for a single port. Port
	// 0 means any free port.
	First, Last int
}

// ParseListenAddress reads "host:port" or "host:first-last", with an
// explanation of what is wrong for a user.
func ParseListenAddress(addr string) (ListenAddress, error) {
	host, ports, err := net.SplitHostPort(strings.TrimSpace(addr))
	if err != nil {
		return ListenAddress{}, fmt.Errorf("server_address %q is not host:port or host:first-last (e.g. 127.0.0.1:9100-9199): %w", addr, unwrapAddrError(err))
	}
	first, last, isRange := strings.Cut(ports, "-")
	lo, err := parsePort(addr, first)
	if err != nil {
		return ListenAddress{}, err
	}
	if !isRange {
		return ListenAddress{Host: host, First: lo, Last: lo}, nil
	}
	hi, err := parsePort(addr, last)
	if err != nil {
		return ListenAddress{}, err
	}
	switch {
	case lo == 0:
		return ListenAddress{}, fmt.Errorf("server_address %q: a port range cannot start at 0 (0 means any free port; give it alone)", addr)
	case hi < lo:
		return ListenAddress{}, fmt.Errorf("server_address %q: the port range ends (%d) before it starts (%d)", addr, hi, lo)
	}
	return ListenAddress{Host: host, First: lo, Last: hi}, nil
}

func parsePort(addr, s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("server_address %q: a port is missing", addr)
	}
	p, err := strconv.Atoi(s)
	if err != nil || strings.ContainsAny(s, "+-") {
		return 0, fmt.Errorf("server_address %q: port %q is not a number", addr, s)
	}
	if p < 0 || p > 65535 {
		return 0, fmt.Errorf("server_address %q: port %d is not between 0 and 65535", addr, p)
	}
	return p, nil
}

func unwrapAddrError(err error) error {
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return errors.New(ae.Err)
	}
	return err
}

// IsRange reports whether a is a range of more than one port.
func (a ListenAddress) IsRange() bool { return a.Last > a.First }

// Ports returns how many ports a covers.
func (a ListenAddress) Ports() int { return a.Last - a.First + 1 }

// String returns a in the form ParseListenAddress reads.
func (a ListenAddress) String() string {
	if a.IsRange() {
		return net.JoinHostPort(a.Host, fmt.Sprintf("%d-%d", a.First, a.Last))
	}
	return net.JoinHostPort(a.Host, strconv.Itoa(a.First))
}

// PortRangeError says that no port of a range could be listened on.
type PortRangeError struct {
	// Address is the range, as given.
	Address string
	// Ports is how many ports were tried.
	Ports int
	// InUse is true when the last port failed because it was taken.
	InUse bool
	// Err is the error for the last port tried.
	Err error
}

func (e *PortRangeError) Error() string {
	if e.InUse {
		return fmt.Sprintf("mesh: no free port in %s: all %d ports are in use", e.Address, e.Ports)
	}
	return fmt.Sprintf("mesh: could not listen on any of the %d ports of %s: %v", e.Ports, e.Address, e.Err)
}

func (e *PortRangeError) Unwrap() error { return e.Err }

// portRanges wraps a transport whose Listen accepts port ranges (go-micro's
// http transport) so that a range with no free port gets a PortRangeError
// instead of the bind error of its last port.
type portRanges struct {
	transport.Transport
}

func (p portRanges) Listen(addr string, opts ...transport.ListenOption) (transport.Listener, error) {
	l, err := p.Transport.Listen(addr, opts...)
	if err == nil {
		return l, nil
	}
	la, perr := ParseListenAddress(addr)
	if perr != nil {
		return nil, perr
	}
	if !la.IsRange() {
		return nil, err
	}
	return nil, &PortRangeError{Address: addr, Ports: la.Ports(), InUse: errors.Is(err, syscall.EADDRINUSE), Err: err}
}
