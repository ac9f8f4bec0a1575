package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/federa-dev/federa/policy"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/site"
	"github.com/federa-dev/federa/spec"
)

func newPolicyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Test, check and try out a site's Rego policy",
		Long: `A site's policy is a folder of Rego v1 files (package federa) and data files.
It decides data.federa.admission (may this job run here, under which
obligations, with operator approval?) and data.federa.egress (may exactly
these bytes leave, to this destination?). See docs/policy.md.`,
		Example: `  federa policy init ./policy
  federa policy test ./policy
  federa policy eval --site site.yaml --job job.yaml --explain`,
	}
	cmd.AddCommand(newPolicyInitCmd(g), newPolicyTestCmd(g), newPolicyCheckCmd(g), newPolicyEvalCmd(g))
	return cmd
}

func newPolicyInitCmd(g *globals) *cobra.Command {
	var pack string
	cmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Start a policy folder from the built-in default policy (and an example jurisdiction pack)",
		Long: `Write the built-in default policy — its Rego, its Rego tests and its
data.json — into DIR, to edit and test. With --pack, the pack's data.json
replaces the default one. The packs are examples, not legal advice.`,
		Example: `  federa policy init ./policy
  federa policy init ./policy --pack eu-gdpr-example
  federa policy test ./policy`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
				return fmt.Errorf("%s is not empty; init writes a fresh policy folder", dir)
			}
			if err := policy.CopyTo(policy.Default(), dir); err != nil {
				return err
			}
			if pack != "" {
				b, err := fs.ReadFile(policy.Packs(), pack+"/data.json")
				if err != nil {
					names, _ := fs.Glob(policy.Packs(), "*-example")
					return fmt.Errorf("flag --pack: %q is not a pack; valid: %s", pack, strings.Join(names, ", "))
				}
				if err := os.WriteFile(filepath.Join(dir, "data.json"), b, 0o644); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "note: %s's data.json replaces the default one. Some Rego tests assert the default data's values "+
					"(limits, adequacy, approvals); `federa policy test` shows where the pack differs: update those tests as you adopt it.\n", pack)
			}
			fmt.Fprintf(g.stdout, "wrote the default policy to %s; next: federa policy test %s\n", dir, dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&pack, "pack", "", "example jurisdiction pack: eu-gdpr-example, us-hipaa-example, sg-pdpa-example")
	return cmd
}

func newPolicyTestCmd(g *globals) *cobra.Command {
	var verbose bool
	var output string
	cmd := &cobra.Command{
		Use:   "test DIR",
		Short: "Run a policy folder's Rego tests (same semantics as `opa test DIR`)",
		Example: `  federa policy test ./policy
  federa policy test ./policy -v`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			results, err := policy.Test(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			failed := 0
			for _, r := range results {
				if !r.Pass {
					failed++
				}
			}
			if output == "json" {
				if err := json.NewEncoder(g.stdout).Encode(results); err != nil {
					return err
				}
			} else {
				for _, r := range results {
					switch {
					case !r.Pass:
						fmt.Fprintf(g.stdout, "FAIL %s.%s (%s)\n", r.Package, r.Name, r.Location)
						if r.Fail != "" {
							fmt.Fprintf(g.stdout, "     %s\n", strings.ReplaceAll(strings.TrimSpace(r.Fail), "\n", "\n     "))
						}
					case verbose:
						fmt.Fprintf(g.stdout, "PASS %s.%s (%s)\n", r.Package, r.Name, r.Duration.Round(time.Microsecond))
					}
				}
				fmt.Fprintf(g.stdout, "%d passed, %d failed\n", len(results)-failed, failed)
			}
			if len(results) == 0 {
				return fmt.Errorf("no tests found in %s (tests are rules named test_* in *_test.rego files)", args[0])
			}
			if failed > 0 {
				return &exitError{code: 2, err: fmt.Errorf("%d of %d policy tests failed", failed, len(results))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list passing tests too")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func newPolicyCheckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "check DIR",
		Short:   "Compile a policy folder strictly (`opa check --strict` rules) and validate its data files",
		Example: "  federa policy check ./policy",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := policy.Check(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s: ok\n", args[0])
			return nil
		},
	}
}

// policyEvalResult is `federa policy eval --output json`.
type policyEvalResult struct {
	Site     string          `json:"site"`
	Revision string          `json:"policy_revision"`
	Input    policy.Input    `json:"input"`
	Decision policy.Decision `json:"decision"`
	Trace    string          `json:"trace,omitempty"`
}

func newPolicyEvalCmd(g *globals) *cobra.Command {
	var sitePath, jobPath, policyDir, requester, role, output string
	var explain bool
	cmd := &cobra.Command{
		Use:   "eval --site site.yaml --job job.yaml",
		Short: "Print the admission decision a site would make for a job, without running anything",
		Long: `Build the exact input the site agent would give its policy for this job (the
site's dataset classifications, its jurisdiction, the coordinator's), evaluate
data.federa.admission and print the decision: allow or deny, reasons,
obligations, whether operator approval is needed. Nothing is contacted.`,
		Example: `  federa policy eval --site site.yaml --job job.yaml
  federa policy eval --site site.yaml --job job.yaml --explain
  federa policy eval --site site.yaml --job job.yaml --policy ./new-policy -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if sitePath == "" || jobPath == "" {
				return errors.New("flags --site and --job are required")
			}
			cfg, err := site.LoadFile(sitePath, nil)
			if err != nil {
				return err
			}
			if policyDir != "" {
				cfg.PolicyDir = policyDir
			}
			j, err := spec.ParseFile(jobPath)
			if err != nil {
				return err
			}
			task := &federav1.Task{TaskId: "dry-run", JobId: "dry-run", Kind: federav1.TaskKind_TASK_KIND_ADMIT,
				Spec: j.Proto(), Requester: requester, RequesterRole: role, DryRun: true}
			in, eng, err := site.PolicyInput(cmd.Context(), cfg, task)
			if err != nil {
				return err
			}
			var dec policy.Decision
			var trace string
			if explain {
				dec, trace, err = eng.ExplainAdmission(cmd.Context(), in)
			} else {
				dec, err = eng.Admission(cmd.Context(), in)
			}
			if err != nil {
				return err
			}
			name := in.Site.Name
			if output == "json" {
				return json.NewEncoder(g.stdout).Encode(policyEvalResult{Site: name, Revision: eng.Revision(), Input: in, Decision: dec, Trace: trace})
			}
			verdict := "DENY"
			switch {
			case dec.Allow && dec.RequireApproval:
				verdict = "ALLOW after operator approval"
			case dec.Allow:
				verdict = "ALLOW"
			}
			fmt.Fprintf(g.stdout, "%s at %s (policy %s)\n", verdict, name, eng.Revision())
			for _, r := range dec.Reasons {
				fmt.Fprintf(g.stdout, "  reason: %s\n", r)
			}
			ob, _ := json.Marshal(dec.Obligations)
			if s := string(ob); s != "{}" {
				fmt.Fprintf(g.stdout, "  obligations: %s\n", s)
			}
			if trace != "" {
				fmt.Fprintf(g.stdout, "\n%s\n", trace)
			}
			if !dec.Allow {
				return &exitError{code: 2, err: fmt.Errorf("the policy at %s denies the job", name)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&sitePath, "site", "", "the site's site.yaml (required)")
	cmd.Flags().StringVar(&jobPath, "job", "", "the job spec (required)")
	cmd.Flags().StringVar(&policyDir, "policy", "", "evaluate this policy folder instead of the site's")
	cmd.Flags().StringVar(&requester, "requester", "spiffe://example.org/user/alice", "the requester's SPIFFE ID")
	cmd.Flags().StringVar(&role, "role", "data-scientist", "the requester's role")
	cmd.Flags().BoolVar(&explain, "explain", false, "print the evaluation trace")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}
