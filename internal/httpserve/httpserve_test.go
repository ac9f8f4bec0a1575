package httpserve

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"off", Config{}, ""},
		{"token without listen (for --http)", Config{TokenFile: "t"}, ""},
		{"listen without token", Config{Listen: "127.0.0.1:9090"}, "field http.token_file: required with http.listen"},
		{"no port", Config{Listen: "127.0.0.1", TokenFile: "t"}, `field http.listen: "127.0.0.1" has no port`},
		{"dev needs no token", Config{Listen: "127.0.0.1:0", Dev: true}, ""},
		{"ok", Config{Listen: "0.0.0.0:9090", TokenFile: "t"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	_, err := New(Config{Listen: "127.0.0.1:0", TokenFile: short}, prometheus.NewRegistry(), nil, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "field http.token_file") || !strings.Contains(err.Error(), "at least 16") {
		t.Fatalf("a 3-character token: %v; want an error naming http.token_file and the minimum", err)
	}
	_, err = New(Config{Listen: "127.0.0.1:0", TokenFile: filepath.Join(dir, "missing")}, prometheus.NewRegistry(), nil, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "field http.token_file") {
		t.Fatalf("a missing token file: %v", err)
	}
}

// TestDevModeLoopback: dev mode serves a loopback client without a token.
func TestDevModeLoopback(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "federa_test_total", Help: "t"})
	reg.MustRegister(c)
	c.Add(7)
	s, err := New(Config{Listen: "127.0.0.1:0", Dev: true}, reg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	resp, err := http.Get("http://" + s.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "federa_test_total 7") {
		t.Fatalf("dev-mode /metrics from loopback: %s\n%s", resp.Status, b)
	}
	if isLoopback("192.0.2.1:5555") || !isLoopback("[::1]:5555") || !isLoopback("127.0.0.1:1") {
		t.Fatal("isLoopback misjudges an address")
	}
}
