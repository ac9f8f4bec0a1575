package cli

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"go.yaml.in/yaml/v3"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/coordinator"
	"github.com/federa-dev/federa/dataset"
	"github.com/federa-dev/federa/internal/config"
	"github.com/federa-dev/federa/policy"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/site"
	"github.com/federa-dev/federa/spec"
)

// Check outcomes.
const (
	checkPass = "PASS"
	checkFail = "FAIL"
)

// doctorCheck is one line of `federa doctor`.
type doctorCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"` // PASS or FAIL
	Detail string `json:"detail"`
	// Fix says what to do about a failure.
	Fix string `json:"fix,omitempty"`
}

// doctorReport is `federa doctor -o json`.
type doctorReport struct {
	Config string        `json:"config"`
	Kind   string        `json:"kind"` // site or coordinator
	OK     bool          `json:"ok"`
	Checks []doctorCheck `json:"checks"`
}

func (r *doctorReport) pass(name, detail string) {
	r.Checks = append(r.Checks, doctorCheck{Name: name, Status: checkPass, Detail: detail})
}

func (r *doctorReport) fail(name, detail, fix string) {
	r.Checks = append(r.Checks, doctorCheck{Name: name, Status: checkFail, Detail: detail, Fix: fix})
}

// doctorTimeout bounds each network check.
const doctorTimeout = 5 * time.Second

func newDoctorCmd(g *globals) *cobra.Command {
	var cfgPath, kind, output string
	cmd := &cobra.Command{
		Use:   "doctor --config FILE",
		Short: "Check a site.yaml or coordinator.yaml and what it points at, and say what to fix",
		Long: `Check a daemon's configuration the way the daemon would use it, and print one
line per check, PASS or FAIL, with what to fix:

  site.yaml:        the config loads; the identity (SVID files or the SPIFFE
                    Workload API) and its expiry; the trust bundles (own, and
                    the coordinator's trust domain); every dataset is readable;
                    the policy compiles and admits a plain training job on
                    each dataset; the coordinator answers over mutual TLS as
                    coordinator.id and accepts this site's certificate.
  coordinator.yaml: the config loads; the identity and its expiry; the trust
                    bundles of every listed site's trust domain; the state
                    directory is writable; the access policy compiles and
                    lets a data scientist submit; someone holds that role;
                    the listen address is free or served by this coordinator.

Which kind of file it is comes from its keys (a site.yaml has coordinator:,
a coordinator.yaml has sites:); --kind overrides. Nothing is changed: the
checks read files and open one TLS connection. Exit status 0 when every
check passes, 1 when any fails.`,
		Example: `  federa doctor --config /etc/federa/site.yaml
  federa doctor --config coordinator.yaml -o json | jq '.checks[] | select(.status=="FAIL")'
  until federa doctor --config site.yaml >/dev/null; do sleep 1; done   # wait for the coordinator`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if cfgPath == "" {
				return errors.New("flag --config: required (a site.yaml or coordinator.yaml)")
			}
			if kind == "" {
				k, err := configKind(cfgPath)
				if err != nil {
					return err
				}
				kind = k
			}
			rep := &doctorReport{Config: cfgPath, Kind: kind}
			switch kind {
			case "site":
				doctorSite(cmd.Context(), rep, cfgPath)
			case "coordinator":
				doctorCoordinator(cmd.Context(), rep, cfgPath)
			default:
				return fmt.Errorf("flag --kind: %q is not valid; valid: site, coordinator", kind)
			}
			failed := 0
			for _, c := range rep.Checks {
				if c.Status == checkFail {
					failed++
				}
			}
			rep.OK = failed == 0
			if output == "json" {
				if err := writeJSON(g.stdout, rep); err != nil {
					return err
				}
			} else {
				printDoctor(g.stdout, rep)
			}
			if failed > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%s: %d of %d checks failed", cfgPath, failed, len(rep.Checks))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "the site.yaml or coordinator.yaml to check (required)")
	cmd.Flags().StringVar(&kind, "kind", "", "site or coordinator (default: from the file's keys)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json (config, kind, ok, checks: name, status, detail, fix)")
	return cmd
}

func printDoctor(w io.Writer, rep *doctorReport) {
	width := 0
	for _, c := range rep.Checks {
		width = max(width, len(c.Name))
	}
	for _, c := range rep.Checks {
		fmt.Fprintf(w, "%s  %-*s  %s\n", c.Status, width, c.Name, strings.ReplaceAll(c.Detail, "\n", "\n"+strings.Repeat(" ", width+8)))
		if c.Fix != "" {
			fmt.Fprintf(w, "      %-*s  fix: %s\n", width, "", c.Fix)
		}
	}
}

// configKind tells a site.yaml from a coordinator.yaml by its keys.
func configKind(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("flag --config: %w", err)
	}
	var top map[string]any
	if err := yaml.Unmarshal(data, &top); err != nil {
		return "", fmt.Errorf("config %s: %v", path, err)
	}
	_, isSite := top["coordinator"]
	_, hasSites := top["sites"]
	switch {
	case isSite && !hasSites:
		return "site", nil
	case hasSites && !isSite:
		return "coordinator", nil
	}
	return "", fmt.Errorf("config %s: cannot tell whether it is a site.yaml (it would have coordinator:) or a coordinator.yaml (it would have sites:); pass --kind site or --kind coordinator", path)
}

// doctorIdentity checks the identity: section: it loads, the SVID is valid
// now and chains to its own trust domain's bundle. It returns the source
// (nil if it did not load); the caller closes it.
func doctorIdentity(ctx context.Context, rep *doctorReport, ic attest.IdentityConfig, base, role string) attest.Source {
	ctx, cancel := context.WithTimeout(ctx, 3*doctorTimeout)
	defer cancel()
	cfg := ic.RelativeTo(base)
	where := "identity.dir " + cfg.Dir
	if cfg.WorkloadAPI != "" {
		where = "identity.workload_api " + cfg.WorkloadAPI
	}
	issue := "issue one: federa dev-ca issue --dir CA --id spiffe://<trust-domain>/" + role + " --out DIR (the identity directory), or, under SPIRE, check that the agent runs, that this user may open its socket, and that a registration entry matches this workload"
	src, err := attest.LoadSourceConfig(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		rep.fail("identity", err.Error(), issue)
		return nil
	}
	svid, err := src.GetX509SVID()
	if err != nil || len(svid.Certificates) == 0 {
		rep.fail("identity", fmt.Sprintf("%s: no SVID: %v", where, err), issue)
		return src
	}
	leaf, now := svid.Certificates[0], time.Now()
	renew := "renew it: federa dev-ca issue --dir CA --id " + svid.ID.String() + " --out " + cfg.Dir + " (a running daemon picks the new files up without a restart)"
	if cfg.WorkloadAPI != "" {
		renew = "the SPIRE agent renews SVIDs on its own: check that it runs and reaches its server (spire-agent healthcheck)"
	}
	switch {
	case now.After(leaf.NotAfter):
		rep.fail("identity", fmt.Sprintf("%s (%s) expired at %s, %s ago", svid.ID, where, leaf.NotAfter.UTC().Format(time.RFC3339), now.Sub(leaf.NotAfter).Round(time.Second)), renew)
	case now.Before(leaf.NotBefore):
		rep.fail("identity", fmt.Sprintf("%s (%s) is not valid until %s", svid.ID, where, leaf.NotBefore.UTC().Format(time.RFC3339)), "check this machine's clock (and the issuer's)")
	default:
		rep.pass("identity", fmt.Sprintf("%s (%s), valid until %s (in %s)", svid.ID, where, leaf.NotAfter.UTC().Format(time.RFC3339), leaf.NotAfter.Sub(now).Round(time.Minute)))
	}
	return src
}

// doctorBundles checks that the SVID chains to its own trust domain's
// bundle and that every peer trust domain in peers has a bundle.
func doctorBundles(rep *doctorReport, src attest.Source, peers map[spiffeid.TrustDomain]string) {
	svid, err := src.GetX509SVID()
	if err != nil || len(svid.Certificates) == 0 {
		rep.fail("trust bundles", "no SVID to check them with", "fix the identity first")
		return
	}
	var problems, fixes []string
	if err := chainsTo(svid.Certificates, src, svid.ID.TrustDomain()); err != nil {
		problems = append(problems, fmt.Sprintf("this SVID does not chain to the bundle of its own trust domain %s: %v", svid.ID.TrustDomain(), err))
		fixes = append(fixes, "bundle.pem must hold the CA that issued svid.pem (issue both from the same CA: federa dev-ca issue writes the pair)")
	}
	var names []string
	for td, who := range peers {
		if _, err := src.GetX509BundleForTrustDomain(td); err != nil {
			problems = append(problems, fmt.Sprintf("no bundle for trust domain %s (%s): its certificates cannot be verified", td, who))
			fixes = append(fixes, fmt.Sprintf("add it under identity.trust_domains: - {trust_domain: %s, bundle: FILE} (or endpoint:), docs/identity.md", td))
		}
		names = append(names, td.String())
	}
	if len(problems) > 0 {
		rep.fail("trust bundles", strings.Join(problems, "\n"), strings.Join(fixes, "; "))
		return
	}
	rep.pass("trust bundles", fmt.Sprintf("own trust domain %s verifies this SVID; bundles for %s", svid.ID.TrustDomain(), strings.Join(names, ", ")))
}

func doctorSite(ctx context.Context, rep *doctorReport, path string) {
	base := filepath.Dir(path)
	cfg, loadErr := site.LoadFile(path, slog.New(slog.DiscardHandler))
	if loadErr != nil {
		rep.fail("config", loadErr.Error(), "edit the fields named above (docs/configuration.md); the checks below say more")
	} else {
		defer closeIdentity(cfg.Identity)
		rep.pass("config", path+" loads")
	}
	var f site.File
	if err := config.DecodeFile(path, &f); err != nil {
		var fe *config.FieldErrors
		if !errors.As(err, &fe) {
			return // unreadable or not YAML: the config line said so
		}
	}
	coordID, idErr := spiffeid.FromString(f.Coordinator.ID)

	src := doctorIdentity(ctx, rep, f.Identity, base, "site/<jurisdiction>/<name>")
	if src != nil {
		defer closeIdentity(src)
		if _, ok := attest.SiteName(src.ID()); !ok {
			rep.fail("identity", src.ID().String()+" is not a site ID; the coordinator refuses it", "issue the site an ID of the form spiffe://<trust-domain>/site/<jurisdiction>/<name>")
		}
		peers := map[spiffeid.TrustDomain]string{}
		if idErr == nil {
			peers[coordID.TrustDomain()] = "the coordinator's, " + coordID.String()
		}
		doctorBundles(rep, src, peers)
	}

	for i, d := range f.Datasets {
		doctorDataset(rep, i, d, base, path)
	}
	if len(f.Datasets) == 0 {
		rep.fail("datasets", "none listed", "list at least one under datasets: (name, path), e.g. federa site init writes one")
	}

	doctorSitePolicy(ctx, rep, path, base, f, cfg, loadErr)

	switch {
	case src == nil:
		rep.fail("coordinator", "not tried: no identity to connect with", "fix the identity first")
	case idErr != nil:
		rep.fail("coordinator", fmt.Sprintf("not tried: coordinator.id %q is not a SPIFFE ID", f.Coordinator.ID), "set coordinator.id to the coordinator's SPIFFE ID, e.g. spiffe://example.org/coordinator")
	case f.Coordinator.Address == "":
		rep.fail("coordinator", "not tried: coordinator.address is empty", "set coordinator.address to the coordinator's host:port")
	default:
		doctorDial(ctx, rep, src, f.Coordinator.Address, coordID)
	}
}

// doctorDataset checks that one dataset's data can be read.
func doctorDataset(rep *doctorReport, i int, d site.Dataset, base, path string) {
	name := "dataset " + d.Name
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	src := dataset.Source{Format: d.Format, Path: abs(d.Path), Labels: abs(d.Labels), Classes: d.Classes, Table: d.Table}
	if d.Format == "postgres" {
		dsn, err := readDSN(d, abs(d.DSNFile))
		if err != nil {
			rep.fail(name, err.Error(), fmt.Sprintf("set datasets[%d].dsn_env or dsn_file to the PostgreSQL connection string", i))
			return
		}
		src.DSN = dsn
	}
	header, err := src.Header()
	if err != nil {
		fix := fmt.Sprintf("fix datasets[%d].path in %s (a relative path is relative to %s, not to the working directory)", i, path, absDir(base))
		switch {
		case errors.Is(err, os.ErrPermission):
			fix = fmt.Sprintf("give the user the agent runs as (uid %d) read access to it", os.Getuid())
		case d.Format == "postgres":
			fix = fmt.Sprintf("check that the database is up and that datasets[%d].table exists and is readable by the DSN's role", i)
		case d.Path != "" && fileExists(src.Path):
			fix = fmt.Sprintf("the file is there but does not read as %s: check datasets[%d].format and the file's contents", cmp.Or(d.Format, "csv"), i)
		}
		rep.fail(name, err.Error(), fix)
		return
	}
	if d.Label != "" && !hasColumn(header, d.Label) {
		rep.fail(name, fmt.Sprintf("label %q is not a column (columns: %s)", d.Label, strings.Join(header, ", ")), fmt.Sprintf("set datasets[%d].label to one of the columns", i))
		return
	}
	where := src.Path
	if d.Format == "postgres" {
		where = "table " + d.Table
	}
	rep.pass(name, fmt.Sprintf("%s reads: %d columns", where, len(header)))
}

// chainsTo checks the signatures from the leaf up to an authority in the
// trust domain's bundle, and nothing about time: an expired SVID is the
// identity check's failure, not this one's.
func chainsTo(chain []*x509.Certificate, src attest.Source, td spiffeid.TrustDomain) error {
	b, err := src.GetX509BundleForTrustDomain(td)
	if err != nil {
		return err
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return fmt.Errorf("certificate %d of svid.pem is not signed by the next: %w", i, err)
		}
	}
	top := chain[len(chain)-1]
	for _, ca := range b.X509Authorities() {
		if top.CheckSignatureFrom(ca) == nil {
			return nil
		}
	}
	return fmt.Errorf("none of the bundle's %d authorities signed it (issuer: %s)", len(b.X509Authorities()), top.Issuer)
}

// doctorSitePolicy checks that the site's policy compiles and admits a
// plain training job on each dataset, as the agent would decide it.
func doctorSitePolicy(ctx context.Context, rep *doctorReport, path, base string, f site.File, cfg site.Config, loadErr error) {
	fixRego := "fix the Rego: federa policy check DIR names the file and line (a running agent keeps its previous policy until the folder compiles)"
	if loadErr != nil {
		// Without a loaded config no job can be tried; still say whether
		// the policy compiles.
		var err error
		switch {
		case f.Policy.Bundle != "":
			rep.fail("policy", "not tried: the config does not load (see config)", "fix the config first")
			return
		case f.Policy.Dir != "":
			dir := f.Policy.Dir
			if !filepath.IsAbs(dir) {
				dir = filepath.Join(base, dir)
			}
			_, err = policy.Load(ctx, dir)
		default:
			_, err = policy.LoadFS(ctx, policy.Default(), ".")
		}
		if err != nil {
			rep.fail("policy", err.Error(), fixRego)
			return
		}
		// What was checked passed; the config line already fails the run.
		rep.pass("policy", "compiles (admitting a sample job not tried: the config does not load)")
		return
	}
	requester := "spiffe://example.org/user/doctor"
	if td := cfg.CoordinatorID.TrustDomain(); !td.IsZero() {
		requester = "spiffe://" + td.Name() + "/user/doctor"
	}
	for _, d := range cfg.Datasets {
		label := d.Label
		if label == "" {
			header, err := dataset.Source{Format: d.Format, Path: d.Path, Labels: d.Labels, Classes: d.Classes}.Header()
			if err != nil {
				continue // the dataset line says why
			}
			label = header[len(header)-1]
			if hasColumn(header, "label") {
				label = "label"
			}
		}
		job, err := spec.Parse("doctor's sample job", []byte(fmt.Sprintf("name: doctor\ndataset: %s\nlabel: %s\nmodel: {type: logreg}\nrounds: 10\n", yamlString(d.Name), yamlString(label))))
		if err != nil {
			rep.fail("policy", "building the sample job: "+err.Error(), "")
			return
		}
		task := &federav1.Task{TaskId: "doctor", JobId: "doctor", Kind: federav1.TaskKind_TASK_KIND_ADMIT,
			Spec: job.Proto(), Requester: requester, RequesterRole: "data-scientist", DryRun: true}
		in, eng, err := site.PolicyInput(ctx, cfg, task)
		if err != nil {
			if strings.Contains(err.Error(), "policy") || strings.Contains(err.Error(), "rego") {
				rep.fail("policy", err.Error(), fixRego)
				return
			}
			continue // a dataset problem: its own line says so
		}
		dec, err := eng.Admission(ctx, in)
		if err != nil {
			rep.fail("policy", err.Error(), fixRego)
			return
		}
		if !dec.Allow {
			rep.fail("policy "+d.Name, fmt.Sprintf("policy %s refuses a plain training job (logreg, label %s, every other column, no DP) on %s: %s",
				eng.Revision(), label, d.Name, strings.Join(dec.Reasons, "; ")),
				fmt.Sprintf("if jobs like this should run here, set default_classification for %s (or classify its columns) or change the policy; see why with: federa policy eval --site %s --job JOB.yaml --explain", d.Name, path))
			continue
		}
		verdict := "admits"
		if dec.RequireApproval {
			verdict = "admits, after operator approval,"
		}
		rep.pass("policy "+d.Name, fmt.Sprintf("policy %s compiles and %s a plain training job on %s", eng.Revision(), verdict, d.Name))
	}
}

// doctorDial opens one mTLS connection to the coordinator as this site:
// the server must present coordID, and must then accept this site's
// certificate (with TLS 1.3 a server's refusal arrives after the client's
// handshake has finished, as an alert on the first read).
func doctorDial(ctx context.Context, rep *doctorReport, src attest.Source, addr string, coordID spiffeid.ID) {
	tcfg := tlsconfig.MTLSClientConfig(src, src, tlsconfig.AuthorizeID(coordID))
	tcfg.NextProtos = []string{"h2"}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: doctorTimeout}, Config: tcfg}
	dctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			rep.fail("coordinator", fmt.Sprintf("cannot reach %s: %v", addr, err),
				"is the coordinator running and listening there (its listen:)? may this host dial out to it (firewall, NetworkPolicy, proxy)? is coordinator.address right?")
			return
		}
		rep.fail("coordinator", fmt.Sprintf("%s: TLS handshake failed: %v", addr, err),
			fmt.Sprintf("the server there must present %s (coordinator.id) from a CA in this site's bundle for %s", coordID, coordID.TrustDomain()))
		return
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) && !errors.Is(err, io.EOF) {
		rep.fail("coordinator", fmt.Sprintf("%s is %s but refused this site's certificate: %v", addr, coordID, err),
			fmt.Sprintf("the coordinator's sites: must list %s, its bundle must hold this site's CA, and this SVID must be valid (its log says 'refused peer' with the reason)", src.ID()))
		return
	}
	rep.pass("coordinator", fmt.Sprintf("%s answers over mutual TLS as %s and accepts this site's certificate", addr, coordID))
}

func doctorCoordinator(ctx context.Context, rep *doctorReport, path string) {
	base := filepath.Dir(path)
	cfg, loadErr := coordinator.LoadFile(path, slog.New(slog.DiscardHandler))
	if loadErr != nil {
		rep.fail("config", loadErr.Error(), "edit the fields named above (docs/configuration.md); the checks below say more")
	} else {
		defer closeIdentity(cfg.Identity)
		rep.pass("config", path+" loads")
	}
	var f coordinator.File
	if err := config.DecodeFile(path, &f); err != nil {
		var fe *config.FieldErrors
		if !errors.As(err, &fe) {
			return
		}
	}
	src := doctorIdentity(ctx, rep, f.Identity, base, "coordinator")
	if src != nil {
		defer closeIdentity(src)
		peers := map[spiffeid.TrustDomain]string{}
		for _, s := range f.Sites {
			if id, err := spiffeid.FromString(s); err == nil {
				if _, seen := peers[id.TrustDomain()]; !seen {
					peers[id.TrustDomain()] = "site " + id.String()
				}
			}
		}
		doctorBundles(rep, src, peers)
	}

	// The state directory: writable, or creatable.
	state := f.StateDir
	if state != "" && !filepath.IsAbs(state) {
		state = filepath.Join(base, state)
	}
	switch {
	case state == "":
		rep.fail("state_dir", "not set", "set state_dir to a directory the coordinator may write (jobs, checkpoints, the audit log)")
	default:
		if err := writable(state); err != nil {
			rep.fail("state_dir", err.Error(), fmt.Sprintf("create %s and give the user the coordinator runs as (uid %d) write access to it", state, os.Getuid()))
		} else {
			rep.pass("state_dir", state+" is writable")
		}
	}

	// The access policy, and someone allowed to submit under it.
	var acc *policy.Access
	var err error
	which := "built-in access policy"
	if f.AccessPolicy != "" {
		dir := f.AccessPolicy
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(base, dir)
		}
		which = "access policy " + dir
		acc, err = policy.LoadAccess(ctx, dir)
	} else {
		acc, err = policy.LoadDefaultAccess(ctx)
	}
	if err != nil {
		rep.fail("access policy", err.Error(), "fix the Rego it names (policy/access is the built-in one to start from)")
	} else {
		dec := acc.Decide(ctx, policy.AccessRequest{
			Caller: policy.Caller{ID: "spiffe://example.org/user/doctor", Kind: "user", Roles: []string{"data-scientist"}},
			RPC:    "JobService.SubmitJob",
		})
		if dec.Allow {
			rep.pass("access policy", which+" compiles and lets a data-scientist submit a job")
		} else {
			rep.fail("access policy", which+" refuses a data-scientist's SubmitJob: "+strings.Join(dec.Reasons, "; "), "allow JobService.SubmitJob for role data-scientist in the access policy")
		}
	}
	scientists := 0
	for _, u := range f.Users {
		for _, r := range u.Roles {
			if r == "data-scientist" {
				scientists++
			}
		}
	}
	if scientists == 0 {
		rep.fail("users", "no user has role data-scientist: nobody can submit a job", "add one under users: - {id: spiffe://<trust-domain>/user/<name>, roles: [data-scientist]}")
	} else {
		rep.pass("users", fmt.Sprintf("%d users, %d with role data-scientist", len(f.Users), scientists))
	}

	listen := f.Listen
	if listen == "" {
		listen = coordinator.DefaultListen
	}
	if src != nil {
		doctorListen(ctx, rep, src, listen)
	}
}

// doctorListen says whether the coordinator could listen on addr, or is
// already serving there.
func doctorListen(ctx context.Context, rep *doctorReport, src attest.Source, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		rep.fail("listen", fmt.Sprintf("%q: %v", addr, err), "set listen to host:port, e.g. 0.0.0.0:7443")
		return
	}
	dialHost := host
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		dialHost = "127.0.0.1"
	}
	tcfg := tlsconfig.MTLSClientConfig(src, src, tlsconfig.AuthorizeID(src.ID()))
	tcfg.NextProtos = []string{"h2"}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: doctorTimeout}, Config: tcfg}
	dctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	if conn, err := d.DialContext(dctx, "tcp", net.JoinHostPort(dialHost, port)); err == nil {
		conn.Close()
		rep.pass("listen", fmt.Sprintf("%s: a coordinator with this identity (%s) is serving there", addr, src.ID()))
		return
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		rep.fail("listen", fmt.Sprintf("cannot listen on %s: %v", addr, err), "another process holds the port, or this user may not bind it (ports below 1024): choose another listen address")
		return
	}
	l.Close()
	rep.pass("listen", addr+" is free (the coordinator is not running)")
}

// writable says whether dir can be written (or created) by this process.
func writable(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		parent := filepath.Dir(dir)
		if err := writable(parent); err != nil {
			return fmt.Errorf("%s does not exist and cannot be created: %w", dir, err)
		}
		return nil
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".doctor-*")
	if err != nil {
		return fmt.Errorf("%s is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

func readDSN(d site.Dataset, dsnFile string) (string, error) {
	if d.DSNEnv != "" {
		if v := strings.TrimSpace(os.Getenv(d.DSNEnv)); v != "" {
			return v, nil
		}
		return "", fmt.Errorf("environment variable %s is not set or empty", d.DSNEnv)
	}
	if dsnFile == "" {
		return "", errors.New("neither dsn_env nor dsn_file is set")
	}
	b, err := os.ReadFile(dsnFile)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func absDir(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
