package cli

import (
	"fmt"
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
	var dir, td string
	initCmd := &cobra.Command{
		Use:     "init",
		Short:   "Create a CA (ca.pem, ca-key.pem, bundle.pem) in a directory",
		Example: "  federa dev-ca init --dir ./ca --trust-domain example.org",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			fmt.Fprintf(g.stdout, "dev CA for trust domain %s written to %s (trust bundle: %s/%s)\n", t, dir, dir, attest.BundleFile)
			return nil
		},
	}
	initCmd.Flags().StringVar(&dir, "dir", "", "directory to create the CA in (required)")
	initCmd.Flags().StringVar(&td, "trust-domain", "example.org", "SPIFFE trust domain")

	var idStr, out string
	var ttl time.Duration
	issueCmd := &cobra.Command{
		Use:   "issue",
		Short: "Issue an X.509-SVID (svid.pem, key.pem, bundle.pem) for a SPIFFE ID",
		Example: `  federa dev-ca issue --dir ./ca --id spiffe://example.org/coordinator --out ids/coordinator
  federa dev-ca issue --dir ./ca --id spiffe://example.org/site/eu/paris --out ids/eu-paris
  federa dev-ca issue --dir ./ca --id spiffe://example.org/user/alice --out ids/alice --ttl 8h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			fmt.Fprintf(g.stdout, "issued %s (valid %s) to %s\n", id, ttl, out)
			return nil
		},
	}
	issueCmd.Flags().StringVar(&dir, "dir", "", "the CA directory (from dev-ca init)")
	issueCmd.Flags().StringVar(&idStr, "id", "", "SPIFFE ID to issue, e.g. spiffe://example.org/site/eu/paris (required)")
	issueCmd.Flags().StringVar(&out, "out", "", "directory to write the identity to (required)")
	issueCmd.Flags().DurationVar(&ttl, "ttl", attest.DefaultSVIDTTL, "how long the SVID is valid")
	cmd.AddCommand(initCmd, issueCmd)
	return cmd
}
