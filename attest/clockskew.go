package attest

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// MaxClockSkew is how far this machine's clock may run behind the clock of
// the CA that issued a peer's SVID: a chain that is not valid yet, but will
// be within MaxClockSkew by this machine's clock, is accepted. Issuers
// backdate NotBefore only a little — SPIRE by 10 s (its credtemplate's
// NotBeforeCushion), the dev CA by 1 minute — so without this slack a
// verifier a few minutes behind would refuse every SVID for its first
// minutes, after each rotation (and a new CA's certificate too).
//
// Expiry gets no slack: a certificate is never accepted after its NotAfter
// by this machine's clock, so a clock running ahead by d sees SVIDs expire
// d early, which is harmless while they are renewed with more than d left
// (SPIRE renews at half of its 1 h default TTL, sim at half of
// Options.SVIDTTL; dev CA SVIDs live DefaultSVIDTTL). Beyond either bound
// the refusal names clock skew as the likely cause (docs/identity.md).
const MaxClockSkew = 5 * time.Minute

// verifySVID is x509svid.ParseAndVerify at now, with MaxClockSkew's slack
// for certificates not yet valid, and an error that names clock skew when
// a validity period is what failed.
//
// The slack: a chain that does not verify at now is verified again as of
// now+MaxClockSkew, as if this machine's clock were that far behind. Only a
// chain not yet valid now can pass then (expiry is checked at the later
// time, so it is stricter, never looser), and the retry costs nothing on
// the accepted path.
func verifySVID(raw [][]byte, bundles x509bundle.Source, now time.Time) (spiffeid.ID, [][]*x509.Certificate, error) {
	id, chains, err := x509svid.ParseAndVerify(raw, bundles, x509svid.WithTime(now))
	if err == nil {
		return id, chains, nil
	}
	if id2, chains2, err2 := x509svid.ParseAndVerify(raw, bundles, x509svid.WithTime(now.Add(MaxClockSkew))); err2 == nil {
		return id2, chains2, nil
	}
	return id, nil, explainValidity(err, id, raw, bundles, now)
}

// explainValidity adds to a refusal the certificate of the peer's chain
// (or of the trust bundle it chains to) that is outside its validity
// period at now, by how much, and that the clocks are the likely cause.
// Other refusals pass unchanged.
func explainValidity(err error, id spiffeid.ID, raw [][]byte, bundles x509bundle.Source, now time.Time) error {
	var certs []*x509.Certificate
	for _, r := range raw {
		c, perr := x509.ParseCertificate(r)
		if perr != nil {
			return err
		}
		certs = append(certs, c)
	}
	if !id.IsZero() {
		if b, berr := bundles.GetX509BundleForTrustDomain(id.TrustDomain()); berr == nil {
			certs = append(certs, b.X509Authorities()...)
		}
	}
	for _, c := range certs {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return explainCert(err, id, c, now)
		}
	}
	return err
}

// explainCert says that c, of id's chain, is not valid at now.
func explainCert(err error, id spiffeid.ID, c *x509.Certificate, now time.Time) error {
	peer := id.String()
	if id.IsZero() {
		peer = "the peer"
	}
	what := "the SVID of " + peer
	if c.IsCA {
		what = fmt.Sprintf("the CA certificate %q in the chain of %s", c.Subject.String(), peer)
	}
	utc := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	if now.Before(c.NotBefore) {
		return fmt.Errorf("%w: %s is valid only from %s, %s after this machine's clock (%s). "+
			"Likely clock skew: this machine's clock is behind, or the issuing CA's is ahead, by more than the %s federa allows; "+
			"check that both keep time (NTP, `timedatectl`)",
			err, what, utc(c.NotBefore), c.NotBefore.Sub(now).Round(time.Second), utc(now), MaxClockSkew)
	}
	return fmt.Errorf("%w: %s expired at %s, %s before this machine's clock (%s). "+
		"If that identity is renewed on time, the likely cause is clock skew: this machine's clock is ahead; "+
		"check that it keeps time (NTP, `timedatectl`); otherwise the peer's SVID was not renewed",
		err, what, utc(c.NotAfter), now.Sub(c.NotAfter).Round(time.Second), utc(now))
}
