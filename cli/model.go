package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/attest/sign"
	"github.com/federa-dev/federa/dataset"
	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

func newModelCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Download and evaluate trained models",
		Example: `  federa model get job-3f2a9c81d0e4 -o model.safetensors --identity ids/alice
  federa model eval --model model.safetensors --data test.csv`,
	}
	cmd.AddCommand(newModelGetCmd(g), newModelEvalCmd(g), newModelVerifyCmd(g))
	return cmd
}

func newModelGetCmd(g *globals) *cobra.Command {
	var f clientFlags
	var out, output string
	var checkpoint bool
	cmd := &cobra.Command{
		Use:   "get JOB",
		Short: "Download a succeeded job's model as a safetensors file",
		Long: `Download the model of a succeeded job. The file is safetensors: tensors
linear.weight [K, F], linear.bias [K], scaler.mean [F], scaler.scale [F] and
metadata naming the features, classes and label (docs/models.md), readable
from Python with the safetensors package or a few lines of numpy.

With --checkpoint, download the model of the last completed round of a job
that has not ended (running, or waiting for its quorum): not signed, since
only a finished job's model is released with a signature and provenance,
but its handing out is recorded in the audit log.

Here -o is the file to write; the output format is the long flag --output.`,
		Example: `  federa model get job-3f2a9c81d0e4 -o model.safetensors --identity ids/alice
  federa model get job-3f2a9c81d0e4 -o model.safetensors --output json
  federa model get job-3f2a9c81d0e4 --checkpoint -o round.safetensors`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if out == "" {
				return errors.New("flag --out/-o: required (where to write the model)")
			}
			f.output = "text"
			c, closeFn, err := f.jobs()
			if err != nil {
				return err
			}
			defer closeFn()
			if checkpoint {
				return getCheckpoint(cmd, g, c, args[0], out, output)
			}
			sum, n, err := downloadModel(cmd, c, args[0], out)
			if err != nil {
				return err
			}
			p := releasePaths(out)
			if output == "json" {
				return json.NewEncoder(g.stdout).Encode(map[string]any{
					"job": args[0], "model": out, "bytes": n, "sha256": sum, "verified": true,
					"bundle": p.Bundle, "provenance": p.Provenance, "signing_key": p.SigningKey,
				})
			}
			fmt.Fprintf(g.stdout, "wrote %s (%d bytes, sha256:%s), verified against %s\n", out, n, sum, p.Bundle)
			fmt.Fprintf(g.stdout, "also: %s (signed provenance), %s (the coordinator's public key)\n", p.Provenance, p.SigningKey)
			return nil
		},
	}
	f.registerConn(cmd)
	cmd.Flags().StringVarP(&out, "out", "o", "", "file to write (required)")
	cmd.Flags().StringVar(&output, "output", "text", "output format: text or json")
	cmd.Flags().BoolVar(&checkpoint, "checkpoint", false, "the last completed round's model of a job that has not ended (not signed)")
	return cmd
}

// getCheckpoint writes the model of a running or waiting job's last
// completed round, after checking it parses.
func getCheckpoint(cmd *cobra.Command, g *globals, c federav1.JobServiceClient, jobID, out, output string) error {
	model, err := fetchArtifact(cmd, c, jobID, "checkpoint")
	if err != nil {
		return err
	}
	m, err := models.ReadSafetensors(bytes.NewReader(model))
	if err != nil {
		return fmt.Errorf("get checkpoint: the coordinator sent an unreadable model: %w", err)
	}
	if dir := filepath.Dir(out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := attest.WriteFileAtomic(out, model, 0o644); err != nil {
		return err
	}
	sum, round := sha256Hex(model), m.Metadata["federa.rounds"]
	if output == "json" {
		return json.NewEncoder(g.stdout).Encode(map[string]any{
			"job": jobID, "model": out, "bytes": len(model), "sha256": sum, "checkpoint": true, "round": json.Number(round), "verified": false,
		})
	}
	fmt.Fprintf(g.stdout, "wrote %s (%d bytes, sha256:%s): the model of round %s of job %s, not signed (only a finished job's model is)\n", out, len(model), sum, round, jobID)
	return nil
}

// fetchArtifact streams one release artifact of a job.
func fetchArtifact(cmd *cobra.Command, c federav1.JobServiceClient, jobID, artifact string) ([]byte, error) {
	stream, err := c.GetModel(cmd.Context(), &federav1.GetModelRequest{JobId: jobID, Artifact: artifact})
	if err != nil {
		return nil, rpcErr("get "+artifact, err)
	}
	var buf bytes.Buffer
	for {
		ch, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return buf.Bytes(), nil
		}
		if err != nil {
			return nil, rpcErr("get "+artifact, err)
		}
		buf.Write(ch.GetData())
	}
}

// releaseFiles are where `model get` puts a model's companions.
type releaseFiles struct {
	Model, Bundle, Provenance, SigningKey string
}

func releasePaths(model string) releaseFiles {
	return releaseFiles{
		Model: model, Bundle: model + ".sigstore.json", Provenance: model + ".provenance.sigstore.json",
		SigningKey: filepath.Join(filepath.Dir(model), "signing.pub"),
	}
}

// downloadModel fetches a model with its signature bundle, provenance and
// the coordinator's public key, checks the model parses, matches the digest
// the coordinator recorded and verifies against the bundle, and only then
// writes the files (each atomically).
func downloadModel(cmd *cobra.Command, c federav1.JobServiceClient, jobID, out string) (string, int, error) {
	job, err := c.GetJob(cmd.Context(), &federav1.GetJobRequest{Id: jobID})
	if err != nil {
		return "", 0, rpcErr("get job", err)
	}
	model, err := fetchArtifact(cmd, c, jobID, "model")
	if err != nil {
		return "", 0, err
	}
	s := sha256.Sum256(model)
	sum := hex.EncodeToString(s[:])
	if job.GetModelSha256() != "" && sum != job.GetModelSha256() {
		return "", 0, fmt.Errorf("get model: downloaded file has sha256 %s but the coordinator recorded %s", sum, job.GetModelSha256())
	}
	if _, err := models.ReadSafetensors(bytes.NewReader(model)); err != nil {
		return "", 0, fmt.Errorf("get model: the coordinator sent an unreadable model: %w", err)
	}
	files := map[string][]byte{}
	paths := releasePaths(out)
	for artifact, path := range map[string]string{"bundle": paths.Bundle, "provenance": paths.Provenance, "signing_key": paths.SigningKey} {
		b, err := fetchArtifact(cmd, c, jobID, artifact)
		if err != nil {
			return "", 0, err
		}
		files[path] = b
	}
	if err := sign.VerifyBlob(files[paths.SigningKey], files[paths.Bundle], model); err != nil {
		return "", 0, fmt.Errorf("get model: the model does not verify against its signature bundle: %w", err)
	}
	files[out] = model
	if dir := filepath.Dir(out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", 0, err
		}
	}
	for path, b := range files {
		if err := attest.WriteFileAtomic(path, b, 0o644); err != nil {
			return "", 0, err
		}
	}
	return sum, len(model), nil
}

// evalResult is what `model eval` reports: accuracy for a classifier,
// RMSE and R² for a regressor (Kind says which; the other's fields are
// left out of the JSON).
type evalResult struct {
	Model    string  `json:"model"`
	Data     string  `json:"data"`
	Label    string  `json:"label"`
	Kind     string  `json:"kind"` // "classification" or "regression"
	Rows     int     `json:"rows"`
	Correct  int     `json:"correct"`
	Accuracy float64 `json:"accuracy"`
	// Unseen rows have a label the model never saw (no site had that
	// class): scored, and counted wrong.
	Unseen int `json:"unseen_label_rows"`
	// A regressor's root mean squared error and R² (1 − SSE/SST with the
	// file's own mean, as scikit-learn's r2_score).
	RMSE float64 `json:"rmse"`
	R2   float64 `json:"r2"`
}

// MarshalJSON leaves out the fields of the other kind of model; a
// regressor's R² is null when the file's label does not vary.
func (r evalResult) MarshalJSON() ([]byte, error) {
	m := map[string]any{"model": r.Model, "data": r.Data, "label": r.Label, "kind": r.Kind, "rows": r.Rows}
	if r.Kind == models.Regressor.String() {
		m["rmse"], m["r2"] = r.RMSE, jsonFloat(r.R2)
	} else {
		m["correct"], m["accuracy"], m["unseen_label_rows"] = r.Correct, r.Accuracy, r.Unseen
	}
	return json.Marshal(m)
}

// evaluateModelFile scores a model file on a CSV using nothing but the two
// files: the model's own features, classes and scaler.
func evaluateModelFile(modelPath, dataPath, label string) (*evalResult, error) {
	m, err := models.LoadModel(modelPath)
	if err != nil {
		return nil, err
	}
	if label == "" {
		label = m.Label
	}
	tab, err := dataset.LoadCSV(dataPath, dataset.Options{Label: label, Features: m.Features})
	if err != nil {
		return nil, err
	}
	r := &evalResult{Model: modelPath, Data: dataPath, Label: label, Kind: m.Kind().String(), Rows: tab.Rows()}
	pred, err := m.Predict(tab.X)
	if err != nil {
		return nil, fmt.Errorf("predict: %w", err)
	}
	if m.Kind() == models.Regressor {
		y, err := tab.LabelValues()
		if err != nil {
			return nil, err
		}
		var sse float64
		for i, p := range pred.Values {
			sse += (p - y[i]) * (p - y[i])
		}
		if n := len(y); n > 0 {
			r.RMSE = math.Sqrt(sse / float64(n))
		}
		r.R2 = models.SpreadOf(y).R2(sse)
		return r, nil
	}
	y, unseen, err := tab.ClassIndexOrUnseen(m.Classes)
	if err != nil {
		return nil, err
	}
	for i := range pred.Classes {
		if pred.Classes[i] == y[i] {
			r.Correct++
		}
	}
	r.Unseen = unseen
	if tab.Rows() > 0 {
		r.Accuracy = float64(r.Correct) / float64(tab.Rows())
	}
	return r, nil
}

// String is the text form of the figure.
func (r *evalResult) String() string {
	if r.Kind == models.Regressor.String() {
		return fmt.Sprintf("RMSE %.4g, R² %s (%d rows of %s)", r.RMSE, federav1.FormatAccuracy(r.R2), r.Rows, r.Data)
	}
	return fmt.Sprintf("accuracy %.4f (%d of %d rows of %s)", r.Accuracy, r.Correct, r.Rows, r.Data)
}

func newModelEvalCmd(g *globals) *cobra.Command {
	var modelPath, dataPath, label, output string
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Score a model file on a labelled CSV",
		Long: `Score a safetensors model on a CSV file. Only the two files are read: the
model carries its feature names, class order and standardization.
A classifier is scored by accuracy; a regressor (linreg) by RMSE and R².`,
		Example: "  federa model eval --model model.safetensors --data test.csv\n  federa model eval --model model.safetensors --data test.csv --label diagnosis -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if modelPath == "" || dataPath == "" {
				return errors.New("flags --model and --data are required")
			}
			r, err := evaluateModelFile(modelPath, dataPath, label)
			if err != nil {
				return err
			}
			if output == "json" {
				return json.NewEncoder(g.stdout).Encode(r)
			}
			fmt.Fprintln(g.stdout, r)
			if r.Unseen > 0 {
				fmt.Fprintf(g.stdout, "%d rows have a label the model never saw (no site had it); they count as wrong\n", r.Unseen)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&modelPath, "model", "", "safetensors model file (required)")
	cmd.Flags().StringVar(&dataPath, "data", "", "CSV file with a header row (required)")
	cmd.Flags().StringVar(&label, "label", "", "label column (default: the model's)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}
