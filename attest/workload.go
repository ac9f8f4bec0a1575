package attest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// WorkloadAPISource is a Source backed by the SPIFFE Workload API (for
// example a SPIRE agent's socket). The agent rotates the SVID before it
// expires; every new TLS handshake picks up the current one, so long jobs
// outlive short SVIDs.
type WorkloadAPISource struct {
	src *workloadapi.X509Source
}

var _ Source = (*WorkloadAPISource)(nil)

// NewWorkloadAPISource connects to addr (unix:///path/to/agent.sock or
// tcp://host:port) and waits, up to timeout, for the first SVID.
func NewWorkloadAPISource(ctx context.Context, addr string, timeout time.Duration) (*WorkloadAPISource, error) {
	if !strings.HasPrefix(addr, "unix://") && !strings.HasPrefix(addr, "tcp://") {
		return nil, fmt.Errorf("workload API address %q: want unix:///path/to/agent.sock or tcp://host:port", addr)
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	src, err := workloadapi.NewX509Source(cctx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("workload API %s: no SVID within %s (is the agent running, and is this workload registered?)", addr, timeout)
		}
		return nil, fmt.Errorf("workload API %s: %w", addr, err)
	}
	return &WorkloadAPISource{src: src}, nil
}

// GetX509SVID implements x509svid.Source: the current SVID.
func (w *WorkloadAPISource) GetX509SVID() (*x509svid.SVID, error) { return w.src.GetX509SVID() }

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (w *WorkloadAPISource) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return w.src.GetX509BundleForTrustDomain(td)
}

// ID is the current SVID's SPIFFE ID.
func (w *WorkloadAPISource) ID() spiffeid.ID {
	s, err := w.src.GetX509SVID()
	if err != nil {
		return spiffeid.ID{}
	}
	return s.ID
}

// Close stops watching the Workload API.
func (w *WorkloadAPISource) Close() error { return w.src.Close() }

// LoadSource returns the identity a config names: an identity directory
// (svid.pem, key.pem, bundle.pem) or a Workload API address, exactly one.
// Errors name the config field.
func LoadSource(ctx context.Context, dir, workloadAPI string, log *slog.Logger) (Source, error) {
	switch {
	case dir != "" && workloadAPI != "":
		return nil, errors.New("field identity: set dir or workload_api, not both")
	case workloadAPI != "":
		// A socket nobody listens on would otherwise cost the whole wait
		// for a first SVID before saying so.
		if u, err := url.Parse(workloadAPI); err == nil && u.Scheme == "unix" && u.Path != "" {
			c, err := net.DialTimeout("unix", u.Path, 5*time.Second)
			if err != nil {
				return nil, fmt.Errorf("field identity.workload_api: %s: %w (is the SPIRE agent running, and may this user open its socket?)", workloadAPI, err)
			}
			c.Close()
		}
		s, err := NewWorkloadAPISource(ctx, workloadAPI, 0)
		if err != nil {
			return nil, fmt.Errorf("field identity.workload_api: %w", err)
		}
		return s, nil
	case dir != "":
		// Watched, so a rewritten SVID is used from the next handshake on.
		id, err := NewDirSource(dir, log)
		if err != nil {
			return nil, fmt.Errorf("field identity.dir: %w", err)
		}
		return id, nil
	default:
		return nil, errors.New("field identity: required: dir (a directory with svid.pem, key.pem and bundle.pem) or workload_api (e.g. unix:///run/spire/agent.sock)")
	}
}
