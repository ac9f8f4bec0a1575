package devnet_test

import (
	"path/filepath"
	"testing"

	"github.com/federa-dev/federa/internal/devnet"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/spec"
)

func secAggSpec() *spec.Job {
	j := demoSpec()
	j.Privacy.SecureAggregation = spec.SecureAggregation{On: true}
	return j
}

func TestSecureAggregationSmoke(t *testing.T) {
	n, _ := startNet(t, devnet.Options{})
	job := runJob(t, n, secAggSpec())
	if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job %s: %s", job.GetStatus(), job.GetMessage())
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	downloadModel(t, n, job.GetId(), path)
	t.Logf("acc %.4f rounds %v", accuracyOf(t, path, filepath.Join(shipped, "test.csv")), job.GetRounds()[0].GetSecagg())
}
