package coordinator

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/federa-dev/federa/attest/auditlog"
	"github.com/federa-dev/federa/internal/logkeys"
	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/spec"
	"github.com/federa-dev/federa/store"
)

// ArtifactCheckpoint is the GetModel artifact of a job that has not ended:
// the model of its last completed round, exported from the checkpoint. It
// is not signed (only a finished job's model is released with a bundle
// and provenance) but its handing out is in the audit log, as a
// model_release entry marked checkpoint.
const ArtifactCheckpoint = "checkpoint"

// checkpointModel exports job j's last checkpoint as a safetensors file,
// logs its release to who, and returns it.
func (c *Coordinator) checkpointModel(j *federav1.Job, who string) ([]byte, error) {
	if isFinal(j.GetStatus()) {
		return nil, status.Errorf(codes.FailedPrecondition, "job %s is %s: it has no checkpoint; a succeeded job's model is the artifact model", j.GetId(), j.GetStatus().Name())
	}
	cp, err := c.store.LoadCheckpoint(j.GetId())
	if errors.Is(err, store.ErrNotFound) || (err == nil && cp.GetRound() == 0) {
		return nil, status.Errorf(codes.FailedPrecondition, "job %s has completed no round yet; there is no model to fetch", j.GetId())
	} else if err != nil {
		return nil, status.Errorf(codes.Internal, "load checkpoint: %v", err)
	}
	arch, err := spec.ArchOf(j.GetSpec())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	w, err := models.DecodeWeights(cp.GetWeights())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "decode checkpoint of round %d: %v", cp.GetRound(), err)
	}
	m := &models.Model{
		Architecture: arch.Name(), Params: arch.Params(),
		Features: cp.GetFeatures(), Classes: cp.GetClasses(), Label: j.GetSpec().GetLabel(),
		Scaler:  models.Scaler{Mean: cp.GetScalerMean(), Scale: cp.GetScalerScale()},
		Weights: w,
		Metadata: map[string]string{"federa.job_id": j.GetId(), "federa.rounds": fmt.Sprint(cp.GetRound()),
			"federa.checkpoint": "true"},
	}
	var buf bytes.Buffer
	if err := models.WriteSafetensors(&buf, m); err != nil {
		return nil, status.Errorf(codes.Internal, "export checkpoint: %v", err)
	}
	sum := sha256.Sum256(buf.Bytes())
	e := auditlog.Entry{Type: auditlog.TypeModelRelease, Job: j.GetId(), Actor: "coordinator", Data: map[string]any{
		"artifact_sha256": hex.EncodeToString(sum[:]), "bytes": buf.Len(), "rounds": cp.GetRound(),
		"checkpoint": true, "to": who,
	}}
	if err := c.audit(true, e); err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	c.log.Info("checkpoint model handed out", logkeys.Job, j.GetId(), logkeys.Round, cp.GetRound(), "to", who, "model_sha256", hex.EncodeToString(sum[:]))
	return buf.Bytes(), nil
}
