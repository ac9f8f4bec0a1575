// Package httpserve is the daemons' opt-in plain-HTTP listener: Prometheus
// /metrics, an unauthenticated /healthz, and whatever read-only pages the
// daemon adds (the coordinator's jobs page). It is off unless an address
// is configured (http.listen, --http).
//
// It serves plain HTTP, so it guards what it serves: every path but
// /healthz needs `Authorization: Bearer <token>` with the token from
// http.token_file, compared in constant time. Dev mode (federa demo
// --serve only) instead lets any loopback client read without a token and
// refuses everyone else. Only GET and HEAD are answered, so nothing served
// here can change state.
package httpserve

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/federa-dev/federa/internal/config"
	"github.com/federa-dev/federa/internal/logkeys"
)

// File is the http: section of coordinator.yaml and site.yaml.
type File struct {
	// Listen is host:port for plain HTTP; empty (the default) serves
	// nothing.
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token every reader must send; required
	// with listen.
	TokenFile string `yaml:"token_file"`
	// Reader is the SPIFFE ID the token's holder reads the coordinator's
	// jobs page as: the access policy decides which jobs (and whether the
	// audit figures) it shows, as for that caller's GetJob. Without it the
	// page is refused (dev mode aside); /metrics needs only the token.
	Reader string `yaml:"reader"`
}

// Config is the HTTP listener's configuration. The zero value is off.
type Config struct {
	// Listen is host:port; port 0 picks a free one (see Server.Addr).
	// Empty: no listener.
	Listen string
	// TokenFile is a file holding the bearer token readers must send.
	TokenFile string
	// Reader is the SPIFFE ID the token reads the coordinator's page as
	// (File.Reader); "" refuses the page outside dev mode.
	Reader string
	// Dev lets loopback clients read without a token and refuses any
	// other client: federa demo --serve, never a production daemon.
	Dev bool
}

// Config is f with TokenFile taken relative to base, the directory of the
// config file that names it.
func (f File) Config(base string) Config {
	c := Config{Listen: f.Listen, TokenFile: f.TokenFile, Reader: f.Reader}
	if c.TokenFile != "" && !filepath.IsAbs(c.TokenFile) {
		c.TokenFile = filepath.Join(base, c.TokenFile)
	}
	return c
}

// Enabled reports whether a listener is configured.
func (c Config) Enabled() bool { return c.Listen != "" }

// Validate names every problem with the http: fields.
func (c Config) Validate() error {
	if c.Listen == "" {
		// A token file alone is fine: --http ADDR may turn the listener on.
		return nil
	}
	var errs []error
	if err := config.CheckHostPort(c.Listen, "127.0.0.1:9090"); err != nil {
		errs = append(errs, fmt.Errorf("field http.listen: %w", err))
	}
	if !c.Dev && c.TokenFile == "" {
		errs = append(errs, errors.New("field http.token_file: required with http.listen: a file holding the bearer token that readers of /metrics and the page send (Authorization: Bearer <token>)"))
	}
	return errors.Join(errs...)
}

// readToken loads the bearer token: the file's first line, which must not
// be empty.
func readToken(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("field http.token_file: %w", err)
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	tok = strings.TrimSpace(tok)
	if len(tok) < 16 {
		return nil, fmt.Errorf("field http.token_file: %s holds a token of %d characters; want at least 16 (e.g. openssl rand -hex 32 > %s)", path, len(tok), path)
	}
	return []byte(tok), nil
}

// Server is a bound HTTP listener.
type Server struct {
	lis   net.Listener
	srv   *http.Server
	token []byte
	dev   bool
	log   *slog.Logger
}

// New binds cfg.Listen and serves mux behind the access rules of the
// package doc, plus /metrics from reg and /healthz. Nothing is served
// until Serve.
func New(cfg Config, reg prometheus.Gatherer, mux *http.ServeMux, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{dev: cfg.Dev, log: log}
	if !cfg.Dev {
		tok, err := readToken(cfg.TokenFile)
		if err != nil {
			return nil, err
		}
		s.token = tok
	}
	if mux == nil {
		mux = http.NewServeMux()
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("field http.listen: listen on %s: %w", cfg.Listen, err)
	}
	s.lis = lis
	s.srv = &http.Server{
		Handler:           s.guard(mux),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	return s, nil
}

// Addr is the bound address (host:port).
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Serve serves until ctx ends, then shuts down within 5 seconds.
func (s *Server) Serve(ctx context.Context) error {
	mode := "token"
	if s.dev {
		mode = "dev: loopback without a token"
	}
	s.log.Info("http serving /metrics", logkeys.Addr, s.Addr(), "access", mode)
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.lis) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("http serve on %s: %w", s.Addr(), err)
	}
}

// Close stops serving at once and releases the listener. Safe to call
// more than once.
func (s *Server) Close() error {
	err := s.srv.Close()
	_ = s.lis.Close()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// guard applies the access rules: read-only methods, /healthz open, and
// every other path behind the token (or, in dev mode, loopback).
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "read-only: only GET and HEAD are served here", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path == "/healthz" {
			_, _ = w.Write([]byte("ok\n"))
			return
		}
		if !s.allowed(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) allowed(w http.ResponseWriter, r *http.Request) bool {
	if s.dev {
		if isLoopback(r.RemoteAddr) {
			return true
		}
		http.Error(w, "dev mode serves loopback clients only", http.StatusForbidden)
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), s.token) == 1 {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="federa"`)
	http.Error(w, "send Authorization: Bearer <token>, the token in the daemon's http.token_file", http.StatusUnauthorized)
	return false
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
