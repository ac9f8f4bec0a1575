package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSiteDiskFull fills us/boston's state directory (a 16 MB tmpfs) in the
// middle of a job, with and without DP, then frees it. The site must say
// so in its log, send nothing it could not record (its egress journal, and
// under DP its privacy ledger, are written before anything leaves), and
// the job must finish on the others' quorum with every invariant holding;
// the site takes part again once the space is back.
//
// A site used to send updates its egress journal could not record, and a
// failed append left a torn line that the next record ran into; it now
// withholds what it cannot record and cuts a failed append back.
func TestSiteDiskFull(t *testing.T) {
	t.Parallel()
	for _, dp := range []bool{false, true} {
		t.Run(fmt.Sprintf("dp=%v", dp), func(t *testing.T) { t.Parallel(); siteDiskFull(t, dp) })
	}
}

func siteDiskFull(t *testing.T, dp bool) {
	needNetns(t)
	mnt := filepath.Join(t.TempDir(), "boston-tmpfs")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt).CombinedOutput(); err != nil {
		// As for namespaces (needNetns): the kernel's refusal skips,
		// unless FEDERA_CHAOS_REQUIRED=1.
		if os.Getenv("FEDERA_CHAOS_REQUIRED") == "1" {
			t.Fatalf("mount a tmpfs: %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs (needs root with CAP_SYS_ADMIN): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	f := startFederation(t, options{siteDirs: map[string]string{"us/boston": filepath.Join(mnt, "state")}})
	h := newHistory()
	f.waitSites()
	// 16 rounds: the site drops out in the round after the fill (it cannot
	// record), and has 5 or more left to come back in.
	spec := strings.Replace(diskJob, "rounds: 40", "rounds: 16", 1)
	if dp {
		spec += "privacy:\n  dp: {epsilon: 8, delta: 1e-5, clip_norm: 1.0}\n"
	}
	id := f.submit(spec)
	for deadline := time.Now().Add(2 * time.Minute); ; {
		j, ok := h.read(f, id)
		if ok && j.RoundsCompleted >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job never reached round 2: %+v", j)
		}
		time.Sleep(50 * time.Millisecond)
	}
	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	// The disk stays full until a round has closed without us/boston (it
	// withholds what it cannot record), then the space comes back while
	// rounds remain.
	for full := time.Now(); ; {
		j, ok := h.read(f, id)
		if ok && len(j.Rounds) > 0 && !strings.Contains(strings.Join(j.Rounds[len(j.Rounds)-1].Participants, ","), "us/boston") {
			break
		}
		if time.Since(full) > time.Minute {
			t.Fatalf("us/boston kept taking part for a minute on a full disk: %+v", j)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if j, _ := h.read(f, id); j.RoundsCompleted > 11 {
		t.Fatalf("the space comes back after round %d of 16: too late to see us/boston rejoin", j.RoundsCompleted)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	j := f.waitEnd(h, id, 3*time.Minute)
	var said string
	for _, line := range strings.Split(f.sites["us/boston"].log(), "\n") {
		if strings.Contains(line, "no space left on device") {
			said = line
			break
		}
	}
	t.Logf("us/boston on a full disk said: %s", said)
	var out []int
	for _, r := range j.Rounds {
		if !strings.Contains(strings.Join(r.Participants, ","), "us/boston") {
			out = append(out, r.Round)
		}
	}
	t.Logf("job %s; rounds without us/boston: %v", j.Status, out)
	if j.Status != "SUCCEEDED" {
		t.Errorf("job: %s: %s", j.Status, j.Message)
	}
	if said == "" {
		t.Errorf("us/boston never reported the full disk")
	}
	if last := j.Rounds[len(j.Rounds)-1]; !strings.Contains(strings.Join(last.Participants, ","), "us/boston") {
		t.Errorf("us/boston did not take part again once the space was back: last round %v", last.Participants)
	}
	for !h.snap(f) {
		time.Sleep(100 * time.Millisecond)
	}
	if v := h.check(f, map[string]int{id: 16}, dp); len(v) > 0 {
		for _, x := range v {
			t.Error(x)
		}
	}
}
