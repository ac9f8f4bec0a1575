package attest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Authorizer decides whether a verified peer ID may connect. The error
// says why not; it is logged with the peer's ID.
type Authorizer func(id spiffeid.ID) error

// AllowIDs accepts exactly the listed IDs.
func AllowIDs(ids ...spiffeid.ID) Authorizer {
	set := make(map[spiffeid.ID]struct{}, len(ids))
	for _, id := range ids {
		set[id] = struct{}{}
	}
	return func(id spiffeid.ID) error {
		if _, ok := set[id]; ok {
			return nil
		}
		return fmt.Errorf("%s is not an allowed peer", id)
	}
}

// CredentialOption adjusts ServerCredentials and ClientCredentials.
type CredentialOption func(*credOptions)

type credOptions struct{ now func() time.Time }

// WithClock makes the peer's certificate validity be checked against now
// instead of the system clock: a test gives one daemon a skewed clock
// with it (site.WithClock). Deployed daemons use the system clock.
func WithClock(now func() time.Time) CredentialOption {
	return func(o *credOptions) { o.now = now }
}

func newCredOptions(opts []CredentialOption) credOptions {
	o := credOptions{now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// ServerCredentials is mTLS for a gRPC server: the peer must present an
// SVID that chains to a bundle from src and that authorize accepts. Every
// refusal is logged with the peer's SPIFFE ID (when it has one) and why.
// A peer's chain gets MaxClockSkew's slack before its NotBefore.
func ServerCredentials(src Source, authorize Authorizer, log *slog.Logger, opts ...CredentialOption) credentials.TransportCredentials {
	o := newCredOptions(opts)
	cfg := tlsconfig.MTLSServerConfig(src, src, adapt(authorize))
	// Request rather than require a client certificate, so a client with
	// none reaches the verify callback and its refusal is logged too; the
	// callback refuses an empty chain (wrapVerify), so it is still mTLS.
	cfg.ClientAuth = tls.RequestClientCert
	cfg.Time = o.now
	cfg.VerifyPeerCertificate = verifyPeer(src, authorize, o.now)
	wrapVerify(cfg, log)
	return credentials.NewTLS(cfg)
}

// ClientCredentials is mTLS for a gRPC client that will talk only to a
// server whose SVID authorize accepts, with the same clock slack.
func ClientCredentials(src Source, authorize Authorizer, log *slog.Logger, opts ...CredentialOption) credentials.TransportCredentials {
	o := newCredOptions(opts)
	cfg := tlsconfig.MTLSClientConfig(src, src, adapt(authorize))
	cfg.Time = o.now
	cfg.VerifyPeerCertificate = verifyPeer(src, authorize, o.now)
	wrapVerify(cfg, log)
	return credentials.NewTLS(cfg)
}

// verifyPeer is go-spiffe's tlsconfig.VerifyPeerCertificate (the chain
// verified against the bundles, then authorize) with verifySVID's clock:
// go-spiffe's reads the system clock and allows no skew.
func verifyPeer(bundles Source, authorize Authorizer, now func() time.Time) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		id, _, err := verifySVID(raw, bundles, now())
		if err != nil {
			return err
		}
		return authorize(id)
	}
}

func adapt(a Authorizer) tlsconfig.Authorizer {
	return func(id spiffeid.ID, _ [][]*x509.Certificate) error { return a(id) }
}

// errNoCertificate refuses a peer that presented no certificate.
var errNoCertificate = errors.New("the peer presented no certificate (an X.509-SVID is required)")

func wrapVerify(cfg *tls.Config, log *slog.Logger) {
	inner := cfg.VerifyPeerCertificate
	cfg.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
		err := errNoCertificate
		if len(raw) > 0 {
			err = inner(raw, chains)
		}
		if err != nil && log != nil {
			log.Warn("refused peer", "spiffe_id", peekID(raw), "reason", err.Error())
		}
		return err
	}
}

// peekID reads the SPIFFE ID a peer claims, before verification, for logs.
func peekID(raw [][]byte) string {
	if len(raw) == 0 {
		return "(no certificate)"
	}
	c, err := x509.ParseCertificate(raw[0])
	if err != nil || len(c.URIs) != 1 {
		return "(no SPIFFE ID)"
	}
	return c.URIs[0].String()
}

// ErrNoPeerID means the call carried no verified SPIFFE ID.
var ErrNoPeerID = errors.New("attest: no SPIFFE ID for peer")

// PeerID is the verified SPIFFE ID of a gRPC call's peer.
func PeerID(ctx context.Context) (spiffeid.ID, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return spiffeid.ID{}, ErrNoPeerID
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || info.SPIFFEID == nil {
		return spiffeid.ID{}, ErrNoPeerID
	}
	return spiffeid.FromURI(info.SPIFFEID)
}
