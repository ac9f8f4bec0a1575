package coordinator

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/internal/logkeys"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// A write the disk refused for want of space is retried, first after
// storageRetryFirst, then at doubling intervals up to storageRetryMax.
const (
	storageRetryFirst = 500 * time.Millisecond
	storageRetryMax   = 5 * time.Second
)

// noSpace reports whether err is a file system refusing a write for want
// of space (ENOSPC, or EDQUOT for a quota). Such a write left nothing
// behind: the audit log cuts a failed append back (auditlog.Log.Append),
// bbolt rolls a failed transaction back, and the in-memory job record is
// replaced only after its write succeeded; so the same write can simply
// be tried again once space is back.
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// retryStorage returns err unless it is noSpace; then it shows the job as
// WAITING, saying what could not be written and why, and tries write
// again, with backoff, until it succeeds (the job shows RUNNING again and
// goes on), fails otherwise (that error is returned), or ctx ends. The
// WAITING status is shown, not stored — the store is on the same full disk,
// and a restart resumes the job anyway.
func (c *Coordinator) retryStorage(ctx context.Context, id, what string, err error, write func() error) error {
	if err == nil || !noSpace(err) {
		return err
	}
	prev, _, _, _ := c.snapshot(id)
	msg := fmt.Sprintf("waiting for disk space: could not store %s: %v. Resumable: nothing completed is lost, "+
		"the write is retried (at most every %s) and the job goes on by itself once there is space on the coordinator's state directory",
		what, err, storageRetryMax)
	c.log.Error("disk full: the job waits and retries", logkeys.Job, id, "write", what, logkeys.Err, err)
	c.show(id, "waiting for disk space: "+what, func(j *federav1.Job) {
		j.Status = federav1.JobStatus_JOB_STATUS_WAITING
		j.Message = msg
	})
	start := c.cfg.Now()
	for wait := storageRetryFirst; ; wait = min(2*wait, storageRetryMax) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.cfg.Clock.After(wait):
		}
		err = write()
		if err == nil {
			c.log.Info("disk space is back; the job goes on", logkeys.Job, id, "write", what, "waited", c.cfg.Now().Sub(start).Round(time.Millisecond))
			c.show(id, "disk space back: stored "+what, func(j *federav1.Job) {
				if j.GetStatus() == federav1.JobStatus_JOB_STATUS_WAITING && j.GetMessage() == msg {
					j.Status, j.Message = prev.GetStatus(), prev.GetMessage()
				}
			})
			return nil
		}
		if !noSpace(err) {
			return err
		}
	}
}

// show changes the job as readers see it (GetJob, watch, the jobs page)
// without storing the change; the next stored update starts from it. It
// is for states that exist only while this process runs, such as a wait
// for disk space.
func (c *Coordinator) show(id, event string, fn func(j *federav1.Job)) {
	c.updMu.Lock()
	defer c.updMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	js, ok := c.jobs[id]
	if !ok || isFinal(js.job.GetStatus()) {
		return
	}
	j := proto.Clone(js.job).(*federav1.Job)
	fn(j)
	j.UpdatedUnixMs = c.cfg.Now().UnixMilli()
	js.job = j
	js.events = append(js.events, event)
	close(js.changed)
	js.changed = make(chan struct{})
}
