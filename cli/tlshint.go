package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/federa-dev/federa/attest"
)

// A coordinator that refuses a client's certificate ends the handshake
// with one TLS alert ("tls: bad certificate") whatever the reason; the
// reason is only in the coordinator's log. tlsHints adds to such an error
// what the client can check on its side: its SVID's expiry (known here),
// the CA, and whether its SPIFFE ID is listed in coordinator.yaml.

// tlsHints returns the dial options that explain refused handshakes of a
// client with identity id dialling addr.
func tlsHints(id attest.Source, coord spiffeid.ID, addr string) []grpc.DialOption {
	explain := func(err error) error { return explainTLS(err, id, coord, addr, time.Now()) }
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return explain(invoker(ctx, method, req, reply, cc, opts...))
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			s, err := streamer(ctx, desc, cc, method, opts...)
			if err != nil {
				return nil, explain(err)
			}
			return &hintedStream{ClientStream: s, explain: explain}, nil
		}),
	}
}

type hintedStream struct {
	grpc.ClientStream
	explain func(error) error
}

func (s *hintedStream) RecvMsg(m any) error { return s.explain(s.ClientStream.RecvMsg(m)) }
func (s *hintedStream) SendMsg(m any) error { return s.explain(s.ClientStream.SendMsg(m)) }

// explainTLS adds what to check to a handshake refusal; other errors pass
// unchanged.
func explainTLS(err error, id attest.Source, coord spiffeid.ID, addr string, now time.Time) error {
	st, ok := status.FromError(err)
	if err == nil || !ok || st.Code() != codes.Unavailable {
		return err
	}
	msg := st.Message()
	var hint string
	switch {
	case strings.Contains(msg, "clock skew"):
		// A validity period failed here, and the reason already says
		// which certificate, by how much and what to check (attest).
		return err
	case strings.Contains(msg, "x509svid: could not verify") || strings.Contains(msg, "could not get X509 bundle") || strings.Contains(msg, "unknown authority"):
		hint = fmt.Sprintf("the coordinator's certificate is not signed by a CA in your trust bundle (bundle.pem of your identity, trust domain %s): get the bundle of the coordinator's trust domain", id.ID().TrustDomain())
	case strings.Contains(msg, "is not an allowed peer"):
		hint = fmt.Sprintf("you expect the coordinator to be %s (--coordinator-id; by default the coordinator of your own trust domain); if the ID above is the coordinator you meant, pass it as --coordinator-id", coord)
	case strings.Contains(msg, "remote error: tls:") || strings.Contains(msg, "certificate required"):
		hint = refusedHint(id, coord, addr, now)
	case strings.Contains(msg, "broken pipe") || strings.Contains(msg, "connection reset by peer"):
		// Under TLS 1.3 the client may write its request before the
		// server's refusal arrives, and see the closed connection instead.
		hint = "the coordinator closed the connection, as it does when it refuses a certificate; if so, " + refusedHint(id, coord, addr, now)
	default:
		return err
	}
	return status.Error(st.Code(), msg+"; "+hint)
}

func refusedHint(id attest.Source, coord spiffeid.ID, addr string, now time.Time) string {
	me := id.ID()
	svid, err := id.GetX509SVID()
	if err != nil || len(svid.Certificates) == 0 {
		return fmt.Sprintf("the coordinator at %s refused your certificate (%s)", addr, me)
	}
	notAfter := svid.Certificates[0].NotAfter
	if now.After(notAfter) {
		return fmt.Sprintf("the coordinator at %s refused your certificate: it expired at %s (%s ago); get a new one (federa dev-ca issue, or your SPIRE agent)",
			addr, notAfter.UTC().Format(time.RFC3339), now.Sub(notAfter).Round(time.Second))
	}
	return fmt.Sprintf("the coordinator at %s refused your certificate for %s (valid until %s). Check that it was issued by a CA the coordinator trusts "+
		"(its trust bundle for %s, or a federated trust domain), and that %s is a user (spiffe://<trust domain>/user/<name>, given roles under users "+
		"in coordinator.yaml) or a site listed under sites there (any other SPIFFE ID is refused at the handshake); "+
		"the coordinator logs each refusal with its reason (\"refused peer\")",
		addr, me, notAfter.UTC().Format(time.RFC3339), coord.TrustDomain(), me)
}
