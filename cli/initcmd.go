package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.yaml.in/yaml/v3"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/coordinator"
	"github.com/federa-dev/federa/dataset"
	"github.com/federa-dev/federa/site"
)

// The configs `federa site init` and `federa coordinator init` write are
// loaded by the real loaders and the daemons started on them in
// TestInitConfigsStart, so the comments and the fields cannot drift apart.

func newSiteInitCmd(g *globals) *cobra.Command {
	var o siteInit
	cmd := &cobra.Command{
		Use:   "init [FILE]",
		Short: "Write a commented site.yaml that works as written",
		Long: `Write a site.yaml (default ./site.yaml) with every field explained, for the
datasets named with --dataset. Relative paths given on the command line are
relative to where you run this; init rewrites them relative to the file's
directory, as the agent reads them. It refuses to overwrite a file unless
--force. Afterwards it loads the file with the agent's own loader and says
what is still missing (typically the identity, until it is issued).

default_classification (--default-classification) is the class of every
column the file does not list: public, internal, personal or
special_category. The agent's default when it is left out is personal,
under which the built-in policy refuses jobs to a coordinator outside the
site's adequacy list unless they use differential privacy; init writes it
explicitly so you decide. Check the result with 'federa doctor --config
site.yaml'.`,
		Example: `  federa site init site.yaml --coordinator coordinator.example.org:7443 --jurisdiction eu \
      --identity /etc/federa/identity --dataset breast-cancer=/data/breast-cancer.csv
  federa site init /etc/federa/site.yaml --workload-api unix:///run/spire/agent.sock \
      --coordinator coordinator.example.org:7443 --jurisdiction eu \
      --dataset claims=/data/claims.parquet --default-classification personal --force`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return writeInit(g, cmd, args, "site.yaml", "site", &o.asIs, o.render, o.force, func(path string, log *slog.Logger) error {
				cfg, err := site.LoadFile(path, log)
				if err == nil {
					closeIdentity(cfg.Identity)
				}
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.coordinator, "coordinator", "127.0.0.1:7443", "the coordinator's host:port")
	f.StringVar(&o.coordinatorID, "coordinator-id", "spiffe://example.org/coordinator", "the coordinator's SPIFFE ID, the only server identity the agent accepts")
	f.StringVar(&o.jurisdiction, "jurisdiction", "", "where the coordinator runs (eu, us, sg, …); the policy checks it (required)")
	f.StringVar(&o.identity, "identity", "identity", "identity directory (svid.pem, key.pem, bundle.pem)")
	f.StringVar(&o.workloadAPI, "workload-api", "", "SPIFFE Workload API address instead of --identity, e.g. unix:///run/spire/agent.sock")
	f.StringArrayVar(&o.datasets, "dataset", nil, "NAME=PATH of a CSV or Parquet file the site serves (repeatable; at least one)")
	f.StringVar(&o.label, "label", "", "the label column jobs may use (default: a column named label, if the file has one)")
	f.StringVar(&o.defaultClass, "default-classification", "internal", "class of every column not listed: public, internal, personal, special_category")
	f.StringVar(&o.stateDir, "state-dir", "state", "the site's state directory (egress.jsonl, decisions.jsonl, privacy.json)")
	f.StringVar(&o.policyDir, "policy", "", "a Rego policy folder (from federa policy init) instead of the built-in policy")
	f.BoolVar(&o.force, "force", false, "overwrite FILE if it exists")
	return cmd
}

// writeInit is what site init and coordinator init share: the file (def
// unless named), rendered, written only if new (or --force), then loaded
// with the daemon's own loader to say what is still missing. Defaults name
// places beside the file; paths typed on the command line are relative to
// the working directory (asIs says which were not typed).
func writeInit(g *globals, cmd *cobra.Command, args []string, def, kind string, asIs *map[string]bool,
	render func(string) (string, error), force bool, load func(string, *slog.Logger) error) error {
	path := def
	if len(args) == 1 {
		path = args[0]
	}
	*asIs = map[string]bool{"identity": !cmd.Flags().Changed("identity"), "state-dir": !cmd.Flags().Changed("state-dir")}
	body, err := render(path)
	if err != nil {
		return err
	}
	if err := writeNew(path, body, force); err != nil {
		return err
	}
	return reportLoad(g.stdout, path, kind, func(log *slog.Logger) error { return load(path, log) })
}

func newCoordinatorInitCmd(g *globals) *cobra.Command {
	var o coordInit
	cmd := &cobra.Command{
		Use:   "init [FILE]",
		Short: "Write a commented coordinator.yaml that works as written",
		Long: `Write a coordinator.yaml (default ./coordinator.yaml) with every field
explained, for the sites named with --site and the users named with --user.
Relative paths given on the command line are relative to where you run
this; init rewrites them relative to the file's directory, as the
coordinator reads them. It refuses to overwrite a file unless --force.
Afterwards it loads the file with the coordinator's own loader and says what
is still missing. Check the result with 'federa doctor --config
coordinator.yaml'.`,
		Example: `  federa coordinator init coordinator.yaml --site eu/paris --site us/boston \
      --user alice=data-scientist --user auditor=auditor
  federa coordinator init /etc/federa/coordinator.yaml --listen 0.0.0.0:7443 \
      --identity /etc/federa/identity --state-dir /var/lib/federa/coordinator \
      --trust-domain example.org --site spiffe://example.org/site/eu/paris --force`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return writeInit(g, cmd, args, "coordinator.yaml", "coordinator", &o.asIs, o.render, o.force, func(path string, log *slog.Logger) error {
				cfg, err := coordinator.LoadFile(path, log)
				if err == nil {
					closeIdentity(cfg.Identity)
				}
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", coordinator.DefaultListen, "host:port to accept sites and users on (0.0.0.0:7443 for other hosts)")
	f.StringVar(&o.identity, "identity", "identity", "identity directory (svid.pem, key.pem, bundle.pem)")
	f.StringVar(&o.workloadAPI, "workload-api", "", "SPIFFE Workload API address instead of --identity, e.g. unix:///run/spire/agent.sock")
	f.StringVar(&o.stateDir, "state-dir", "state", "the coordinator's state directory (coordinator.db, audit log)")
	f.StringVar(&o.trustDomain, "trust-domain", "example.org", "trust domain of sites and users given by short name")
	f.StringArrayVar(&o.sites, "site", nil, "a site allowed to connect: JURISDICTION/NAME or its SPIFFE ID (repeatable; at least one)")
	f.StringArrayVar(&o.users, "user", nil, "NAME=ROLE[,ROLE] (or SPIFFE-ID=ROLES): data-scientist, auditor, operator, site-admin:<site> (repeatable)")
	f.BoolVar(&o.force, "force", false, "overwrite FILE if it exists")
	return cmd
}

type siteInit struct {
	policyDir                                string
	coordinator, coordinatorID, jurisdiction string
	identity, workloadAPI                    string
	datasets                                 []string
	label, defaultClass, stateDir            string
	force                                    bool
	asIs                                     map[string]bool // flags left at their default: relative to the file
}

// policySection is the policy: section, active when --policy names a folder.
func (o *siteInit) policySection(base string) string {
	if o.policyDir == "" {
		return "# policy:\n#   dir: policy\n"
	}
	return "policy:\n  dir: " + yamlString(relTo(base, o.policyDir)) + "\n"
}

func (o *siteInit) render(path string) (string, error) {
	var errs []error
	if o.jurisdiction == "" {
		errs = append(errs, errors.New("flag --jurisdiction: required (where the coordinator runs, e.g. eu; the site's policy checks it)"))
	}
	if _, err := spiffeid.FromString(o.coordinatorID); err != nil {
		errs = append(errs, fmt.Errorf("flag --coordinator-id: %q is not a SPIFFE ID: %v (want e.g. spiffe://example.org/coordinator)", o.coordinatorID, err))
	}
	if len(o.datasets) == 0 {
		errs = append(errs, errors.New("flag --dataset: required: NAME=PATH of a CSV or Parquet file, e.g. --dataset breast-cancer=/data/breast-cancer.csv"))
	}
	switch o.defaultClass {
	case "public", "internal", "personal", "special_category":
	default:
		errs = append(errs, fmt.Errorf("flag --default-classification: %q is not valid; valid: public, internal, personal, special_category", o.defaultClass))
	}
	base, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# site.yaml for a federa site agent, written by 'federa site init'.
# Field by field: docs/configuration.md. Check it: federa doctor --config %[1]s
# Run it:   federa site --config %[1]s
#
# Relative paths in this file are relative to the directory this file is in,
# never to the directory the agent is started from.

# Where this site's SPIFFE identity (an X.509-SVID) comes from.
identity:
`, path)
	if o.workloadAPI != "" {
		fmt.Fprintf(&b, `  # A SPIRE agent's Workload API socket: SVIDs rotate on their own. The
  # alternative is dir: a directory with svid.pem, key.pem and bundle.pem.
  workload_api: %s
`, yamlString(o.workloadAPI))
	} else {
		fmt.Fprintf(&b, `  # A directory with svid.pem, key.pem and bundle.pem ('federa dev-ca issue'
  # writes one; so can a spiffe-helper from SPIRE). It is watched: renewed
  # files are used from the next connection on. Instead of dir, a SPIRE
  # agent's socket: workload_api: unix:///run/spire/agent.sock
  dir: %s
`, yamlString(relFlag(base, o.identity, o.asIs["identity"])))
	}
	fmt.Fprintf(&b, `  # trust_domains: the coordinator's trust domain and its bundle, only when
  # it is not this site's own (docs/identity.md): a bundle file, or a SPIFFE
  # bundle endpoint (https_web; with endpoint_spiffe_id, https_spiffe), e.g.
  #   trust_domains:
  #     - {trust_domain: example.org, bundle: example.org.pem}
  #     - {trust_domain: bank.us, endpoint: "https://spire.bank.us:8443",
  #        endpoint_spiffe_id: "spiffe://bank.us/spire/server", bundle: bank.us.pem}

# The one coordinator this site dials out to. The agent opens no port.
coordinator:
  # host:port of the coordinator (there is no default port).
  address: %s
  # The only server SPIFFE ID the agent accepts; any other is refused at the
  # TLS handshake.
  id: %s
  # Where the coordinator runs (eu, us, sg, ...). The policy sees it as
  # input.destination.jurisdiction and checks it against this site's
  # adequacy list.
  jurisdiction: %s

# The Rego policy that decides every job. Left out, the built-in default
# policy decides. To write your own: federa policy init policy; edit it;
# federa policy test policy; then set dir (the folder is reloaded on every
# change; a broken edit keeps the previous policy):
%s# Or, instead of dir, a signed OPA bundle, verified at every load:
#   bundle: policy.tar.gz       # opa build --signing-key ...
#   bundle_key: signer.pub      # the PEM public key its signature must verify with
#   bundle_key_id: site-ops     # the key id it was signed under
#   bundle_key_alg: RS256       # the default; ES256 and the others OPA supports

# What this site serves. Jobs name a dataset by its name.
datasets:
`, yamlString(o.coordinator), yamlString(o.coordinatorID), yamlString(o.jurisdiction), o.policySection(base))
	for i, d := range o.datasets {
		name, p, ok := strings.Cut(d, "=")
		if !ok || name == "" || p == "" {
			errs = append(errs, fmt.Errorf("flag --dataset %q: want NAME=PATH, e.g. breast-cancer=/data/breast-cancer.csv", d))
			continue
		}
		format := "csv"
		switch strings.ToLower(filepath.Ext(p)) {
		case ".parquet":
			format = "parquet"
		case ".csv", ".tsv", ".txt":
		default:
			if strings.Contains(p, "idx") {
				errs = append(errs, fmt.Errorf("flag --dataset %q: IDX datasets need a labels file too; write a CSV or Parquet one here and add it by hand (docs/configuration.md)", d))
				continue
			}
		}
		header, herr := dataset.Source{Format: format, Path: p}.Header()
		if herr != nil {
			errs = append(errs, fmt.Errorf("flag --dataset %q: %v", d, herr))
		}
		label := o.label
		if label == "" && hasColumn(header, "label") {
			label = "label"
		}
		if label != "" && herr == nil && !hasColumn(header, label) {
			errs = append(errs, fmt.Errorf("flag --label: %q is not a column of %s (its columns: %s)", label, p, strings.Join(header, ", ")))
		}
		fmt.Fprintf(&b, `  - name: %s
    # The file: a CSV with a header row, or Parquet (format: parquet).
    path: %s
    format: %s
`, yamlString(name), yamlString(relTo(base, p)), format)
		if label != "" {
			b.WriteString("    # The only column jobs may use as their label.\n")
			fmt.Fprintf(&b, "    label: %s\n", yamlString(label))
		} else {
			b.WriteString("    # label: the only column jobs may use as their label (left out: any).\n")
		}
		if i == 0 {
			b.WriteString(`    # default_classification is the class of every column not listed under
    # columns: below: public, internal, personal or special_category. Left
    # out, it is personal, and the built-in policy then refuses every job
    # whose coordinator is outside this site's adequacy list unless the job
    # uses differential privacy. Set it to what most columns are, and list
    # the exceptions under columns:.
`)
		} else {
			b.WriteString("    # The class of every column not listed under columns: (see the first dataset).\n")
		}
		fmt.Fprintf(&b, "    default_classification: %s\n", o.defaultClass)
		b.WriteString("    # The exceptions, e.g. (this file's columns, from its header):\n")
		b.WriteString("    # columns:\n")
		const show = 40
		n := 0
		for _, c := range header {
			if c == label {
				continue
			}
			if n == show {
				fmt.Fprintf(&b, "    #   ... and %d more\n", len(header)-n-1)
				break
			}
			fmt.Fprintf(&b, "    #   - {name: %s, classification: %s}\n", yamlString(c), o.defaultClass)
			n++
		}
		b.WriteString("    #   (tags: [health, ...] on a column are passed to the policy too)\n")
	}
	b.WriteString(`  # Other formats (docs/configuration.md): format: idx, with labels: (the
  # labels file) and classes: (names of label values 0, 1, ...); format:
  # postgres, with table: (name or schema.name) and dsn_env: (an environment
  # variable) or dsn_file: (a file) holding the connection string.
`)
	fmt.Fprintf(&b, `
# The site's own records: egress.jsonl (every message that left, its size
# and destination), decisions.jsonl (every policy decision), privacy.json
# (epsilon spent per dataset) and approvals/. Held locked (site.lock) while
# the agent runs: a second agent on it is refused.
state_dir: %s

# How soon the agent dials again after losing the coordinator: exponential
# backoff from min to max, with full jitter.
reconnect:
  min: 250ms
  max: 30s

# Site-admins (spiffe://<trust-domain>/user/<name>) whose approve or reject
# of a job held for approval the coordinator may relay ('federa approval
# decide'). Empty: jobs are approved only here, with 'federa site approve'.
approvals:
  remote_approvers: []

# Prometheus /metrics and /healthz on plain HTTP, off unless listen is set
# (or --http ADDR); /metrics needs the bearer token in the token file's first
# line (16+ characters, e.g. openssl rand -hex 32 > http-token). It is the
# only port a site opens: bind it to loopback or a monitoring network.
# docs/operations.md lists the metrics.
# http:
#   listen: 127.0.0.1:9091
#   token_file: http-token
#   (reader: the coordinator's only; a site serves no jobs page)
`, yamlString(relFlag(base, o.stateDir, o.asIs["state-dir"])))
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	return b.String(), nil
}

type coordInit struct {
	listen, identity, workloadAPI, stateDir, trustDomain string
	sites, users                                         []string
	force                                                bool
	asIs                                                 map[string]bool
}

func (o *coordInit) render(path string) (string, error) {
	var errs []error
	td, err := spiffeid.TrustDomainFromString(o.trustDomain)
	if err != nil {
		errs = append(errs, fmt.Errorf("flag --trust-domain: %q is not a trust domain: %v (want e.g. example.org)", o.trustDomain, err))
	}
	if len(o.sites) == 0 {
		errs = append(errs, errors.New("flag --site: required: at least one site allowed to connect, e.g. --site eu/paris"))
	}
	var sites []string
	for _, s := range o.sites {
		id, err := o.siteID(td, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sites = append(sites, id)
	}
	type user struct{ id, roles string }
	var users []user
	for _, u := range o.users {
		name, roles, ok := strings.Cut(u, "=")
		if !ok || name == "" || roles == "" {
			errs = append(errs, fmt.Errorf("flag --user %q: want NAME=ROLE[,ROLE], e.g. alice=data-scientist", u))
			continue
		}
		id := name
		if !strings.HasPrefix(name, "spiffe://") {
			uid, err := attest.UserID(td, name)
			if err != nil {
				errs = append(errs, fmt.Errorf("flag --user %q: %v", u, err))
				continue
			}
			id = uid.String()
		}
		var quoted []string
		for _, r := range strings.Split(roles, ",") {
			quoted = append(quoted, yamlString(strings.TrimSpace(r)))
		}
		users = append(users, user{id, "[" + strings.Join(quoted, ", ") + "]"})
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	base, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# coordinator.yaml for the federa coordinator, written by 'federa coordinator init'.
# Field by field: docs/configuration.md. Check it: federa doctor --config %[1]s
# Run it:   federa coordinator --config %[1]s
#
# Relative paths in this file are relative to the directory this file is in,
# never to the directory the coordinator is started from.

# host:port for sites and users, over SPIFFE mutual TLS. 0.0.0.0:7443 takes
# connections from other hosts; 127.0.0.1 only from this one.
listen: %[2]s

# Jobs, checkpoints, released models and the signed audit log
# (coordinator.db). Locked while the coordinator runs; each completed round
# is fsynced before it is reported, so a restart resumes where it stopped.
state_dir: %[3]s

# Where the coordinator's SPIFFE identity (an X.509-SVID) comes from.
identity:
`, path, yamlString(o.listen), yamlString(relFlag(base, o.stateDir, o.asIs["state-dir"])))
	if o.workloadAPI != "" {
		fmt.Fprintf(&b, `  # A SPIRE agent's Workload API socket: SVIDs rotate on their own. The
  # alternative is dir: a directory with svid.pem, key.pem and bundle.pem.
  workload_api: %s
`, yamlString(o.workloadAPI))
	} else {
		fmt.Fprintf(&b, `  # A directory with svid.pem, key.pem and bundle.pem ('federa dev-ca issue'
  # writes one). It is watched: renewed files are used from the next
  # connection on. Instead of dir: workload_api: unix:///run/spire/agent.sock
  dir: %s
`, yamlString(relFlag(base, o.identity, o.asIs["identity"])))
	}
	b.WriteString(`  # trust_domains: other trust domains sites live in, each with a bundle
  # file or a SPIFFE bundle endpoint (https_web; with endpoint_spiffe_id,
  # https_spiffe), docs/identity.md, e.g.
  #   trust_domains:
  #     - {trust_domain: hospital.eu, bundle: hospital.eu.pem}
  #     - {trust_domain: bank.us, endpoint: "https://spire.bank.us:8443",
  #        endpoint_spiffe_id: "spiffe://bank.us/spire/server", bundle: bank.us.pem}

# The only site SPIFFE IDs allowed to connect
# (spiffe://<trust-domain>/site/<jurisdiction>/<name>); any other is refused
# at the TLS handshake and logged.
sites:
`)
	for _, s := range sites {
		fmt.Fprintf(&b, "  - %s\n", yamlString(s))
	}
	b.WriteString(`
# Users and their roles. The access policy decides what each role may call:
# data-scientist (submit and read own jobs), operator (read any job),
# auditor (the audit log), site-admin:<jurisdiction>/<name> (approve jobs
# held at that site). Sites' policies see the role a job was submitted under.
`)
	if len(users) == 0 {
		b.WriteString("users: []\n#   - {id: spiffe://example.org/user/alice, roles: [data-scientist]}\n")
	} else {
		b.WriteString("users:\n")
		for _, u := range users {
			fmt.Fprintf(&b, "  - id: %s\n    roles: %s\n", yamlString(u.id), u.roles)
		}
	}
	b.WriteString(`
# access_policy: a folder of Rego defining data.federa.access.decision, in
# place of the built-in access policy (policy/access), e.g.
# access_policy: access

# Prometheus /metrics, a read-only jobs page and /healthz on plain HTTP, off
# unless listen is set (or --http ADDR); every path but /healthz needs the
# bearer token in the token file's first line (16+ characters, e.g. openssl
# rand -hex 32 > http-token). Bind it to loopback or a monitoring network;
# docs/operations.md.
# The jobs page shows what the access policy lets reader (a SPIFFE ID in
# users below) read: an operator sees every job, a data scientist their own,
# an auditor the audit figures; without reader the page is refused.
# http:
#   listen: 127.0.0.1:9090
#   token_file: http-token
#   reader: spiffe://example.org/user/ops

# Sites send a heartbeat this often; three missed and the site counts as gone.
heartbeat_interval: 5s

# How long a job waits for enough of its sites to be connected before it fails.
site_wait_timeout: 30s

# What peers may hold open; every key may be left out (the values below are
# the defaults; 0 is an error, there is no unlimited).
limits:
  handshake_timeout: 10s             # TLS handshake and HTTP/2 preface, from accept
  max_connections: 4096              # open TCP connections, all peers together
  max_connections_per_identity: 64   # open connections of one SPIFFE ID
  max_streams_per_connection: 100    # concurrent calls on one connection
  max_streams_per_identity: 256      # concurrent calls of one SPIFFE ID
  idle_timeout: 5m                   # a connection with no call open this long is closed
`)
	return b.String(), nil
}

func (o *coordInit) siteID(td spiffeid.TrustDomain, s string) (string, error) {
	if strings.HasPrefix(s, "spiffe://") {
		id, err := spiffeid.FromString(s)
		if err != nil {
			return "", fmt.Errorf("flag --site %q: not a SPIFFE ID: %v", s, err)
		}
		if _, ok := attest.SiteName(id); !ok {
			return "", fmt.Errorf("flag --site %q: not a site ID; want spiffe://<trust-domain>/site/<jurisdiction>/<name>", s)
		}
		return id.String(), nil
	}
	if err := attest.ValidateSiteName(s); err != nil {
		return "", fmt.Errorf("flag --site %q: %v (want JURISDICTION/NAME, e.g. eu/paris, or a site SPIFFE ID)", s, err)
	}
	id, err := spiffeid.FromSegments(td, "site", strings.Split(s, "/")[0], strings.Split(s, "/")[1])
	if err != nil {
		return "", fmt.Errorf("flag --site %q: %v", s, err)
	}
	return id.String(), nil
}

// writeNew writes a config file, refusing to replace one unless force.
func writeNew(path, body string, force bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists; not overwriting it (pass --force to replace it)", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.WriteString(body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// reportLoad loads a config just written with the daemon's own loader and
// says whether it is ready, or what is still missing.
func reportLoad(w io.Writer, path, daemon string, load func(*slog.Logger) error) error {
	if err := load(slog.New(slog.DiscardHandler)); err != nil {
		fmt.Fprintf(w, "wrote %s; it does not load yet:\n  %s\nfix that (federa doctor --config %s says how), then: federa %s --config %s\n",
			path, strings.ReplaceAll(err.Error(), "\n", "\n  "), path, daemon, path)
		return nil
	}
	fmt.Fprintf(w, "wrote %s; it loads. Next: federa doctor --config %s, then federa %s --config %s\n", path, path, daemon, path)
	return nil
}

// relFlag is relTo(base, p), or p itself when it is a flag's default, which
// names a place beside the file.
func relFlag(base, p string, asIs bool) string {
	if asIs {
		return p
	}
	return relTo(base, p)
}

// relTo is p (relative to the working directory, or absolute) as a path
// relative to base when p is relative, which is how the loaders read it.
func relTo(base, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	r, err := filepath.Rel(base, abs)
	if err != nil {
		return abs
	}
	return r
}

// yamlString is s as a YAML scalar, quoted only when it must be.
func yamlString(s string) string {
	b, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	return strings.TrimSuffix(string(b), "\n")
}

func hasColumn(header []string, c string) bool {
	for _, h := range header {
		if h == c {
			return true
		}
	}
	return false
}

// closeIdentity stops an identity source's watchers, if it has any.
func closeIdentity(s attest.Source) {
	if c, ok := s.(io.Closer); ok {
		_ = c.Close()
	}
}
