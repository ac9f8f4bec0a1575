package attest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/federation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

var (
	tdHospital = spiffeid.RequireTrustDomainFromString("hospital.eu")
	tdBank     = spiffeid.RequireTrustDomainFromString("bank.us")
	bankSite   = spiffeid.RequireFromString("spiffe://bank.us/site/us/boston")
	bankServer = spiffeid.RequireFromString("spiffe://bank.us/spire/server")
)

// fastTiming refreshes quickly so tests see refreshes in milliseconds. Its
// fetch timeout only bounds a hang: no test expects it to fire.
var fastTiming = federationTiming{fetchTimeout: time.Minute, refresh: time.Hour, minRefresh: 5 * time.Millisecond, retry: 20 * time.Millisecond}

func tdCA(t *testing.T, td spiffeid.TrustDomain) *CA {
	t.Helper()
	ca, err := NewCA(td)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func tdIssue(t *testing.T, ca *CA, id spiffeid.ID) *x509svid.SVID {
	t.Helper()
	svid, err := ca.Issue(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return svid
}

// tdCoordinatorDir writes the coordinator's identity in hospital.eu.
func tdCoordinatorDir(t *testing.T, ca *CA) string {
	t.Helper()
	dir := t.TempDir()
	if err := ca.IssueToDir(CoordinatorID(ca.TrustDomain), time.Hour, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func tdWrite(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func tdPEM(cas ...*CA) []byte {
	var b bytes.Buffer
	for _, ca := range cas {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
	}
	return b.Bytes()
}

// tdHandshake runs one mutual TLS handshake on loopback: server verifies
// peers against its source, the client presents client's SVID and accepts
// any server its bundles verify. It returns the server's verdict.
func tdHandshake(t *testing.T, server, client Source) error {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	verdict := make(chan error, 1)
	go func() {
		c, err := lis.Accept()
		if err != nil {
			verdict <- err
			return
		}
		defer c.Close()
		verdict <- tls.Server(c, tlsconfig.MTLSServerConfig(server, server, tlsconfig.AuthorizeAny())).Handshake()
	}()
	c, err := tls.Dial("tcp", lis.Addr().String(), tlsconfig.MTLSClientConfig(client, client, tlsconfig.AuthorizeAny()))
	if err == nil {
		// In TLS 1.3 the server judges the client's certificate after the
		// client's side is done; read to hear the verdict.
		_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		_, _ = c.Read(make([]byte, 1))
		c.Close()
	}
	return <-verdict
}

// tdLogs is a logger tests can read.
type tdLogs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *tdLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *tdLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *tdLogs) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// tdEventually polls cond for up to a minute: only what never happens
// fails, however loaded the machine.
func tdEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func tdLoad(t *testing.T, cfg IdentityConfig, log *slog.Logger, webRoots *x509.CertPool) Source {
	t.Helper()
	src, err := loadSourceConfig(context.Background(), cfg, log, fastTiming, webRoots)
	if err != nil {
		t.Fatalf("load source: %v", err)
	}
	t.Cleanup(func() { closeSource(src) })
	return src
}

// bundleEndpoint is a trust domain's SPIFFE bundle endpoint served by
// go-spiffe's federation.NewHandler, whose bundle and server SVID the test
// can change, and which can be made to fail.
type bundleEndpoint struct {
	URL     string
	bundles *spiffebundle.Set
	svid    atomic.Pointer[x509svid.SVID]
	failing atomic.Bool
	hits    atomic.Int64
}

func (e *bundleEndpoint) GetX509SVID() (*x509svid.SVID, error) { return e.svid.Load(), nil }

func (e *bundleEndpoint) serve(b *spiffebundle.Bundle) { e.bundles.Add(b) }

func (e *bundleEndpoint) handler(t *testing.T, td spiffeid.TrustDomain) http.Handler {
	h, err := federation.NewHandler(td, e.bundles)
	if err != nil {
		t.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		if e.failing.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// startSPIFFEEndpoint serves td's bundle over https_spiffe with svid.
func startSPIFFEEndpoint(t *testing.T, td spiffeid.TrustDomain, b *spiffebundle.Bundle, svid *x509svid.SVID) *bundleEndpoint {
	t.Helper()
	e := &bundleEndpoint{bundles: spiffebundle.NewSet(b)}
	e.svid.Store(svid)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: e.handler(t, td), TLSConfig: tlsconfig.TLSServerConfig(e), ReadHeaderTimeout: time.Minute}
	go func() { _ = srv.ServeTLS(lis, "", "") }()
	t.Cleanup(func() { srv.Close() })
	e.URL = "https://" + lis.Addr().String()
	return e
}

// startWebEndpoint serves td's bundle over https_web with an httptest
// certificate; the returned pool holds its root.
func startWebEndpoint(t *testing.T, td spiffeid.TrustDomain, b *spiffebundle.Bundle) (*bundleEndpoint, *x509.CertPool) {
	t.Helper()
	e := &bundleEndpoint{bundles: spiffebundle.NewSet(b)}
	ts := httptest.NewTLSServer(e.handler(t, td))
	t.Cleanup(ts.Close)
	e.URL = ts.URL
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	return e, roots
}

func TestTrustDomainBundleFile(t *testing.T) {
	hospital, bank := tdCA(t, tdHospital), tdCA(t, tdBank)
	dir := tdCoordinatorDir(t, hospital)
	// The bank's site trusts the hospital's coordinator.
	site := NewIdentity(tdIssue(t, bank, bankSite), bank.Bundle(), hospital.Bundle())
	jsonBundle, err := spiffebundle.FromX509Bundle(bank.Bundle()).Marshal()
	if err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"pem", tdPEM(bank)},
		{"spiffe bundle json", jsonBundle},
	} {
		t.Run(tt.name, func(t *testing.T) {
			coord := tdLoad(t, IdentityConfig{Dir: dir, TrustDomains: []TrustDomainConfig{
				{TrustDomain: "bank.us", Bundle: tdWrite(t, "bank.us.bundle", tt.data)},
			}}, nil, nil)
			if coord.ID() != CoordinatorID(tdHospital) {
				t.Errorf("ID() = %s, want the inner source's", coord.ID())
			}
			if err := tdHandshake(t, coord, site); err != nil {
				t.Fatalf("a site of a configured trust domain was refused: %v", err)
			}
			// The own trust domain still comes from the identity directory.
			user := NewIdentity(tdIssue(t, hospital, spiffeid.RequireFromString("spiffe://hospital.eu/user/alice")), hospital.Bundle())
			if err := tdHandshake(t, coord, user); err != nil {
				t.Fatalf("a peer of the own trust domain was refused: %v", err)
			}
		})
	}

	t.Run("without the bundle the site is refused", func(t *testing.T) {
		coord := tdLoad(t, IdentityConfig{Dir: dir}, nil, nil)
		err := tdHandshake(t, coord, site)
		if err == nil || !strings.Contains(err.Error(), `"bank.us"`) {
			t.Fatalf("handshake = %v, want refused for want of a bank.us bundle", err)
		}
	})
	t.Run("another CA of the same name is refused", func(t *testing.T) {
		impostor := tdCA(t, tdBank)
		coord := tdLoad(t, IdentityConfig{Dir: dir, TrustDomains: []TrustDomainConfig{
			{TrustDomain: "bank.us", Bundle: tdWrite(t, "bank.us.pem", tdPEM(bank))},
		}}, nil, nil)
		fake := NewIdentity(tdIssue(t, impostor, bankSite), hospital.Bundle())
		if err := tdHandshake(t, coord, fake); err == nil {
			t.Fatal("an SVID from another bank.us CA was accepted")
		}
	})
}

func TestTrustDomainEndpointSPIFFE(t *testing.T) {
	hospital, bank, bankNext := tdCA(t, tdHospital), tdCA(t, tdBank), tdCA(t, tdBank)
	// The bank rotates its CA: the endpoint first publishes the old and the
	// new CA, then the new one alone, and its server SVID moves over.
	both := spiffebundle.FromX509Authorities(tdBank, []*x509.Certificate{bank.Cert, bankNext.Cert})
	both.SetRefreshHint(10 * time.Millisecond)
	ep := startSPIFFEEndpoint(t, tdBank, both, tdIssue(t, bank, bankServer))

	logs := &tdLogs{}
	coord := tdLoad(t, IdentityConfig{Dir: tdCoordinatorDir(t, hospital), TrustDomains: []TrustDomainConfig{{
		TrustDomain: "bank.us", Endpoint: ep.URL, EndpointSPIFFEID: bankServer.String(),
		// The first fetch is verified against this; later ones against
		// what the endpoint served last.
		Bundle: tdWrite(t, "bank.us.pem", tdPEM(bank)),
	}}}, logs.logger(), nil)

	oldSite := NewIdentity(tdIssue(t, bank, bankSite), hospital.Bundle())
	newSite := NewIdentity(tdIssue(t, bankNext, bankSite), hospital.Bundle())
	if err := tdHandshake(t, coord, newSite); err != nil {
		t.Fatalf("an SVID of the bank's next CA was refused after the first fetch: %v", err)
	}
	if err := tdHandshake(t, coord, oldSite); err != nil {
		t.Fatalf("an SVID of the bank's current CA was refused: %v", err)
	}

	ep.svid.Store(tdIssue(t, bankNext, bankServer))
	ep.serve(spiffebundle.FromX509Authorities(tdBank, []*x509.Certificate{bankNext.Cert}))
	tdEventually(t, "the rotated bundle", func() bool {
		b, err := coord.GetX509BundleForTrustDomain(tdBank)
		return err == nil && len(b.X509Authorities()) == 1 && b.HasX509Authority(bankNext.Cert)
	})
	if err := tdHandshake(t, coord, oldSite); err == nil {
		t.Error("an SVID of the retired CA was still accepted")
	}
	if err := tdHandshake(t, coord, newSite); err != nil {
		t.Errorf("an SVID of the new CA was refused: %v", err)
	}
	if !strings.Contains(logs.String(), "trust bundle updated") || !strings.Contains(logs.String(), "trust_domain=bank.us") {
		t.Errorf("the update was not logged:\n%s", logs)
	}
}

func TestTrustDomainEndpointWeb(t *testing.T) {
	hospital, bank := tdCA(t, tdHospital), tdCA(t, tdBank)
	ep, roots := startWebEndpoint(t, tdBank, spiffebundle.FromX509Bundle(bank.Bundle()))
	cfg := IdentityConfig{Dir: tdCoordinatorDir(t, hospital), TrustDomains: []TrustDomainConfig{{TrustDomain: "bank.us", Endpoint: ep.URL}}}

	coord := tdLoad(t, cfg, nil, roots)
	site := NewIdentity(tdIssue(t, bank, bankSite), hospital.Bundle())
	if err := tdHandshake(t, coord, site); err != nil {
		t.Fatalf("site refused with the bundle from an https_web endpoint: %v", err)
	}

	t.Run("a certificate the web PKI does not vouch for", func(t *testing.T) {
		// With the system roots the httptest certificate is unknown: the
		// process does not start rather than trust a bundle from anyone.
		_, err := loadSourceConfig(context.Background(), cfg, nil, fastTiming, nil)
		if err == nil || !strings.Contains(err.Error(), "field identity.trust_domains[0].endpoint:") || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestTrustDomainEndpointKeepsLastGoodBundle(t *testing.T) {
	hospital, bank, bankNext := tdCA(t, tdHospital), tdCA(t, tdBank), tdCA(t, tdBank)
	first := spiffebundle.FromX509Bundle(bank.Bundle())
	// A refresh hint far below the default refresh (an hour in fastTiming):
	// refreshes within the test prove the hint is honoured.
	first.SetRefreshHint(10 * time.Millisecond)
	ep, roots := startWebEndpoint(t, tdBank, first)
	logs := &tdLogs{}
	coord := tdLoad(t, IdentityConfig{Dir: tdCoordinatorDir(t, hospital), TrustDomains: []TrustDomainConfig{{TrustDomain: "bank.us", Endpoint: ep.URL}}}, logs.logger(), roots)
	site := NewIdentity(tdIssue(t, bank, bankSite), hospital.Bundle())

	ep.failing.Store(true)
	tdEventually(t, "a failed refresh to be logged", func() bool {
		return strings.Contains(logs.String(), "trust bundle refresh failed; keeping the last good bundle")
	})
	if err := tdHandshake(t, coord, site); err != nil {
		t.Fatalf("the last good bundle was dropped when the endpoint failed: %v", err)
	}
	for _, w := range []string{"level=WARN", "trust_domain=bank.us", "endpoint=" + ep.URL} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("failure log lacks %q:\n%s", w, logs)
		}
	}

	next := spiffebundle.FromX509Authorities(tdBank, []*x509.Certificate{bankNext.Cert})
	next.SetRefreshHint(10 * time.Millisecond)
	ep.serve(next)
	ep.failing.Store(false)
	tdEventually(t, "the new bundle after the endpoint recovered", func() bool {
		b, _ := coord.GetX509BundleForTrustDomain(tdBank)
		return b != nil && b.HasX509Authority(bankNext.Cert)
	})
	if !strings.Contains(logs.String(), "trust bundle endpoint answers again") {
		t.Errorf("recovery not logged:\n%s", logs)
	}
}

func TestTrustDomainEndpointDownAtStart(t *testing.T) {
	hospital, bank := tdCA(t, tdHospital), tdCA(t, tdBank)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "https://" + lis.Addr().String()
	lis.Close() // nothing listens there now
	dir := tdCoordinatorDir(t, hospital)

	t.Run("no bundle file: start-up fails naming the endpoint", func(t *testing.T) {
		_, err := loadSourceConfig(context.Background(), IdentityConfig{Dir: dir, TrustDomains: []TrustDomainConfig{
			{TrustDomain: "bank.us", Endpoint: down},
		}}, nil, fastTiming, nil)
		if err == nil || !strings.Contains(err.Error(), "field identity.trust_domains[0].endpoint: fetch bundle of bank.us from "+down) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("with a bundle file: starts from the file and keeps trying", func(t *testing.T) {
		logs := &tdLogs{}
		coord := tdLoad(t, IdentityConfig{Dir: dir, TrustDomains: []TrustDomainConfig{
			{TrustDomain: "bank.us", Endpoint: down, Bundle: tdWrite(t, "bank.pem", tdPEM(bank))},
		}}, logs.logger(), nil)
		if err := tdHandshake(t, coord, NewIdentity(tdIssue(t, bank, bankSite), hospital.Bundle())); err != nil {
			t.Fatalf("site refused: %v", err)
		}
		if !strings.Contains(logs.String(), "using the bundle file until it answers") {
			t.Errorf("start without the endpoint not logged:\n%s", logs)
		}
		tdEventually(t, "a retry", func() bool { return strings.Contains(logs.String(), "trust bundle refresh failed") })
	})
}

func TestTrustDomainConfigErrors(t *testing.T) {
	hospital, bank := tdCA(t, tdHospital), tdCA(t, tdBank)
	dir := tdCoordinatorDir(t, hospital)
	bankPEM := tdWrite(t, "bank.pem", tdPEM(bank))
	hospitalPEM := tdWrite(t, "hospital.pem", tdPEM(hospital))
	garbage := tdWrite(t, "garbage.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	garbageJSON := tdWrite(t, "garbage.json", []byte(`{"keys": [{"kty": "nonsense"}]}`))
	tests := []struct {
		name string
		td   TrustDomainConfig
		want []string
	}{
		{"no trust domain", TrustDomainConfig{Bundle: bankPEM},
			[]string{"field identity.trust_domains[0].trust_domain: required"}},
		{"bad trust domain name", TrustDomainConfig{TrustDomain: "Bank US", Bundle: bankPEM},
			[]string{"field identity.trust_domains[0].trust_domain:", `"Bank US" is not a trust domain name`}},
		{"no bundle and no endpoint", TrustDomainConfig{TrustDomain: "bank.us"},
			[]string{"field identity.trust_domains[0].bundle: set bundle"}},
		{"bundle file missing", TrustDomainConfig{TrustDomain: "bank.us", Bundle: filepath.Join(t.TempDir(), "nope.pem")},
			[]string{"field identity.trust_domains[0].bundle:", "nope.pem", "no such file"}},
		{"bundle path not readable", TrustDomainConfig{TrustDomain: "bank.us", Bundle: t.TempDir()},
			[]string{"field identity.trust_domains[0].bundle:", "is a directory"}},
		{"bundle does not parse", TrustDomainConfig{TrustDomain: "bank.us", Bundle: garbage},
			[]string{"field identity.trust_domains[0].bundle:", garbage}},
		{"bundle json does not parse", TrustDomainConfig{TrustDomain: "bank.us", Bundle: garbageJSON},
			[]string{"field identity.trust_domains[0].bundle:", garbageJSON}},
		{"bundle of another trust domain", TrustDomainConfig{TrustDomain: "bank.us", Bundle: hospitalPEM},
			[]string{"field identity.trust_domains[0].bundle:", "for trust domain hospital.eu, not bank.us"}},
		{"own trust domain", TrustDomainConfig{TrustDomain: "hospital.eu", Bundle: hospitalPEM},
			[]string{"field identity.trust_domains[0].trust_domain: hospital.eu is this process's own trust domain"}},
		{"endpoint not https", TrustDomainConfig{TrustDomain: "bank.us", Endpoint: "http://spire.bank.us:8443"},
			[]string{"field identity.trust_domains[0].endpoint:", "want an https:// URL"}},
		{"endpoint not a URL", TrustDomainConfig{TrustDomain: "bank.us", Endpoint: "https://spire bank"},
			[]string{"field identity.trust_domains[0].endpoint:", "is not a URL"}},
		{"bad endpoint_spiffe_id", TrustDomainConfig{TrustDomain: "bank.us", Bundle: bankPEM, Endpoint: "https://spire.bank.us:8443", EndpointSPIFFEID: "bank.us/spire/server"},
			[]string{"field identity.trust_domains[0].endpoint_spiffe_id:", `"bank.us/spire/server" is not a SPIFFE ID`}},
		{"endpoint_spiffe_id without endpoint", TrustDomainConfig{TrustDomain: "bank.us", Bundle: bankPEM, EndpointSPIFFEID: bankServer.String()},
			[]string{"field identity.trust_domains[0].endpoint_spiffe_id: set only together with endpoint"}},
		{"https_spiffe with nothing to verify the endpoint with", TrustDomainConfig{TrustDomain: "bank.us", Endpoint: "https://spire.bank.us:8443", EndpointSPIFFEID: bankServer.String()},
			[]string{"field identity.trust_domains[0].bundle: required with endpoint_spiffe_id spiffe://bank.us/spire/server"}},
		{"https_spiffe endpoint in an unknown trust domain", TrustDomainConfig{TrustDomain: "bank.us", Endpoint: "https://spire.bank.us:8443", EndpointSPIFFEID: "spiffe://hoster.example/bundles"},
			[]string{"field identity.trust_domains[0].endpoint_spiffe_id: no bundle for trust domain hoster.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := loadSourceConfig(context.Background(), IdentityConfig{Dir: dir, TrustDomains: []TrustDomainConfig{tt.td}}, nil, fastTiming, nil)
			if err == nil {
				closeSource(src)
				t.Fatal("loaded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}

	t.Run("every problem at once", func(t *testing.T) {
		_, err := LoadSourceConfig(context.Background(), IdentityConfig{TrustDomains: []TrustDomainConfig{
			{TrustDomain: "bank.us", Bundle: bankPEM},
			{TrustDomain: "bank.us", Bundle: bankPEM},
			{TrustDomain: "x y"},
		}}, nil)
		for _, w := range []string{
			"field identity: required",
			"field identity.trust_domains[1].trust_domain: bank.us is already configured in identity.trust_domains[0]",
			"field identity.trust_domains[2].trust_domain:",
			"field identity.trust_domains[2].bundle:",
		} {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("error %v does not mention %q", err, w)
			}
		}
	})
}

func TestRelativeTo(t *testing.T) {
	got := IdentityConfig{Dir: "id", WorkloadAPI: "unix:///a.sock", TrustDomains: []TrustDomainConfig{
		{TrustDomain: "a.org", Bundle: "a.pem"}, {TrustDomain: "b.org", Bundle: "/etc/b.pem"}, {TrustDomain: "c.org", Endpoint: "https://c.org"},
	}}
	orig := got.TrustDomains[0].Bundle
	rel := got.RelativeTo("/etc/federa")
	if rel.Dir != "/etc/federa/id" || rel.TrustDomains[0].Bundle != "/etc/federa/a.pem" || rel.TrustDomains[1].Bundle != "/etc/b.pem" || rel.TrustDomains[2].Bundle != "" {
		t.Errorf("RelativeTo = %+v", rel)
	}
	if got.TrustDomains[0].Bundle != orig {
		t.Error("RelativeTo changed its receiver's trust domains")
	}
}

func TestFederatedSourceCloseIsIdempotent(t *testing.T) {
	hospital, bank := tdCA(t, tdHospital), tdCA(t, tdBank)
	b := spiffebundle.FromX509Bundle(bank.Bundle())
	b.SetRefreshHint(5 * time.Millisecond)
	ep, roots := startWebEndpoint(t, tdBank, b)
	inner, err := NewDirSource(tdCoordinatorDir(t, hospital), nil)
	if err != nil {
		t.Fatal(err)
	}
	domains, err := parseTrustDomains([]TrustDomainConfig{{TrustDomain: "bank.us", Endpoint: ep.URL}})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := newFederatedSource(context.Background(), inner, domains, nil, fastTiming, roots)
	if err != nil {
		t.Fatal(err)
	}
	// The refresh loop is running: it has fetched since the first fetch.
	tdEventually(t, "a refresh", func() bool { return ep.hits.Load() >= 2 })
	const refresher = "attest.(*FederatedSource).watch("
	if !running(refresher) {
		t.Fatalf("no goroutine in %s before Close; the check after Close would prove nothing", refresher)
	}
	for range 2 {
		if err := fs.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	// The refresh loop is what fetches, and Close returns only after it
	// has: once Close returns, nothing is left to fetch. (Counting the
	// endpoint's hits after a pause could not show that: a fetch in flight
	// at Close may reach the handler late, and the loop refreshes about
	// once a second, the hint's granularity.)
	if running(refresher) {
		t.Fatal("the refresh loop still runs after Close")
	}
	var got *x509bundle.Bundle
	if got, err = fs.GetX509BundleForTrustDomain(tdBank); err != nil || !got.HasX509Authority(bank.Cert) {
		t.Errorf("bundle after Close = %v, %v; want the last one", got, err)
	}
}

// running reports whether a goroutine is inside fn, as stack traces name it.
func running(fn string) bool {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Contains(buf[:n], []byte(fn))
		}
		buf = make([]byte, 2*len(buf))
	}
}
