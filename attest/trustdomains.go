package attest

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/federation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/federa-dev/federa/internal/logkeys"
)

// IdentityConfig is the identity: section of coordinator.yaml and site.yaml
// (docs/configuration.md).
type IdentityConfig struct {
	// Dir is an identity directory: svid.pem, key.pem and bundle.pem.
	Dir string `yaml:"dir"`
	// WorkloadAPI is a SPIFFE Workload API address (a SPIRE agent's
	// socket, unix:///run/spire/agent.sock) used instead of Dir.
	WorkloadAPI string `yaml:"workload_api"`
	// TrustDomains are the other trust domains this process verifies peers
	// from, each with where its bundle comes from.
	TrustDomains []TrustDomainConfig `yaml:"trust_domains"`
}

// TrustDomainConfig is one foreign trust domain and where its bundle comes
// from: a PEM (or SPIFFE bundle JSON) file, a SPIFFE federation bundle
// endpoint, or both — the file is then the bundle to start from (and to
// verify an https_spiffe endpoint with the first time), the endpoint keeps
// it current.
type TrustDomainConfig struct {
	TrustDomain string `yaml:"trust_domain"`
	Bundle      string `yaml:"bundle"`
	// Endpoint is the https:// URL of the trust domain's bundle endpoint.
	Endpoint string `yaml:"endpoint"`
	// EndpointSPIFFEID selects the https_spiffe profile: the endpoint must
	// present an SVID with this ID. Empty: https_web, the endpoint's
	// certificate is checked against the system's web PKI roots.
	EndpointSPIFFEID string `yaml:"endpoint_spiffe_id"`
}

// RelativeTo returns c with relative file paths (dir, each bundle) taken
// relative to base, the directory of the config file that names them.
func (c IdentityConfig) RelativeTo(base string) IdentityConfig {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	c.Dir = abs(c.Dir)
	c.TrustDomains = append([]TrustDomainConfig(nil), c.TrustDomains...)
	for i := range c.TrustDomains {
		c.TrustDomains[i].Bundle = abs(c.TrustDomains[i].Bundle)
	}
	return c
}

// LoadSourceConfig returns the Source an identity: section names: the own
// SVID and trust domain from dir or workload_api (see LoadSource), plus a
// bundle for each of trust_domains. ctx bounds the first fetch from each
// bundle endpoint; later refreshes run until the Source is closed (it
// implements io.Closer when it holds anything to close). log receives
// refresh failures and bundle updates; nil means slog.Default(), so a
// failing endpoint is never silent. Every error names the config field.
func LoadSourceConfig(ctx context.Context, cfg IdentityConfig, log *slog.Logger) (Source, error) {
	return loadSourceConfig(ctx, cfg, log, defaultFederationTiming, nil)
}

func loadSourceConfig(ctx context.Context, cfg IdentityConfig, log *slog.Logger, timing federationTiming, webRoots *x509.CertPool) (Source, error) {
	domains, parseErr := parseTrustDomains(cfg.TrustDomains)
	inner, err := LoadSource(ctx, cfg.Dir, cfg.WorkloadAPI, log)
	if err := errors.Join(err, parseErr); err != nil {
		closeSource(inner)
		return nil, err
	}
	if len(domains) == 0 {
		return inner, nil
	}
	fs, err := newFederatedSource(ctx, inner, domains, log, timing, webRoots)
	if err != nil {
		closeSource(inner)
		return nil, err
	}
	return fs, nil
}

// NewFederatedSource wraps inner with the bundles of the trust domains in
// domains; errors name fields as in an identity: config section
// (identity.trust_domains[i]...). See LoadSourceConfig for ctx and log.
// The FederatedSource owns inner from then on: its Close closes inner.
func NewFederatedSource(ctx context.Context, inner Source, domains []TrustDomainConfig, log *slog.Logger) (*FederatedSource, error) {
	parsed, err := parseTrustDomains(domains)
	if err != nil {
		return nil, err
	}
	return newFederatedSource(ctx, inner, parsed, log, defaultFederationTiming, nil)
}

// FederatedSource is a Source that serves its own SVID and own trust
// domain's bundle from an inner Source, and the bundles of other trust
// domains from files or SPIFFE federation bundle endpoints (the https_web
// and https_spiffe profiles of the SPIFFE federation spec).
//
// Endpoint bundles are fetched again when the bundle's refresh hint says so
// (DefaultBundleRefresh when it gives none). A failed fetch is logged and
// the last good bundle stays in force; it is retried sooner than a normal
// refresh. An https_spiffe endpoint is verified against the current bundle
// of its trust domain, so a foreign CA rotation rolls forward as long as
// each new bundle is fetched while the old one is still trusted.
type FederatedSource struct {
	inner   Source
	domains map[spiffeid.TrustDomain]*foreignDomain
	timing  federationTiming
	// webRoots replaces the system roots for https_web endpoints (tests).
	webRoots *x509.CertPool
	log      *slog.Logger

	stop      context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var _ Source = (*FederatedSource)(nil)

// DefaultBundleRefresh is how often an endpoint bundle without a refresh
// hint is fetched again.
const DefaultBundleRefresh = 5 * time.Minute

type federationTiming struct {
	fetchTimeout time.Duration // one fetch, connection to body
	refresh      time.Duration // when the bundle has no refresh hint
	minRefresh   time.Duration // a lower bound on any hint
	retry        time.Duration // after a failed fetch, at most this long
}

var defaultFederationTiming = federationTiming{
	fetchTimeout: 30 * time.Second,
	refresh:      DefaultBundleRefresh,
	minRefresh:   10 * time.Second,
	retry:        30 * time.Second,
}

// Log field keys of FederatedSource, beside the shared ones in
// internal/logkeys.
const (
	logKeyTrustDomain = "trust_domain"
	logKeyEndpoint    = "endpoint"
	logKeyAuthorities = "authorities"
	logKeyFailures    = "failures"
	logKeyNextFetch   = "next_fetch"
)

// foreignDomain is one configured trust domain.
type foreignDomain struct {
	field      string // "identity.trust_domains[1]", for errors
	td         spiffeid.TrustDomain
	bundleFile string
	endpoint   string
	endpointID spiffeid.ID // zero: https_web
	bundle     atomic.Pointer[x509bundle.Bundle]

	// Only the refresh goroutine touches these after start.
	refresh  time.Duration
	failures int
}

// parseTrustDomains checks every entry without touching the network and
// loads the bundle files; it reports every problem at once.
func parseTrustDomains(list []TrustDomainConfig) ([]*foreignDomain, error) {
	var errs []error
	var out []*foreignDomain
	seen := map[spiffeid.TrustDomain]int{}
	for i, c := range list {
		field := fmt.Sprintf("identity.trust_domains[%d]", i)
		d := &foreignDomain{field: field, bundleFile: c.Bundle, endpoint: c.Endpoint}
		ok := true
		fail := func(sub string, err error) {
			errs = append(errs, fmt.Errorf("field %s.%s: %w", field, sub, err))
			ok = false
		}
		switch td, err := spiffeid.TrustDomainFromString(c.TrustDomain); {
		case c.TrustDomain == "":
			fail("trust_domain", errors.New("required (a trust domain name, e.g. bank.us)"))
		case err != nil:
			fail("trust_domain", fmt.Errorf("%q is not a trust domain name: %v (want e.g. bank.us)", c.TrustDomain, err))
		default:
			d.td = td
			if j, dup := seen[td]; dup {
				fail("trust_domain", fmt.Errorf("%s is already configured in identity.trust_domains[%d]", td, j))
			}
			seen[td] = i
		}
		if c.Bundle == "" && c.Endpoint == "" {
			fail("bundle", errors.New("set bundle (a PEM file of the trust domain's CA certificates), endpoint (its SPIFFE bundle endpoint), or both"))
		}
		if c.Endpoint != "" {
			u, err := url.Parse(c.Endpoint)
			switch {
			case err != nil:
				fail("endpoint", fmt.Errorf("%q is not a URL: %v", c.Endpoint, err))
			case u.Scheme != "https" || u.Host == "":
				fail("endpoint", fmt.Errorf("%q: want an https:// URL of a SPIFFE bundle endpoint, e.g. https://spire.bank.us:8443", c.Endpoint))
			}
		}
		if c.EndpointSPIFFEID != "" {
			id, err := spiffeid.FromString(c.EndpointSPIFFEID)
			switch {
			case c.Endpoint == "":
				fail("endpoint_spiffe_id", errors.New("set only together with endpoint (it is the SPIFFE ID that endpoint presents)"))
			case err != nil:
				fail("endpoint_spiffe_id", fmt.Errorf("%q is not a SPIFFE ID: %v (want e.g. spiffe://bank.us/spire/server; omit it for an https_web endpoint)", c.EndpointSPIFFEID, err))
			default:
				d.endpointID = id
			}
		}
		if c.Bundle != "" && !d.td.IsZero() {
			b, err := loadForeignBundle(c.Bundle, d.td)
			if err != nil {
				fail("bundle", err)
			} else {
				d.bundle.Store(b)
			}
		}
		if ok {
			out = append(out, d)
		}
	}
	return out, errors.Join(errs...)
}

// loadForeignBundle reads a trust domain's bundle file: PEM certificates,
// or the SPIFFE bundle (JWKS) JSON `spire-server bundle show -format
// spiffe` prints.
func loadForeignBundle(path string, td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load trust bundle: %w", err)
	}
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		sb, err := spiffebundle.Parse(td, data)
		if err != nil {
			return nil, fmt.Errorf("load trust bundle %s: %w", path, err)
		}
		if len(sb.X509Authorities()) == 0 {
			return nil, fmt.Errorf("load trust bundle %s: the SPIFFE bundle has no X.509 authorities", path)
		}
		return sb.X509Bundle(), nil
	}
	b, err := loadBundle(path, td)
	if err != nil {
		return nil, err
	}
	if b.TrustDomain() != td {
		return nil, fmt.Errorf("load trust bundle %s: its CA certificate is for trust domain %s, not %s", path, b.TrustDomain(), td)
	}
	return b, nil
}

func newFederatedSource(ctx context.Context, inner Source, domains []*foreignDomain, log *slog.Logger, timing federationTiming, webRoots *x509.CertPool) (*FederatedSource, error) {
	own := inner.ID().TrustDomain()
	s := &FederatedSource{
		inner:    inner,
		domains:  map[spiffeid.TrustDomain]*foreignDomain{},
		timing:   timing,
		webRoots: webRoots,
	}
	if log == nil {
		log = slog.Default()
	}
	s.log = log.With(logkeys.Component, "trust-bundles")
	var errs []error
	for _, d := range domains {
		if d.td == own {
			errs = append(errs, fmt.Errorf("field %s.trust_domain: %s is this process's own trust domain (%s); its bundle comes from identity.dir or identity.workload_api", d.field, d.td, inner.ID()))
			continue
		}
		s.domains[d.td] = d
	}
	for _, d := range s.domains {
		if d.endpointID.IsZero() {
			continue
		}
		// The first https_spiffe fetch is verified against a bundle this
		// process already has; the endpoint cannot vouch for itself.
		etd := d.endpointID.TrustDomain()
		if etd == own {
			continue
		}
		if e := s.domains[etd]; e != nil && e.bundleFile != "" {
			continue
		}
		if _, err := inner.GetX509BundleForTrustDomain(etd); err == nil {
			continue
		}
		if etd == d.td {
			errs = append(errs, fmt.Errorf("field %s.bundle: required with endpoint_spiffe_id %s: the endpoint's SVID is verified against %s's own bundle, so the first one must come from a file (on their side: spire-server bundle show)", d.field, d.endpointID, d.td))
		} else {
			errs = append(errs, fmt.Errorf("field %s.endpoint_spiffe_id: no bundle for trust domain %s to verify %s with; list %s in trust_domains with a bundle file", d.field, etd, d.endpointID, etd))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	// Fetch every endpoint once, in parallel, before serving anything.
	type first struct {
		d   *foreignDomain
		err error
	}
	var firsts []first
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, d := range domains {
		if d.endpoint == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, hint, err := s.fetch(ctx, d)
			if err == nil {
				d.bundle.Store(b)
				d.refresh = s.refreshFor(hint)
			}
			mu.Lock()
			firsts = append(firsts, first{d, err})
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, f := range firsts {
		if f.err == nil {
			continue
		}
		if f.d.bundle.Load() == nil {
			errs = append(errs, fmt.Errorf("field %s.endpoint: %w (set bundle too, to start from a file while the endpoint is unreachable)", f.d.field, f.err))
			continue
		}
		f.d.failures = 1
		f.d.refresh = s.timing.refresh
		s.log.Warn("trust bundle endpoint unreachable at start; using the bundle file until it answers",
			logKeyTrustDomain, f.d.td.Name(), logKeyEndpoint, f.d.endpoint, logkeys.Err, f.err.Error())
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	wctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	for _, d := range domains {
		if d.endpoint == "" {
			continue
		}
		next := d.refresh
		if d.failures > 0 {
			next = min(s.timing.retry, d.refresh)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.watch(wctx, d, next)
		}()
	}
	return s, nil
}

// fetch gets d's bundle from its endpoint once.
func (s *FederatedSource) fetch(ctx context.Context, d *foreignDomain) (*x509bundle.Bundle, time.Duration, error) {
	var opts []federation.FetchOption
	if d.endpointID.IsZero() {
		if s.webRoots != nil {
			opts = append(opts, federation.WithWebPKIRoots(s.webRoots))
		}
	} else {
		// s, not inner: the endpoint's trust domain may be a foreign one
		// whose bundle this source keeps current.
		opts = append(opts, federation.WithSPIFFEAuth(s, d.endpointID))
	}
	fctx, cancel := context.WithTimeout(ctx, s.timing.fetchTimeout)
	defer cancel()
	b, err := federation.FetchBundle(fctx, d.td, d.endpoint, opts...)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch bundle of %s from %s: %w", d.td, d.endpoint, err)
	}
	if len(b.X509Authorities()) == 0 {
		return nil, 0, fmt.Errorf("fetch bundle of %s from %s: the bundle has no X.509 authorities", d.td, d.endpoint)
	}
	hint, _ := b.RefreshHint()
	return b.X509Bundle(), hint, nil
}

// refreshFor is when to fetch again after a good fetch with this hint.
func (s *FederatedSource) refreshFor(hint time.Duration) time.Duration {
	if hint <= 0 {
		return s.timing.refresh
	}
	return max(hint, s.timing.minRefresh)
}

// watch refreshes d's bundle until ctx ends.
func (s *FederatedSource) watch(ctx context.Context, d *foreignDomain, next time.Duration) {
	t := time.NewTimer(next)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b, hint, err := s.fetch(ctx, d)
		if ctx.Err() != nil {
			return
		}
		t.Reset(s.update(d, b, hint, err))
	}
}

// update applies one fetch result and says when to fetch next.
func (s *FederatedSource) update(d *foreignDomain, b *x509bundle.Bundle, hint time.Duration, err error) time.Duration {
	log := s.log.With(logKeyTrustDomain, d.td.Name(), logKeyEndpoint, d.endpoint)
	if err != nil {
		d.failures++
		next := min(s.timing.retry, d.refresh)
		log.Warn("trust bundle refresh failed; keeping the last good bundle",
			logkeys.Err, err.Error(), logKeyFailures, d.failures, logKeyNextFetch, next)
		return next
	}
	if d.failures > 0 {
		log.Info("trust bundle endpoint answers again", logKeyFailures, d.failures)
		d.failures = 0
	}
	d.refresh = s.refreshFor(hint)
	if old := d.bundle.Load(); old == nil || !old.Equal(b) {
		d.bundle.Store(b)
		log.Info("trust bundle updated", logKeyAuthorities, len(b.X509Authorities()), logKeyNextFetch, d.refresh)
	}
	return d.refresh
}

// GetX509SVID implements x509svid.Source: the inner source's SVID.
func (s *FederatedSource) GetX509SVID() (*x509svid.SVID, error) { return s.inner.GetX509SVID() }

// GetX509BundleForTrustDomain implements x509bundle.Source: a configured
// trust domain's current bundle, else whatever the inner source has.
func (s *FederatedSource) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if d := s.domains[td]; d != nil {
		if b := d.bundle.Load(); b != nil {
			return b, nil
		}
	}
	return s.inner.GetX509BundleForTrustDomain(td)
}

// ID is the inner source's SPIFFE ID.
func (s *FederatedSource) ID() spiffeid.ID { return s.inner.ID() }

// Close stops refreshing endpoint bundles and waits for fetches in flight
// to end, then closes the inner source if it has a Close method. It is
// idempotent.
func (s *FederatedSource) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.stop != nil {
			s.stop()
		}
		s.wg.Wait()
		err = closeSource(s.inner)
	})
	return err
}

func closeSource(src Source) error {
	if c, ok := src.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
