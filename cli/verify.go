package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/federa-dev/federa/attest/auditlog"
	"github.com/federa-dev/federa/attest/sign"
)

func newModelVerifyCmd(g *globals) *cobra.Command {
	var key, bundle, prov, state, auditKey, output string
	cmd := &cobra.Command{
		Use:   "verify MODEL",
		Short: "Verify a model's signature and provenance, offline (what cosign checks, and more)",
		Long: `Check MODEL against its sigstore bundle (MODEL.sigstore.json) and its signed
in-toto provenance (MODEL.provenance.sigstore.json) with the coordinator's
public key (signing.pub beside it). With --state (or --audit-key), also check
the provenance's audit checkpoint is signed by the audit log's key, and with
--state that the log verifies and records this model's release.

The same bundle verifies with the real cosign CLI:
  cosign trusted-root create --out empty_root.json
  cosign verify-blob --key signing.pub --insecure-ignore-tlog=true --trusted-root empty_root.json \
    --new-bundle-format --bundle model.safetensors.sigstore.json model.safetensors`,
		Example: `  federa model verify model.safetensors
  federa model verify model.safetensors --state ./demo-state`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			p := releasePaths(args[0])
			if key != "" {
				p.SigningKey = key
			}
			if bundle != "" {
				p.Bundle = bundle
			}
			if prov != "" {
				p.Provenance = prov
			}
			res := map[string]any{"ok": false, "model": p.Model}
			// report ends the command: a JSON line for scripts (also when
			// the model does not verify), then the exit status.
			report := func(code int, err error) error {
				if output == "json" {
					res["ok"] = err == nil
					if err != nil {
						res["error"] = err.Error()
					}
					if jerr := json.NewEncoder(g.stdout).Encode(res); jerr != nil {
						return jerr
					}
				}
				if err != nil {
					return &exitError{code: code, err: err}
				}
				return nil
			}
			read := func(flag, path string) ([]byte, error) {
				b, err := os.ReadFile(path)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", flag, err)
				}
				return b, nil
			}
			model, err := read("model", p.Model)
			if err != nil {
				return report(1, err)
			}
			pub, err := read("signing key (--key)", p.SigningKey)
			if err != nil {
				return report(1, err)
			}
			bb, err := read("bundle (--bundle)", p.Bundle)
			if err != nil {
				return report(1, err)
			}
			pb, err := read("provenance (--provenance)", p.Provenance)
			if err != nil {
				return report(1, err)
			}
			fail := func(err error) error {
				res["verified"] = false
				return report(2, fmt.Errorf("%s does NOT verify: %w", p.Model, err))
			}
			if err := sign.VerifyBlob(pub, bb, model); err != nil {
				return fail(err)
			}
			res["signature_ok"] = true
			provenance, err := sign.VerifyProvenance(pub, pb, model)
			if err != nil {
				return fail(err)
			}
			res["provenance_ok"] = true
			res["provenance"] = provenanceJSON(provenance)
			if state != "" || auditKey != "" {
				k := auditKey
				var logDir string
				if state != "" {
					dir, keyFile, err := auditDirs(state)
					if err != nil {
						return report(1, err)
					}
					logDir = dir
					if k, err = readKey(keyFile, auditKey); err != nil {
						return report(1, err)
					}
				}
				head, err := auditlog.VerifyCheckpoint([]byte(provenance.AuditCheckpoint), k)
				if err != nil {
					return fail(fmt.Errorf("the provenance's audit checkpoint: %w", err))
				}
				res["audit_checkpoint_size"] = head.Size
				if logDir != "" {
					if _, err := auditlog.Verify(logDir, k); err != nil {
						return fail(err)
					}
					idx, err := findRelease(state, sha256Hex(model), head.Size)
					if errors.Is(err, errLogInUse) {
						// Not a verdict on the model: the log is locked by the
						// coordinator that writes it.
						res["state_in_use"] = true
						return report(1, fmt.Errorf("%s: signature, provenance and its audit checkpoint verify, and the audit log verifies; "+
							"whether the log records this model's release was not checked: the state directory %s is in use by a running coordinator "+
							"(its audit log is locked). Stop that coordinator and run this again, or ask the running one: "+
							"federa audit show --job JOB --coordinator ADDR lists the job's model_release entry", p.Model, state))
					}
					if err != nil {
						return fail(err)
					}
					res["audit_release_entry"] = idx
				}
			}
			res["verified"] = true
			if output == "json" {
				return report(0, nil)
			}
			fmt.Fprintf(g.stdout, "%s: signature ok; provenance ok (%d rounds, sites %v)", filepath.Base(p.Model), provenance.Rounds, provenance.Sites)
			if i, ok := res["audit_release_entry"]; ok {
				fmt.Fprintf(g.stdout, "; released at audit entry %v, covered by a signed checkpoint of %v entries", i, res["audit_checkpoint_size"])
			}
			fmt.Fprintln(g.stdout)
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the coordinator's public key (default: signing.pub beside the model)")
	cmd.Flags().StringVar(&bundle, "bundle", "", "the model's sigstore bundle (default: MODEL.sigstore.json)")
	cmd.Flags().StringVar(&prov, "provenance", "", "the provenance bundle (default: MODEL.provenance.sigstore.json)")
	cmd.Flags().StringVar(&state, "state", "", "also check against the coordinator's audit log in this state directory")
	cmd.Flags().StringVar(&auditKey, "audit-key", "", "the audit log's verifier key, to check the provenance's checkpoint")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// findRelease finds the model_release entry for sha within the first size
// entries of the log.
func findRelease(state, sha string, size int64) (int64, error) {
	l, err := openAudit(state)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	for i := int64(0); i < size && i < l.Size(); i++ {
		leaf, err := l.Entry(i)
		if err != nil {
			return 0, err
		}
		e, err := auditlog.ParseEntry(leaf)
		if err != nil {
			return 0, err
		}
		if e.Type == auditlog.TypeModelRelease && fmt.Sprint(e.Data["artifact_sha256"]) == sha {
			return i, nil
		}
	}
	return 0, fmt.Errorf("the audit log has no model_release entry for sha256:%s within its first %d entries", sha, size)
}

// provenanceJSON is a provenance as -o json prints it: snake_case keys,
// as every other JSON federa prints (the signed in-toto predicate itself
// keeps its camelCase).
func provenanceJSON(p sign.Provenance) map[string]any {
	return map[string]any{
		"job_spec_digest": p.JobSpecDigest, "sites": p.Sites, "rounds": p.Rounds,
		"policy_revisions": p.PolicyRevisions, "epsilon_spent": p.EpsilonSpent, "audit_checkpoint": p.AuditCheckpoint,
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
