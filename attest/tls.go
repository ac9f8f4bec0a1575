package attest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"

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

// ServerCredentials is mTLS for a gRPC server: the peer must present an
// SVID that chains to a bundle from src and that authorize accepts. Every
// refusal is logged with the peer's SPIFFE ID (when it has one) and why.
func ServerCredentials(src Source, authorize Authorizer, log *slog.Logger) credentials.TransportCredentials {
	cfg := tlsconfig.MTLSServerConfig(src, src, adapt(authorize))
	// Request rather than require a client certificate, so a client with
	// none reaches the verify callback and its refusal is logged too; the
	// callback refuses an empty chain (wrapVerify), so it is still mTLS.
	cfg.ClientAuth = tls.RequestClientCert
	wrapVerify(cfg, log)
	return credentials.NewTLS(cfg)
}

// ClientCredentials is mTLS for a gRPC client that will talk only to a
// server whose SVID authorize accepts.
func ClientCredentials(src Source, authorize Authorizer, log *slog.Logger) credentials.TransportCredentials {
	cfg := tlsconfig.MTLSClientConfig(src, src, adapt(authorize))
	wrapVerify(cfg, log)
	return credentials.NewTLS(cfg)
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
