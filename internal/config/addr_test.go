package config

import (
	"strings"
	"testing"
)

func TestCheckHostPort(t *testing.T) {
	const example = "coordinator.example.org:7443"
	tests := []struct {
		addr string
		want string // "" means valid
	}{
		{"127.0.0.1:7443", ""},
		{"coordinator.example.org:7443", ""},
		{"[::1]:7443", ""},
		{":7443", ""},
		{"127.0.0.1:0", ""},
		{"127.0.0.1", `"127.0.0.1" has no port; want host:port, e.g. 127.0.0.1:7443`},
		{"coordinator.example.org", `"coordinator.example.org" has no port; want host:port, e.g. coordinator.example.org:7443`},
		{"::1", `"::1" has no port; want host:port, e.g. [::1]:7443`},
		{"127.0.0.1:", `"127.0.0.1:" has no port; want host:port, e.g. 127.0.0.1:7443`},
		{"127.0.0.1:http-ish", `port "http-ish" is not a number`},
		{"127.0.0.1:70000", `port "70000" is not a number from 0 to 65535`},
		{"a:b:c", `is not host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := CheckHostPort(tt.addr, example)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckHostPort(%q) = %v; want nil", tt.addr, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckHostPort(%q) = %v; want %q", tt.addr, err, tt.want)
			}
		})
	}
}
