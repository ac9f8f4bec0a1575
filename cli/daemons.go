package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/federa-dev/federa/coordinator"
	"github.com/federa-dev/federa/site"
)

func newCoordinatorCmd(g *globals) *cobra.Command {
	var cfgPath, httpAddr string
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run the coordinator daemon",
		Long: `Run the coordinator: it accepts jobs from data scientists, keeps a stream to
every listed site, runs rounds, checkpoints each one, and resumes running
jobs after a restart. See docs/configuration.md for coordinator.yaml;
'federa coordinator init' writes one with every field explained, and
'federa doctor --config coordinator.yaml' checks it.

With http.listen in the file (or --http ADDR) it also serves, on plain
HTTP, Prometheus /metrics, a read-only jobs page and /healthz; every path
but /healthz needs the bearer token in http.token_file. The gRPC port
answers the standard health service (grpc.health.v1.Health) over mTLS.
See docs/operations.md.`,
		Example: `  federa coordinator --config coordinator.yaml

  # coordinator.yaml
  listen: 0.0.0.0:7443
  state_dir: /var/lib/federa/coordinator
  identity: {dir: /etc/federa/identity}
  sites:
    - spiffe://example.org/site/eu/paris
    - spiffe://example.org/site/us/boston
  http:                                  # optional: /metrics and the jobs page
    listen: 127.0.0.1:9090
    token_file: /etc/federa/http-token   # e.g. openssl rand -hex 32

  # override http.listen for one run
  federa coordinator --config coordinator.yaml --http 0.0.0.0:9090
  curl -H "Authorization: Bearer $(cat /etc/federa/http-token)" http://127.0.0.1:9090/metrics`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" {
				return fmt.Errorf("flag --config: required")
			}
			log, err := g.logger(os.Stderr)
			if err != nil {
				return err
			}
			cfg, err := coordinator.LoadFile(cfgPath, log)
			if err != nil {
				return err
			}
			if httpAddr != "" {
				cfg.HTTP.Listen = httpAddr
			}
			cfg.Log = log
			c, err := coordinator.New(cfg)
			if err != nil {
				return err
			}
			defer c.Close()
			return c.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "path to coordinator.yaml (required)")
	cmd.Flags().StringVar(&httpAddr, "http", "", "serve /metrics and the read-only jobs page on plain HTTP at `ADDR` (overrides http.listen; needs http.token_file)")
	cmd.AddCommand(newCoordinatorInitCmd(g))
	return cmd
}

func newSiteCmd(g *globals) *cobra.Command {
	var cfgPath, httpAddr string
	cmd := &cobra.Command{
		Use:   "site",
		Short: "Run a site agent next to the data",
		Long: `Run a site agent. It dials out to the coordinator (it never listens), proves
its identity with its SVID, accepts only the configured coordinator ID, and
computes on local files. See docs/configuration.md for site.yaml.

The site's policy decides every job from how the dataset's columns are
classified. A column not classified under columns: is
default_classification, and that is personal when unset: the built-in
policy then refuses jobs to a coordinator outside the site's adequacy list
unless they use differential privacy. Say what your data is. Check a
site.yaml against a job with 'federa policy eval --site site.yaml --job
job.yaml'; start your own policy with 'federa policy init DIR'.

'federa site init site.yaml' writes a site.yaml with every field explained;
'federa doctor --config site.yaml' checks it, the identity, the datasets,
the policy and the coordinator's reachability, and says what to fix.

With http.listen in the file (or --http ADDR) the agent also serves
Prometheus /metrics and /healthz on plain HTTP; /metrics needs the bearer
token in http.token_file. It is the only port a site opens, and it is off
unless set. See docs/operations.md.`,
		// The site.yaml below is loaded and run through the default policy
		// by TestDocumentedSiteYAMLWorks, so it cannot rot.
		Example: `  federa site --config site.yaml
  federa site --config site.yaml --http 127.0.0.1:9091   # also /metrics; token from http.token_file

  # site.yaml
  identity: {dir: /etc/federa/identity}   # svid.pem, key.pem, bundle.pem
  coordinator:
    address: coordinator.example.org:7443
    id: spiffe://example.org/coordinator
    jurisdiction: eu                      # where the coordinator runs; the policy checks it
  datasets:
    - name: breast-cancer
      path: /data/breast-cancer.csv
      label: label
      # The class of every column not listed under columns: public,
      # internal, personal or special_category. Unset, it is personal.
      default_classification: internal
      columns:                            # the exceptions
        - {name: mean_radius, classification: personal}
  state_dir: /var/lib/federa/site`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" {
				return fmt.Errorf("flag --config: required")
			}
			log, err := g.logger(os.Stderr)
			if err != nil {
				return err
			}
			cfg, err := site.LoadFile(cfgPath, log)
			if err != nil {
				return err
			}
			if httpAddr != "" {
				cfg.HTTP.Listen = httpAddr
			}
			cfg.Log = log
			a, err := site.New(cfg)
			if err != nil {
				return err
			}
			defer a.Close()
			return a.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "path to site.yaml (required)")
	cmd.Flags().StringVar(&httpAddr, "http", "", "serve /metrics on plain HTTP at `ADDR` (overrides http.listen; needs http.token_file)")
	cmd.AddCommand(newSiteInitCmd(g), newSitePendingCmd(g), newSiteDecideCmd(g, true), newSiteDecideCmd(g, false))
	return cmd
}
