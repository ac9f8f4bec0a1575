package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// AppendDecisions implements Store. Each job's decisions live in a bucket
// of their own, keyed by position (1, 2, 3, …), so appending costs the new
// records only and a page is a cursor seek.
func (b *Bolt) AppendDecisions(jobID string, ds []*federav1.SiteDecision) error {
	if jobID == "" {
		return errors.New("store: decisions for a job with no id")
	}
	if len(ds) == 0 {
		return nil
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		jb, err := tx.Bucket(bucketDecisions).CreateBucketIfNotExists([]byte(jobID))
		if err != nil {
			return err
		}
		for _, d := range ds {
			data, err := proto.MarshalOptions{Deterministic: true}.Marshal(d)
			if err != nil {
				return err
			}
			n, err := jb.NextSequence()
			if err != nil {
				return err
			}
			if err := jb.Put(binary.BigEndian.AppendUint64(nil, n), data); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListDecisions implements Store.
func (b *Bolt) ListDecisions(jobID string, after uint64, limit, maxBytes int) ([]*federav1.SiteDecision, uint64, int64, error) {
	var (
		out   []*federav1.SiteDecision
		last  uint64
		total int64
	)
	err := b.db.View(func(tx *bolt.Tx) error {
		jb := tx.Bucket(bucketDecisions).Bucket([]byte(jobID))
		if jb == nil {
			return nil
		}
		total = int64(jb.Sequence()) // appended only, never deleted
		c := jb.Cursor()
		size := 0
		for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, after+1)); k != nil && len(out) < limit; k, v = c.Next() {
			if size += len(v); size > maxBytes && len(out) > 0 {
				break
			}
			d := &federav1.SiteDecision{}
			if err := proto.Unmarshal(v, d); err != nil {
				return fmt.Errorf("store: decode decision %d of job %s: %w", binary.BigEndian.Uint64(k), jobID, err)
			}
			out = append(out, d)
			last = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return out, last, total, err
}
