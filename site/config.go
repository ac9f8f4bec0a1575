package site

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/dataset"
	"github.com/federa-dev/federa/internal/config"
	"github.com/federa-dev/federa/internal/httpserve"
	"github.com/federa-dev/federa/policy"
)

// Defaults for Config fields left at their zero value.
const (
	DefaultReconnectMin = 250 * time.Millisecond
	DefaultReconnectMax = 30 * time.Second
)

// Dataset is one local file (or, for IDX, a pair of files; for postgres, a
// table or view) the site serves under a name.
type Dataset struct {
	Name   string `yaml:"name"`
	Path   string `yaml:"path"`
	Format string `yaml:"format"` // csv (default), idx, parquet or postgres
	// Table is the PostgreSQL table or view (format postgres only): name
	// or schema.name.
	Table string `yaml:"table"`
	// DSNEnv names the environment variable, or DSNFile the file, holding
	// the PostgreSQL connection string (format postgres only; one of the
	// two). The string itself never appears in site.yaml, logs or errors.
	DSNEnv  string `yaml:"dsn_env"`
	DSNFile string `yaml:"dsn_file"`
	// Labels is the IDX labels file beside the images file in Path
	// (format idx only); relative to site.yaml like Path.
	Labels string `yaml:"labels"`
	// Classes names IDX label values 0, 1, … (format idx only); empty
	// reads them as "0", "1", ….
	Classes []string `yaml:"classes"`
	// Label, when set, is the only label column jobs may use.
	Label string `yaml:"label"`
	// Columns classify columns for the site's policy (input.site.dataset);
	// a column not listed gets DefaultClassification.
	Columns               []Column `yaml:"columns"`
	DefaultClassification string   `yaml:"default_classification"`
}

// Column is one column's classification for the site's policy.
type Column struct {
	Name           string   `yaml:"name"`
	Classification string   `yaml:"classification"`
	Tags           []string `yaml:"tags"`
}

// Classifications a column may have.
var classifications = map[string]bool{"public": true, "internal": true, "personal": true, "special_category": true}

// DefaultClassification applies to columns a site does not classify: the
// cautious choice, so an unlisted column is never treated as public.
const DefaultClassification = "personal"

// File is site.yaml as an operator writes it (docs/configuration.md).
type File struct {
	// Identity is where the site's SVID comes from, and the bundles of
	// other trust domains (the coordinator's, when it lives in another).
	Identity    attest.IdentityConfig `yaml:"identity"`
	Coordinator struct {
		Address      string `yaml:"address"`
		ID           string `yaml:"id"`
		Jurisdiction string `yaml:"jurisdiction"`
	} `yaml:"coordinator"`
	Policy struct {
		Dir string `yaml:"dir"`
		// Bundle is a signed OPA bundle (.tar.gz) instead of a folder.
		Bundle       string `yaml:"bundle"`
		BundleKey    string `yaml:"bundle_key"`    // PEM public key file
		BundleKeyID  string `yaml:"bundle_key_id"` // the key's name in the signature
		BundleKeyAlg string `yaml:"bundle_key_alg"`
	} `yaml:"policy"`
	Datasets  []Dataset `yaml:"datasets"`
	StateDir  string    `yaml:"state_dir"`
	Reconnect struct {
		Min config.Duration `yaml:"min"`
		Max config.Duration `yaml:"max"`
	} `yaml:"reconnect"`
	// Approvals configures who may decide this site's held jobs remotely,
	// through the coordinator (`federa approval decide`); the local
	// `federa site approve` works regardless.
	Approvals struct {
		RemoteApprovers []string `yaml:"remote_approvers"`
	} `yaml:"approvals"`
	// HTTP is the opt-in plain-HTTP address for /metrics
	// (docs/operations.md).
	HTTP     httpserve.File `yaml:"http"`
	LogLevel string         `yaml:"log_level"`
}

// LoadFile reads and checks site.yaml. Relative dataset paths are taken
// relative to the file's directory, so a config can travel with its data.
func LoadFile(path string, log *slog.Logger) (Config, error) {
	var f File
	// Problems with keys and values are reported together with those
	// found below, so one run names everything wrong in the file.
	var errs []error
	if err := config.DecodeFile(path, &f); err != nil {
		var fe *config.FieldErrors
		if !errors.As(err, &fe) {
			return Config{}, err
		}
		errs = append(errs, fe.Errs...)
	}
	base := filepath.Dir(path)
	cfg := Config{
		CoordinatorAddr:         f.Coordinator.Address,
		CoordinatorJurisdiction: f.Coordinator.Jurisdiction,
		PolicyDir:               f.Policy.Dir,
		StateDir:                f.StateDir,
		ReconnectMin:            f.Reconnect.Min.D(),
		ReconnectMax:            f.Reconnect.Max.D(),
		HTTP:                    f.HTTP.Config(base),
	}
	if f.Coordinator.ID == "" {
		errs = append(errs, errors.New("field coordinator.id: required (the coordinator's SPIFFE ID, e.g. spiffe://example.org/coordinator)"))
	} else if id, err := spiffeid.FromString(f.Coordinator.ID); err != nil {
		errs = append(errs, fmt.Errorf("field coordinator.id: %q is not a SPIFFE ID: %v", f.Coordinator.ID, err))
	} else {
		cfg.CoordinatorID = id
	}
	for _, d := range f.Datasets {
		if d.Path != "" && !filepath.IsAbs(d.Path) {
			d.Path = filepath.Join(base, d.Path)
		}
		if d.Labels != "" && !filepath.IsAbs(d.Labels) {
			d.Labels = filepath.Join(base, d.Labels)
		}
		if d.DSNFile != "" && !filepath.IsAbs(d.DSNFile) {
			d.DSNFile = filepath.Join(base, d.DSNFile)
		}
		cfg.Datasets = append(cfg.Datasets, d)
	}
	if cfg.PolicyDir != "" && !filepath.IsAbs(cfg.PolicyDir) {
		cfg.PolicyDir = filepath.Join(base, cfg.PolicyDir)
	}
	if f.Policy.Bundle != "" {
		cfg.PolicyBundle = f.Policy.Bundle
		if !filepath.IsAbs(cfg.PolicyBundle) {
			cfg.PolicyBundle = filepath.Join(base, cfg.PolicyBundle)
		}
		cfg.PolicyBundleKey = policy.BundleKey{KeyID: f.Policy.BundleKeyID, Algorithm: f.Policy.BundleKeyAlg}
		switch {
		case f.Policy.BundleKey == "":
			errs = append(errs, errors.New("field policy.bundle_key: required with policy.bundle (the PEM public key its signature must verify with)"))
		default:
			kp := f.Policy.BundleKey
			if !filepath.IsAbs(kp) {
				kp = filepath.Join(base, kp)
			}
			pemBytes, err := os.ReadFile(kp)
			if err != nil {
				errs = append(errs, fmt.Errorf("field policy.bundle_key: %w", err))
			}
			cfg.PolicyBundleKey.PublicKeyPEM = pemBytes
		}
		if f.Policy.BundleKeyID == "" {
			errs = append(errs, errors.New("field policy.bundle_key_id: required with policy.bundle (the key id the bundle was signed under)"))
		}
	}
	// Reported beside the file's other problems; Validate checks it again
	// for configs built in code.
	if err := cfg.HTTP.Validate(); err != nil {
		errs = append(errs, err)
	}
	for i, a := range f.Approvals.RemoteApprovers {
		id, err := spiffeid.FromString(a)
		if err != nil || !attest.IsUser(id) {
			errs = append(errs, fmt.Errorf("field approvals.remote_approvers[%d]: %q is not a user SPIFFE ID (want spiffe://<trust-domain>/user/<name>)", i, a))
			continue
		}
		cfg.RemoteApprovers = append(cfg.RemoteApprovers, id)
	}
	if cfg.StateDir != "" && !filepath.IsAbs(cfg.StateDir) {
		cfg.StateDir = filepath.Join(base, cfg.StateDir)
	}
	if id, err := attest.LoadSourceConfig(context.Background(), f.Identity.RelativeTo(base), log); err != nil {
		errs = append(errs, err)
	} else {
		cfg.Identity = id
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Config is everything an Agent needs.
type Config struct {
	Identity        attest.Source
	CoordinatorAddr string
	// CoordinatorID is the only server identity the agent will talk to.
	CoordinatorID spiffeid.ID
	// CoordinatorJurisdiction is where the coordinator runs, for the
	// policy's input.destination (e.g. "eu").
	CoordinatorJurisdiction string
	Datasets                []Dataset
	// PolicyDir is the Rego policy folder, watched and reloaded on change.
	// Empty: the built-in default policy. A folder that does not exist or
	// defines no decision denies everything.
	PolicyDir string
	// PolicyBundle is a signed OPA bundle file used instead of PolicyDir,
	// verified with PolicyBundleKey at every load.
	PolicyBundle    string
	PolicyBundleKey policy.BundleKey
	// StateDir keeps the site's own record of what left it (egress.jsonl).
	// Empty: no record is kept.
	StateDir string
	// RemoteApprovers are the site-admins whose decisions, relayed by the
	// coordinator (a DECIDE task), this site records. Empty: jobs held for
	// approval are decided only locally (`federa site approve`). The
	// coordinator's access policy checks the admin too; this list means a
	// coordinator alone cannot approve anything here.
	RemoteApprovers []spiffeid.ID
	ReconnectMin    time.Duration
	ReconnectMax    time.Duration
	// HTTP is the opt-in plain-HTTP listener for /metrics; its zero value
	// serves nothing. The agent still only dials out for its work.
	HTTP httpserve.Config
	Log  *slog.Logger
	// Rand drives reconnect jitter; tests seed it.
	Rand *rand.Rand
}

// Validate reports every problem at once, naming the field.
func (c *Config) Validate() error {
	var errs []error
	if c.Identity == nil {
		errs = append(errs, errors.New("field identity: required"))
	}
	if c.CoordinatorAddr == "" {
		errs = append(errs, errors.New("field coordinator.address: required (host:port of the coordinator)"))
	} else if err := config.CheckHostPort(c.CoordinatorAddr, "coordinator.example.org:7443"); err != nil {
		errs = append(errs, fmt.Errorf("field coordinator.address: %w", err))
	}
	if c.CoordinatorID.IsZero() {
		errs = append(errs, errors.New("field coordinator.id: required"))
	}
	if err := c.HTTP.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.HTTP.Reader != "" {
		errs = append(errs, errors.New("field http.reader: only the coordinator serves a jobs page; a site serves /metrics and /healthz, behind the token alone"))
	}
	if c.PolicyDir != "" && c.PolicyBundle != "" {
		errs = append(errs, errors.New("field policy: set dir or bundle, not both"))
	}
	if len(c.Datasets) == 0 {
		errs = append(errs, errors.New("field datasets: list at least one dataset (name, path)"))
	}
	seen := map[string]bool{}
	for i, d := range c.Datasets {
		switch {
		case d.Name == "":
			errs = append(errs, fmt.Errorf("field datasets[%d].name: required", i))
		case seen[d.Name]:
			errs = append(errs, fmt.Errorf("field datasets[%d].name: %q listed twice", i, d.Name))
		}
		seen[d.Name] = true
		if d.Format == "postgres" {
			errs = append(errs, checkPostgres(i, d)...)
		} else if d.Path == "" {
			errs = append(errs, fmt.Errorf("field datasets[%d].path: required", i))
		} else if st, err := os.Stat(d.Path); err != nil {
			errs = append(errs, fmt.Errorf("field datasets[%d].path: %w", i, err))
		} else if st.IsDir() {
			errs = append(errs, fmt.Errorf("field datasets[%d].path: %s is a directory; want a CSV, Parquet or IDX images file", i, d.Path))
		}
		if d.Format != "postgres" && (d.Table != "" || d.DSNEnv != "" || d.DSNFile != "") {
			errs = append(errs, fmt.Errorf("field datasets[%d]: table, dsn_env and dsn_file are only for format postgres", i))
		}
		switch d.Format {
		case "", "csv", "parquet", "postgres":
			if d.Labels != "" {
				errs = append(errs, fmt.Errorf("field datasets[%d].labels: only for format idx (a %s dataset holds its label column)", i, d.formatName()))
			}
			if len(d.Classes) > 0 {
				errs = append(errs, fmt.Errorf("field datasets[%d].classes: only for format idx (a %s dataset holds its class names)", i, d.formatName()))
			}
		case "idx":
			if d.Labels == "" {
				errs = append(errs, fmt.Errorf("field datasets[%d].labels: required for format idx (the labels file, e.g. train-labels-idx1-ubyte.gz)", i))
			} else if st, err := os.Stat(d.Labels); err != nil {
				errs = append(errs, fmt.Errorf("field datasets[%d].labels: %w", i, err))
			} else if st.IsDir() {
				errs = append(errs, fmt.Errorf("field datasets[%d].labels: %s is a directory; want an IDX labels file", i, d.Labels))
			}
			if len(d.Classes) > 256 {
				errs = append(errs, fmt.Errorf("field datasets[%d].classes: %d names; a label is one byte, so at most 256", i, len(d.Classes)))
			}
			if k := firstDup(d.Classes); k >= 0 {
				errs = append(errs, fmt.Errorf("field datasets[%d].classes[%d]: %q is empty or listed twice; class names must be unique", i, k, d.Classes[k]))
			}
		default:
			errs = append(errs, fmt.Errorf("field datasets[%d].format: %q is not supported; valid: %s", i, d.Format, strings.Join(dataset.Formats(), ", ")))
		}
		if d.DefaultClassification != "" && !classifications[d.DefaultClassification] {
			errs = append(errs, fmt.Errorf("field datasets[%d].default_classification: %q; valid: public, internal, personal, special_category", i, d.DefaultClassification))
		}
		colSeen := map[string]bool{}
		for k, c := range d.Columns {
			switch {
			case c.Name == "":
				errs = append(errs, fmt.Errorf("field datasets[%d].columns[%d].name: required", i, k))
			case colSeen[c.Name]:
				errs = append(errs, fmt.Errorf("field datasets[%d].columns[%d].name: %q listed twice", i, k, c.Name))
			}
			colSeen[c.Name] = true
			if !classifications[c.Classification] {
				errs = append(errs, fmt.Errorf("field datasets[%d].columns[%d].classification: %q; valid: public, internal, personal, special_category", i, k, c.Classification))
			}
		}
	}
	if c.ReconnectMin < 0 || c.ReconnectMax < 0 || (c.ReconnectMax > 0 && c.ReconnectMin > c.ReconnectMax) {
		errs = append(errs, fmt.Errorf("field reconnect: want 0 ≤ min ≤ max, got min %s max %s", c.ReconnectMin, c.ReconnectMax))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.ReconnectMin == 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = DefaultReconnectMax
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
}

// source is where and how the dataset's data is read. A postgres
// dataset's connection string is read from its variable or file each time,
// so a rotated secret is picked up.
func (d *Dataset) source() dataset.Source {
	s := dataset.Source{Format: d.Format, Path: d.Path, Labels: d.Labels, Classes: d.Classes, Table: d.Table}
	if d.Format == "postgres" {
		s.DSN, _ = d.dsn()
	}
	return s
}

func (d *Dataset) formatName() string {
	if d.Format == "" {
		return "csv"
	}
	return d.Format
}

// dsn reads a postgres dataset's connection string.
func (d *Dataset) dsn() (string, error) {
	if d.DSNEnv != "" {
		v, ok := os.LookupEnv(d.DSNEnv)
		if !ok || strings.TrimSpace(v) == "" {
			return "", fmt.Errorf("environment variable %s is not set or empty", d.DSNEnv)
		}
		return v, nil
	}
	b, err := os.ReadFile(d.DSNFile)
	if err != nil {
		return "", err
	}
	if v := strings.TrimSpace(string(b)); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("%s is empty", d.DSNFile)
}

// checkPostgres validates a postgres dataset's fields.
func checkPostgres(i int, d Dataset) []error {
	var errs []error
	if d.Path != "" {
		errs = append(errs, fmt.Errorf("field datasets[%d].path: not for format postgres (name the table with table:)", i))
	}
	if d.Table == "" {
		errs = append(errs, fmt.Errorf("field datasets[%d].table: required for format postgres (a table or view: name or schema.name)", i))
	}
	switch {
	case (d.DSNEnv == "") == (d.DSNFile == ""):
		errs = append(errs, fmt.Errorf("field datasets[%d]: set one of dsn_env (an environment variable) or dsn_file (a file) holding the PostgreSQL connection string", i))
	default:
		if _, err := d.dsn(); err != nil {
			field := "dsn_env"
			if d.DSNFile != "" {
				field = "dsn_file"
			}
			errs = append(errs, fmt.Errorf("field datasets[%d].%s: %v", i, field, err))
		}
	}
	return errs
}

// firstDup is the index of the first empty or repeated name, or -1.
func firstDup(names []string) int {
	seen := make(map[string]bool, len(names))
	for k, n := range names {
		if n == "" || seen[n] {
			return k
		}
		seen[n] = true
	}
	return -1
}
