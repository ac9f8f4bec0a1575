package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// CheckHostPort reports whether addr is host:port with a port. Without one,
// a gRPC client dials :443 and a listener fails later and further from the
// setting, so an address field is checked when the config is. example is
// an address to show, e.g. "coordinator.example.org:7443".
func CheckHostPort(addr, example string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if net.ParseIP(addr) != nil || !strings.Contains(addr, ":") {
			return fmt.Errorf("%q has no port; want host:port, e.g. %s", addr, withPort(addr, example))
		}
		return fmt.Errorf("%q is not host:port (%v); want e.g. %s (an IPv6 host in brackets: [::1]:7443)", addr, err, example)
	}
	if port == "" {
		return fmt.Errorf("%q has no port; want host:port, e.g. %s", addr, withPort(host, example))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535; want host:port, e.g. %s", addr, port, example)
	}
	return nil
}

// withPort is host with example's port, the likeliest fix to suggest.
func withPort(host, example string) string {
	_, port, err := net.SplitHostPort(example)
	if err != nil || host == "" {
		return example
	}
	return net.JoinHostPort(host, port)
}
