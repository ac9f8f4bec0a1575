package chaos

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestCoordinatorDiskFull puts the coordinator's state directory on a
// 64 MB tmpfs and fills it while a job runs. The coordinator must say so
// clearly (ENOSPC in its log, naming what it could not write, and the job
// WAITING with a message that says it waits for disk space), leave no
// corrupt state (the audit log verifies and only grew), and the job must
// finish once the space is back — by itself, with the same coordinator
// process: no restart.
// diskJob's rounds take a few hundred milliseconds of local training.
const diskJob = `name: disk-full
dataset: breast-cancer
label: label
model: {type: logreg}
rounds: 40
local_epochs: 1000
batch_size: 16
learning_rate: 0.05
min_sites: 2
round_timeout: 1m
seed: 7
`

func TestCoordinatorDiskFull(t *testing.T) {
	t.Parallel()
	coordinatorDiskFull(t, "")
}

// TestCoordinatorStagingDiskFull fills only the folder where the round's
// checkpoint weights are staged (a tmpfs of its own at
// <state>/checkpoints), so the write that fails is the staging, before the
// round's audit entries exist: the job must wait and go on as above, with
// every round logged once.
func TestCoordinatorStagingDiskFull(t *testing.T) {
	t.Parallel()
	coordinatorDiskFull(t, "checkpoints")
}

// coordinatorDiskFull runs the disk-full scenario with the coordinator's
// whole state directory on a small tmpfs, or (only != "") just its
// subfolder only.
func coordinatorDiskFull(t *testing.T, only string) {
	needNetns(t)
	mnt := filepath.Join(t.TempDir(), "coord-tmpfs")
	state := filepath.Join(mnt, "state")
	if only != "" {
		state = filepath.Join(t.TempDir(), "state")
		mnt = filepath.Join(state, only)
	}
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt).CombinedOutput(); err != nil {
		// As for namespaces (needNetns): the kernel's refusal skips,
		// unless FEDERA_CHAOS_REQUIRED=1.
		if os.Getenv("FEDERA_CHAOS_REQUIRED") == "1" {
			t.Fatalf("mount a tmpfs: %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs (needs root with CAP_SYS_ADMIN): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	f := startFederation(t, options{coordDir: state})
	h := newHistory()
	f.waitSites()
	id := f.submit(diskJob)
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
	h.snap(f)
	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	// Keep it full: what the coordinator frees (a pruned checkpoint file)
	// would otherwise make room for its next write.
	stopFilling := keepFull(filler)
	// The coordinator hits the wall at its next write (the round's audit
	// append or checkpoint) and shows the job waiting for space.
	var enospc string
	var during jobJSON
	for deadline := time.Now().Add(30 * time.Second); (enospc == "" || during.Status != "WAITING") && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, line := range strings.Split(f.coord.log(), "\n") {
			if strings.Contains(line, "no space left on device") {
				enospc = line
				break
			}
		}
		during, _ = h.read(f, id)
	}
	if enospc == "" {
		stopFilling()
		os.Remove(filler)
		t.Fatalf("the coordinator never reported the full disk (job %s, %d rounds)", during.Status, during.RoundsCompleted)
	}
	t.Logf("full disk reported as: %s", enospc)
	t.Logf("with the disk full: job %s after %d rounds: %s", during.Status, during.RoundsCompleted, during.Message)
	if during.Status != "WAITING" || !strings.Contains(during.Message, "waiting for disk space") || !strings.Contains(during.Message, "no space left on device") {
		t.Errorf("with the disk full the job reads %s %q; want WAITING, saying it waits for disk space and why", during.Status, during.Message)
	}
	if only != "" && !strings.Contains(during.Message, "checkpoint weights") {
		t.Errorf("with only %s full the job reads %q; want it to name the checkpoint weights it could not stage", only, during.Message)
	}
	// Hold the disk full a while: the job keeps waiting, nothing is lost.
	time.Sleep(2 * time.Second)
	held, _ := h.read(f, id)
	if held.Status != "WAITING" || held.RoundsCompleted != during.RoundsCompleted {
		t.Errorf("2 s later, disk still full: job %s at %d rounds; want WAITING at %d", held.Status, held.RoundsCompleted, during.RoundsCompleted)
	}
	stopFilling()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	// No restart: the same process goes on.
	var resumed time.Duration
	for deadline := time.Now().Add(time.Minute); resumed == 0; time.Sleep(100 * time.Millisecond) {
		if j, ok := h.read(f, id); ok && (j.RoundsCompleted > during.RoundsCompleted || j.ended()) {
			resumed = time.Since(freed)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no round completed within 1 min of the space coming back, without a restart")
		}
	}
	t.Logf("the next round completed %s after the space came back (no restart)", resumed.Round(time.Millisecond))
	j := f.waitEnd(h, id, 3*time.Minute)
	if j.Status != "SUCCEEDED" {
		t.Errorf("after the space came back: job %s: %s", j.Status, j.Message)
	}
	if !f.coord.running() || f.coord.runs != 1 {
		t.Errorf("the coordinator was restarted or died (runs %d, running %v)", f.coord.runs, f.coord.running())
	}
	for !h.snap(f) {
		time.Sleep(100 * time.Millisecond)
	}
	if v := h.check(f, map[string]int{id: 40}, false); len(v) > 0 {
		for _, x := range v {
			t.Error(x)
		}
	}
}

// keepFull appends to path every few milliseconds, taking whatever space
// is freed, until the returned stop is called (it waits for the last
// write).
func keepFull(path string) (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return
		}
		defer fh.Close()
		buf := make([]byte, 512)
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			for {
				if _, err := fh.Write(buf); err != nil {
					break
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-stopped }) }
}

// fill writes path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := fh.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatal(err)
		}
	}
	// The last partial block too.
	for {
		if _, err := fh.Write(buf[:512]); err != nil {
			return
		}
	}
}
