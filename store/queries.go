package store

import (
	"errors"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// PutQuery implements Store.
func (b *Bolt) PutQuery(q *federav1.Query) error {
	if q.GetId() == "" {
		return errors.New("store: query has no id")
	}
	return b.db.Update(func(tx *bolt.Tx) error { return putProto(tx, bucketQueries, q.GetId(), q) })
}

// GetQuery implements Store.
func (b *Bolt) GetQuery(id string) (*federav1.Query, error) {
	q := &federav1.Query{}
	if err := b.db.View(func(tx *bolt.Tx) error { return getProto(tx, bucketQueries, id, q) }); err != nil {
		return nil, err
	}
	return q, nil
}

// ListQueries implements Store.
func (b *Bolt) ListQueries() ([]*federav1.Query, error) {
	var out []*federav1.Query
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketQueries).ForEach(func(k, v []byte) error {
			q := &federav1.Query{}
			if err := proto.Unmarshal(v, q); err != nil {
				return fmt.Errorf("store: decode query %s: %w", k, err)
			}
			out = append(out, q)
			return nil
		})
	})
	sort.SliceStable(out, func(i, k int) bool {
		if out[i].GetCreatedUnixMs() != out[k].GetCreatedUnixMs() {
			return out[i].GetCreatedUnixMs() < out[k].GetCreatedUnixMs()
		}
		return out[i].GetId() < out[k].GetId()
	})
	return out, err
}
