package cli

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/federa-dev/federa/attest"
)

func newDevCACmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev-ca",
		Short: "A development certificate authority issuing SPIFFE X.509-SVIDs",
		Long: `dev-ca is a tiny certificate authority for development, demos and tests. It
issues real X.509-SVIDs, so everything talks real SPIFFE mutual TLS, but
its key sits in a file: production sites use SPIRE instead.`,
		Example: `  federa dev-ca init --dir ./ca --trust-domain example.org
  federa dev-ca issue --dir ./ca --id spiffe://example.org/site/eu/paris --out ids/eu-paris`,
	}
	var dir, td, output string
	initCmd := &cobra.Command{
		Use:     "init",
		Short:   "Create a CA (ca.pem, ca-key.pem, bundle.pem) in a directory",
		Example: "  federa dev-ca init --dir ./ca --trust-domain example.org\n  federa dev-ca init --dir ./ca -o json | jq -r .bundle",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if dir == "" {
				return fmt.Errorf("flag --dir: required")
			}
			t, err := spiffeid.TrustDomainFromString(td)
			if err != nil {
				return fmt.Errorf("flag --trust-domain: %q is not a trust domain: %v (want e.g. example.org)", td, err)
			}
			ca, err := attest.NewCA(t)
			if err != nil {
				return err
			}
			if err := ca.Save(dir); err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(g.stdout, devCAInit{
					TrustDomain: t.String(), Dir: dir, CACert: filepath.Join(dir, attest.CACertFile),
					CAKey: filepath.Join(dir, attest.CAKeyFile), Bundle: filepath.Join(dir, attest.BundleFile),
				})
			}
			fmt.Fprintf(g.stdout, "dev CA for trust domain %s written to %s (trust bundle: %s/%s)\n", t, dir, dir, attest.BundleFile)
			return nil
		},
	}
	initCmd.Flags().StringVar(&dir, "dir", "", "directory to create the CA in (required)")
	initCmd.Flags().StringVar(&td, "trust-domain", "example.org", "SPIFFE trust domain")
	initCmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json (one object: trust_domain, dir, ca_cert, ca_key, bundle)")

	var idStr, out string
	var ttl time.Duration
	issueCmd := &cobra.Command{
		Use:   "issue",
		Short: "Issue an X.509-SVID (svid.pem, key.pem, bundle.pem) for a SPIFFE ID",
		Example: `  federa dev-ca issue --dir ./ca --id spiffe://example.org/coordinator --out ids/coordinator
  federa dev-ca issue --dir ./ca --id spiffe://example.org/site/eu/paris --out ids/eu-paris
  federa dev-ca issue --dir ./ca --id spiffe://example.org/user/alice --out ids/alice --ttl 8h
  federa dev-ca issue --dir ./ca --id spiffe://example.org/user/alice --out ids/alice -o json | jq -r .expires_at`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			id, err := spiffeid.FromString(idStr)
			if err != nil {
				return fmt.Errorf("flag --id: %q is not a SPIFFE ID: %v (want e.g. spiffe://example.org/site/eu/paris)", idStr, err)
			}
			if out == "" {
				return fmt.Errorf("flag --out: required (directory to write svid.pem, key.pem, bundle.pem)")
			}
			ca, err := attest.LoadCA(dir)
			if err != nil {
				return err
			}
			if err := ca.IssueToDir(id, ttl, out); err != nil {
				return err
			}
			if output == "json" {
				// Read back, so expires_at is the certificate's, not a guess.
				ident, err := attest.LoadIdentity(out)
				if err != nil {
					return err
				}
				return writeJSON(g.stdout, devCAIssue{
					SPIFFEID: id.String(), Dir: out, SVID: filepath.Join(out, attest.SVIDFile),
					Key: filepath.Join(out, attest.KeyFile), Bundle: filepath.Join(out, attest.BundleFile),
					ExpiresAt: ident.Expiry().UTC().Format(time.RFC3339),
				})
			}
			fmt.Fprintf(g.stdout, "issued %s (valid %s) to %s\n", id, ttl, out)
			return nil
		},
	}
	issueCmd.Flags().StringVar(&dir, "dir", "", "the CA directory (from dev-ca init)")
	issueCmd.Flags().StringVar(&idStr, "id", "", "SPIFFE ID to issue, e.g. spiffe://example.org/site/eu/paris (required)")
	issueCmd.Flags().StringVar(&out, "out", "", "directory to write the identity to (required)")
	issueCmd.Flags().DurationVar(&ttl, "ttl", attest.DefaultSVIDTTL, "how long the SVID is valid")
	issueCmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json (one object: spiffe_id, dir, svid, key, bundle, expires_at)")
	cmd.AddCommand(initCmd, issueCmd)
	return cmd
}

// devCAInit is `dev-ca init -o json`: where the CA's files are.
type devCAInit struct {
	TrustDomain string `json:"trust_domain"`
	Dir         string `json:"dir"`
	CACert      string `json:"ca_cert"`
	CAKey       string `json:"ca_key"`
	Bundle      string `json:"bundle"`
}

// devCAIssue is `dev-ca issue -o json`: the identity's files and expiry.
type devCAIssue struct {
	SPIFFEID  string `json:"spiffe_id"`
	Dir       string `json:"dir"`
	SVID      string `json:"svid"`
	Key       string `json:"key"`
	Bundle    string `json:"bundle"`
	ExpiresAt string `json:"expires_at"` // RFC 3339, UTC
}
