package cli

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/federa-dev/federa/attest/auditlog"
	"github.com/federa-dev/federa/coordinator"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify, export and inspect the coordinator's signed, tamper-evident audit log",
		Long: `Every decision federa makes — job submitted, each site's admission and egress
decision, each round (participants and the digest of every update and of the
aggregate), DP spent, job end, model release — is an entry in an append-only
Merkle log (RFC 6962 hashing) whose signed checkpoints (C2SP signed notes)
let anyone check that nobody edited history. These commands read the
coordinator's state directory (or an export, for an auditor without access).`,
		Example: `  federa audit verify --state ./demo-state
  federa audit show --state ./demo-state --job job-3f2a9c81d0e4`,
	}
	cmd.AddCommand(newAuditVerifyCmd(g), newAuditExportCmd(g), newAuditCheckpointCmd(g), newAuditKeyCmd(g), newAuditShowCmd(g), newAuditProofCmd(g))
	return cmd
}

// auditDirs finds the audit log and its key below --state: the
// coordinator's state directory itself, or a demo's (DIR/coordinator).
func auditDirs(state string) (logDir, keyFile string, err error) {
	if state == "" {
		return "", "", errors.New("flag --state: required (the coordinator's state directory, or a demo's --state)")
	}
	for _, base := range []string{filepath.Join(state, "coordinator"), state} {
		if st, err := os.Stat(filepath.Join(base, coordinator.AuditDir)); err == nil && st.IsDir() {
			return filepath.Join(base, coordinator.AuditDir), filepath.Join(base, coordinator.AuditKeysDir, coordinator.AuditKeyFile), nil
		}
	}
	return "", "", fmt.Errorf("flag --state: no audit log under %s (looked for %s and %s)", state,
		filepath.Join(state, "coordinator", coordinator.AuditDir), filepath.Join(state, coordinator.AuditDir))
}

func readKey(keyFile, flagKey string) (string, error) {
	if flagKey != "" {
		if b, err := os.ReadFile(flagKey); err == nil {
			return strings.TrimSpace(string(b)), nil
		}
		return flagKey, nil
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return "", fmt.Errorf("read the log's verifier key: %w (or pass --key)", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// openAudit opens the log for reading. The coordinator holds it while it
// runs; stop it, or verify (which needs no lock).
// errLogInUse: the audit log is locked by the coordinator writing it.
var errLogInUse = errors.New("held by a running coordinator")

func openAudit(state string) (*auditlog.Log, error) {
	dir, _, err := auditDirs(state)
	if err != nil {
		return nil, err
	}
	l, err := auditlog.Open(dir, auditlog.Options{})
	if errors.Is(err, auditlog.ErrLocked) {
		return nil, fmt.Errorf("the audit log in %s is %w; stop it first (`federa audit verify` works while it runs)", dir, errLogInUse)
	}
	return l, err
}

// withLog runs fn on the log below state, closing it afterwards.
func withLog(state string, fn func(l *auditlog.Log) error) error {
	l, err := openAudit(state)
	if err != nil {
		return err
	}
	defer l.Close()
	return fn(l)
}

func newAuditVerifyCmd(g *globals) *cobra.Command {
	var state, file, cp, key, output string
	var witnesses []string
	var remote clientFlags
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Recompute the whole log and check every checkpoint signature, consistency and co-signature",
		Example: `  federa audit verify --state /var/lib/federa/coordinator
  federa audit verify --state ./demo-state
  federa audit verify --file log.jsonl --checkpoint cp.txt --key 'federa.demo/coordinator+1a2b3c4d+AbC…'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var rep *auditlog.Report
			var err error
			if file == "" && state == "" {
				r, rerr := remote.audit()
				if rerr != nil {
					return rerr
				}
				defer r.close()
				note, k, cerr := r.checkpoint(cmd)
				if cerr != nil {
					return cerr
				}
				if key != "" {
					if k, err = readKey("", key); err != nil {
						return err
					}
				}
				buf, xerr := r.exportBuffer(cmd)
				if xerr != nil {
					return xerr
				}
				rep, err = auditlog.VerifyExport(buf, note, k, witnesses...)
			} else if file != "" {
				if cp == "" || key == "" {
					return errors.New("verifying an export needs --checkpoint (a signed checkpoint note) and --key (the log's verifier key)")
				}
				k, kerr := readKey("", key)
				if kerr != nil {
					return kerr
				}
				note, rerr := os.ReadFile(cp)
				if rerr != nil {
					return fmt.Errorf("flag --checkpoint: %w", rerr)
				}
				f, ferr := os.Open(file)
				if ferr != nil {
					return fmt.Errorf("flag --file: %w", ferr)
				}
				defer f.Close()
				rep, err = auditlog.VerifyExport(f, note, k, witnesses...)
			} else {
				dir, keyFile, derr := auditDirs(state)
				if derr != nil {
					return derr
				}
				k, kerr := readKey(keyFile, key)
				if kerr != nil {
					return kerr
				}
				rep, err = auditlog.Verify(dir, k, witnesses...)
			}
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("audit log does NOT verify: %w", err)}
			}
			if output == "json" {
				return json.NewEncoder(g.stdout).Encode(map[string]any{
					"ok": true, "origin": rep.Origin, "entries": rep.Size, "root": rep.Root.String(),
					"checkpoints": rep.Checkpoints, "latest_checkpoint": rep.LatestCheckpoint, "unvouched": rep.Unvouched, "witnessed": rep.Witnessed,
				})
			}
			fmt.Fprintf(g.stdout, "ok: %d entries, root %s, %d checkpoints verified (latest covers %d entries)", rep.Size, rep.Root, rep.Checkpoints, rep.LatestCheckpoint)
			if rep.Unvouched > 0 {
				fmt.Fprintf(g.stdout, "; %d newer entries not yet covered by a checkpoint", rep.Unvouched)
			}
			fmt.Fprintln(g.stdout)
			return nil
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "the coordinator's state directory (or a demo's --state); without it, ask --coordinator")
	cmd.Flags().StringVar(&file, "file", "", "verify the export in `FILE` (written by federa audit export) instead of --state or --coordinator")
	cmd.Flags().StringVar(&cp, "checkpoint", "", "with --file: a signed checkpoint note")
	cmd.Flags().StringVar(&key, "key", "", "the log's verifier key (name+hash+base64key) or a file holding it (default: from --state)")
	cmd.Flags().StringSliceVar(&witnesses, "witness", nil, "witness verifier keys whose co-signatures must be present")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	remote.registerConn(cmd)
	return cmd
}

func newAuditExportCmd(g *globals) *cobra.Command {
	var state, out string
	var remote clientFlags
	cmd := &cobra.Command{
		Use:     "export",
		Short:   "Write every entry as one JSON object per line (index, base64 leaf, decoded entry)",
		Example: "  federa audit export --state ./demo-state -o log.jsonl",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := io.Writer(g.stdout)
			if out != "" && out != "-" {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			if state == "" {
				r, err := remote.audit()
				if err != nil {
					return err
				}
				defer r.close()
				return r.export(cmd, w)
			}
			return withLog(state, func(l *auditlog.Log) error { return l.Export(w) })
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "the coordinator's state directory (or a demo's --state); without it, ask --coordinator")
	cmd.Flags().StringVarP(&out, "out", "o", "", "file to write (default: standard output)")
	remote.registerConn(cmd)
	return cmd
}

// head returns the log's verifier key and, if withCheckpoint, its latest
// signed checkpoint: from the state directory, or from a running
// coordinator when state is empty.
func head(cmd *cobra.Command, state string, remote *clientFlags, withCheckpoint bool) (cp []byte, key string, err error) {
	if state == "" {
		r, err := remote.audit()
		if err != nil {
			return nil, "", err
		}
		defer r.close()
		return r.checkpoint(cmd)
	}
	_, keyFile, err := auditDirs(state)
	if err != nil {
		return nil, "", err
	}
	if key, err = readKey(keyFile, ""); err != nil || !withCheckpoint {
		return nil, key, err
	}
	err = withLog(state, func(l *auditlog.Log) error {
		cp, err = l.LatestCheckpoint()
		return err
	})
	return cp, key, err
}

func newAuditCheckpointCmd(g *globals) *cobra.Command {
	var state string
	var remote clientFlags
	cmd := &cobra.Command{
		Use:     "checkpoint",
		Short:   "Print the latest signed checkpoint note, as stored",
		Example: "  federa audit checkpoint --state ./demo-state > cp.txt\n  federa audit checkpoint --coordinator 127.0.0.1:7443 --identity ids/auditor",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cp, _, err := head(cmd, state, &remote, true)
			if err != nil {
				return err
			}
			_, err = g.stdout.Write(cp)
			return err
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "the coordinator's state directory (or a demo's --state); without it, ask --coordinator")
	remote.registerConn(cmd)
	return cmd
}

func newAuditKeyCmd(g *globals) *cobra.Command {
	var state string
	var remote clientFlags
	cmd := &cobra.Command{
		Use:     "key",
		Short:   "Print the log's note verifier key (name+hash+base64key)",
		Example: "  federa audit key --state ./demo-state",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, k, err := head(cmd, state, &remote, false)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, k)
			return nil
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "the coordinator's state directory (or a demo's --state); without it, ask --coordinator")
	remote.registerConn(cmd)
	return cmd
}

// eachLeaf calls fn for every entry: from the log below state, or from a
// running coordinator.
func eachLeaf(cmd *cobra.Command, state string, remote *clientFlags, fn func(i int64, leaf []byte) error) error {
	if state == "" {
		r, err := remote.audit()
		if err != nil {
			return err
		}
		defer r.close()
		buf, err := r.exportBuffer(cmd)
		if err != nil {
			return err
		}
		dec := json.NewDecoder(buf)
		for dec.More() {
			var line struct {
				Index int64  `json:"index"`
				Leaf  []byte `json:"leaf"`
			}
			if err := dec.Decode(&line); err != nil {
				return err
			}
			if err := fn(line.Index, line.Leaf); err != nil {
				return err
			}
		}
		return nil
	}
	return withLog(state, func(l *auditlog.Log) error {
		for i := int64(0); i < l.Size(); i++ {
			leaf, err := l.Entry(i)
			if err != nil {
				return err
			}
			if err := fn(i, leaf); err != nil {
				return err
			}
		}
		return nil
	})
}

func newAuditShowCmd(g *globals) *cobra.Command {
	var state, job, output string
	var remote clientFlags
	cmd := &cobra.Command{
		Use:     "show",
		Short:   "List the log's entries, optionally of one job",
		Example: "  federa audit show --state ./demo-state --job job-3f2a9c81d0e4\n  federa audit show --state ./demo-state -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			if output == "text" {
				fmt.Fprintln(tw, "INDEX\tTIME\tTYPE\tJOB\tSITE\tDETAIL")
			}
			err := eachLeaf(cmd, state, &remote, func(i int64, leaf []byte) error {
				e, err := auditlog.ParseEntry(leaf)
				if err != nil {
					return fmt.Errorf("entry %d: %w", i, err)
				}
				if job != "" && e.Job != job {
					return nil
				}
				if output == "json" {
					fmt.Fprintf(g.stdout, "{\"index\":%d,\"entry\":%s}\n", i, leaf)
					return nil
				}
				detail, _ := json.Marshal(e.Data)
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", i, e.Time.Format("15:04:05.000"), e.Type, e.Job, e.Site, oneLine(string(detail)))
				return nil
			})
			if err != nil {
				return err
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "the coordinator's state directory (or a demo's --state); without it, ask --coordinator")
	cmd.Flags().StringVar(&job, "job", "", "only this job's entries")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	remote.registerConn(cmd)
	return cmd
}

func newAuditProofCmd(g *globals) *cobra.Command {
	var state string
	var entry int64
	var remote clientFlags
	cmd := &cobra.Command{
		Use:     "proof --entry N",
		Short:   "Print an entry with its inclusion proof against the latest signed checkpoint",
		Example: "  federa audit proof --state ./demo-state --entry 42\n  federa audit proof --entry 42 --coordinator 127.0.0.1:7443 --identity ids/auditor",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if state == "" {
				return remoteProof(cmd, g, &remote, entry)
			}
			l, err := openAudit(state)
			if err != nil {
				return err
			}
			defer l.Close()
			cp, err := l.LatestCheckpoint()
			if err != nil {
				return err
			}
			_, keyFile, _ := auditDirs(state)
			key, err := readKey(keyFile, "")
			if err != nil {
				return err
			}
			head, err := auditlog.VerifyCheckpoint(cp, key)
			if err != nil {
				return err
			}
			if entry < 0 || entry >= head.Size {
				return fmt.Errorf("flag --entry: %d is not covered by the latest checkpoint (size %d); valid: 0..%d", entry, head.Size, head.Size-1)
			}
			leaf, err := l.Entry(entry)
			if err != nil {
				return err
			}
			proof, err := l.InclusionProof(entry, head.Size)
			if err != nil {
				return err
			}
			if err := head.CheckInclusion(entry, leaf, proof); err != nil {
				return err
			}
			hashes := make([]string, len(proof))
			for i, h := range proof {
				hashes[i] = base64.StdEncoding.EncodeToString(h[:])
			}
			return json.NewEncoder(g.stdout).Encode(map[string]any{
				"index": entry, "leaf": base64.StdEncoding.EncodeToString(leaf), "tree_size": head.Size,
				"root": base64.StdEncoding.EncodeToString(head.Root[:]), "inclusion_proof": hashes, "checkpoint": string(cp),
			})
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "the coordinator's state directory (or a demo's --state); without it, ask --coordinator")
	cmd.Flags().Int64Var(&entry, "entry", -1, "the entry index (required)")
	remote.registerConn(cmd)
	return cmd
}

// remoteProof asks a running coordinator for an entry's inclusion proof
// and checks it against the checkpoint before printing it.
func remoteProof(cmd *cobra.Command, g *globals, remote *clientFlags, entry int64) error {
	r, err := remote.audit()
	if err != nil {
		return err
	}
	defer r.close()
	_, key, err := r.checkpoint(cmd)
	if err != nil {
		return err
	}
	resp, err := r.c.Proof(cmd.Context(), &federav1.AuditProofRequest{Index: entry})
	if err != nil {
		return rpcErr("audit proof", err)
	}
	head, err := auditlog.VerifyCheckpoint(resp.GetCheckpoint(), key)
	if err != nil {
		return err
	}
	var proof tlog.RecordProof
	hashes := make([]string, len(resp.GetInclusionProof()))
	for i, b := range resp.GetInclusionProof() {
		var h tlog.Hash
		copy(h[:], b)
		proof = append(proof, h)
		hashes[i] = base64.StdEncoding.EncodeToString(b)
	}
	if err := head.CheckInclusion(entry, resp.GetLeaf(), proof); err != nil {
		return err
	}
	return json.NewEncoder(g.stdout).Encode(map[string]any{
		"index": entry, "leaf": base64.StdEncoding.EncodeToString(resp.GetLeaf()), "tree_size": head.Size,
		"root": base64.StdEncoding.EncodeToString(head.Root[:]), "inclusion_proof": hashes, "checkpoint": string(resp.GetCheckpoint()),
	})
}
