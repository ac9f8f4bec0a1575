package transfer_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"
	"time"

	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/transfer"
)

// update is a layout-shaped update whose values depend on seed, so a sum
// that drops or doubles one site's update shows.
func update(layout models.Weights, seed float32) models.Weights {
	w := models.Weights{}
	for name, t := range layout {
		d := make([]float32, len(t.Data))
		for i := range d {
			d[i] = seed*float32(i%7+1) - float32(i%3)
		}
		w[name] = &models.Tensor{Name: name, Shape: t.Shape, Data: d}
	}
	return w
}

func fileDigest(t *testing.T, w models.Weights) string {
	t.Helper()
	b, err := models.EncodeWeights(w)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestSumIsFedAvg streams three sites' updates, their chunks interleaved
// as they would arrive, into one Sum: the mean is FedAvg's of the whole
// updates, and each stream's digest is the SHA-256 of the update's
// safetensors encoding, which the site can compute over what it sent.
func TestSumIsFedAvg(t *testing.T) {
	layout := weights(tensor("a.weight", 3, 700), tensor("b.bias", 5), tensor("c", 2, 2))
	sites := []string{"s1", "s2", "s3"}
	examples := []int64{10, 30, 7}
	var ups []models.Update
	chunks := map[string][]*federav1.TensorChunk{}
	for i, s := range sites {
		u := update(layout, float32(i+1))
		ups = append(ups, models.Update{Weights: u, Examples: int(examples[i])})
		chunks[s] = transfer.ChunkWeights("task-"+s, u, 1000)
	}
	buf := update(layout, 99) // a spare model: reused, and zeroed first
	sum, err := transfer.NewSum(layout, buf, sites)
	if err != nil {
		t.Fatal(err)
	}
	streams := map[string]*transfer.SumStream{}
	for i, s := range sites {
		if streams[s], err = sum.Stream(s, "task-"+s, examples[i]); err != nil {
			t.Fatal(err)
		}
	}
	for k := 0; ; k++ {
		more := false
		for _, s := range sites {
			if k >= len(chunks[s]) {
				continue
			}
			more = true
			done, err := streams[s].Add(chunks[s][k])
			if err != nil {
				t.Fatalf("%s chunk %d: %v", s, k, err)
			}
			if done != (k == len(chunks[s])-1) {
				t.Fatalf("%s chunk %d of %d: done = %v", s, k, len(chunks[s]), done)
			}
		}
		if !more {
			break
		}
	}
	mean, total, err := sum.Close(sites)
	if err != nil {
		t.Fatal(err)
	}
	if total != 47 {
		t.Fatalf("total examples %d, want 47", total)
	}
	want, err := models.FedAvg{}.Aggregate(layout, ups)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range layout.Names() {
		for i, v := range want[name].Data {
			if g := mean[name].Data[i]; math.Abs(float64(g-v)) > 1e-5*max(1, math.Abs(float64(v))) {
				t.Fatalf("%s[%d]: streamed mean %v, FedAvg %v", name, i, g, v)
			}
		}
	}
	if &mean["a.weight"].Data[0] != &buf["a.weight"].Data[0] {
		t.Error("the mean is not in the spare buffer NewSum was given")
	}
	for i, s := range sites {
		if got, want := streams[s].Digest(), fileDigest(t, ups[i].Weights); got != want {
			t.Errorf("%s: streamed digest %s, safetensors file's %s", s, got, want)
		}
	}
}

// TestSumSpoiled: a site that added chunks, or started and did not
// finish, and is then not counted spoils the sum, so the round is
// aggregated another way.
func TestSumSpoiled(t *testing.T) {
	layout := weights(tensor("w", 4, 500))
	sum, err := transfer.NewSum(layout, nil, []string{"s1", "s2", "s3"})
	if err != nil {
		t.Fatal(err)
	}
	ch1 := transfer.ChunkWeights("t1", update(layout, 1), 1000)
	ch2 := transfer.ChunkWeights("t2", update(layout, 2), 1000)
	s1, _ := sum.Stream("s1", "t1", 5)
	s2, _ := sum.Stream("s2", "t2", 5)
	if _, err := sum.Stream("s3", "t3", 5); err != nil {
		t.Fatal(err)
	}
	for _, c := range ch1 {
		if _, err := s1.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s2.Add(ch2[0]); err != nil {
		t.Fatal(err)
	}
	_, _, err = sum.Close([]string{"s1"})
	var sp *transfer.SpoiledError
	if !errors.As(err, &sp) || strings.Join(sp.Keys, ",") != "s2,s3" {
		t.Fatalf("Close with s2 half-added and s3 started: %v, want a SpoiledError naming s2 and s3", err)
	}
	if _, err := s2.Add(ch2[1]); err == nil {
		t.Fatal("a chunk after Close was accepted")
	}
}

// TestSumRefuses: a malformed chunk is refused before any of it is added.
func TestSumRefuses(t *testing.T) {
	layout := weights(tensor("a", 10), tensor("b", 10))
	good := transfer.ChunkWeights("t", update(layout, 1), 16)
	nan := transfer.ChunkWeights("t", update(layout, 1), 16)
	nan[1].Data[5] = 0xff // a NaN's high byte: 0x..ff7f... is not; set a whole value
	copy(nan[1].Data[4:8], []byte{0, 0, 0xc0, 0x7f})
	for _, tc := range []struct {
		name   string
		chunks []*federav1.TensorChunk
		want   string
	}{
		{"out of name order", append([]*federav1.TensorChunk{good[3]}, good...), "tensors must come in name order"},
		{"wrong shape", []*federav1.TensorChunk{{TransferId: "t", Name: "a", Shape: []int64{5, 2}, Data: good[0].Data}}, "shape [5 2], want [10]"},
		{"not finite", nan, "non-finite value"},
		{"short", good[:len(good)-1], ""},
		{"unknown tensor", []*federav1.TensorChunk{{TransferId: "t", Name: "z", Shape: []int64{1}, Data: make([]byte, 4)}}, "no such tensor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum, _ := transfer.NewSum(layout, nil, []string{"s"})
			st, _ := sum.Stream("s", "t", 3)
			var err error
			done := false
			for _, c := range tc.chunks {
				if done, err = st.Add(c); err != nil {
					break
				}
			}
			if tc.want == "" {
				if err != nil || done {
					t.Fatalf("an incomplete update: done %v, err %v", done, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestAssemblerDigest: the whole-update path hashes as chunks arrive too.
func TestAssemblerDigest(t *testing.T) {
	w := update(weights(tensor("a", 3, 300), tensor("b", 9)), 2)
	prefix, err := models.SafetensorsPrefix(w)
	if err != nil {
		t.Fatal(err)
	}
	a := transfer.NewAssembler("t", 1<<20)
	a.HashAs(prefix)
	for _, c := range transfer.ChunkWeights("t", w, 100) {
		if _, err := a.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := a.Digest(), fileDigest(t, w); got != want {
		t.Fatalf("assembler digest %s, file's %s", got, want)
	}
}

// TestSumOrderIndependent: the sum is the same to the last bit whatever
// order the sites' chunks arrive in — each site on its own goroutine, in
// one run the last-ranked site sends first — because values are added in
// the senders' rank order (float32 addition is not associative).
func TestSumOrderIndependent(t *testing.T) {
	layout := weights(tensor("w", 64, 1000))
	sites := []string{"a", "b", "c", "d"}
	run := func(delay map[string]time.Duration) models.Weights {
		sum, err := transfer.NewSum(layout, nil, sites)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i, s := range sites {
			u := update(layout, float32(i)*0.37+0.11)
			st, err := sum.Stream(s, "t"+s, int64(3+i*5))
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				time.Sleep(delay[s])
				for _, c := range transfer.ChunkWeights("t"+s, u, 4096) {
					if _, err := st.Add(c); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		mean, _, err := sum.Close(sites)
		if err != nil {
			t.Fatal(err)
		}
		return mean
	}
	first := run(map[string]time.Duration{"a": 30 * time.Millisecond, "b": 20 * time.Millisecond, "c": 10 * time.Millisecond})
	second := run(map[string]time.Duration{"d": 30 * time.Millisecond, "c": 20 * time.Millisecond, "b": 10 * time.Millisecond})
	for i, v := range first["w"].Data {
		if math.Float32bits(v) != math.Float32bits(second["w"].Data[i]) {
			t.Fatalf("w[%d]: %v one run, %v the other: the arrival order changed the sum", i, v, second["w"].Data[i])
		}
	}
}

// TestSumDropReleases: a sender that is dropped (lost before sending)
// no longer holds up those ranked after it.
func TestSumDropReleases(t *testing.T) {
	layout := weights(tensor("w", 100))
	sum, _ := transfer.NewSum(layout, nil, []string{"a", "b"})
	st, _ := sum.Stream("b", "tb", 2)
	done := make(chan error, 1)
	go func() {
		var err error
		for _, c := range transfer.ChunkWeights("tb", update(layout, 1), 0) {
			if _, err = st.Add(c); err != nil {
				break
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("b finished (%v) before a, ranked first, sent or was dropped", err)
	case <-time.After(50 * time.Millisecond):
	}
	sum.Drop("a")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, total, err := sum.Close([]string{"b"}); err != nil || total != 2 {
		t.Fatalf("Close: total %d, %v", total, err)
	}
}

// TestShareWeightsIsChunkWeights: the shared chunks carry the bytes
// ChunkWeights encodes.
func TestShareWeightsIsChunkWeights(t *testing.T) {
	w := update(weights(tensor("a", 3, 700), tensor("b", 5), tensor("e", 0)), 1.5)
	want := transfer.ChunkWeights("x", w, 1000)
	got := transfer.ShareWeights("x", w, 1000)
	if len(got) != len(want) {
		t.Fatalf("%d shared chunks, %d encoded", len(got), len(want))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("chunk %d differs: %v vs %v", i, got[i].GetName(), want[i].GetName())
		}
	}
}

// TestSumCloseWaitsForAdds: the values are added outside the sum's lock,
// beside other senders'; once Close returns nothing writes to the sum's
// buffer, which the caller may reuse at once (the round runs again
// holding whole updates into the same spare model). Close comes at a
// different moment of the senders' work each time, 100 times.
func TestSumCloseWaitsForAdds(t *testing.T) {
	layout := weights(tensor("w", 512<<10))
	sites := []string{"a", "b", "c"}
	var chunks [][]*federav1.TensorChunk
	for i, s := range sites {
		chunks = append(chunks, transfer.ChunkWeights("t"+s, update(layout, float32(i)+0.5), 64<<10))
	}
	spare := update(layout, 9) // the caller's memory, as a round's spare model is
	for k := range 100 {
		sum, err := transfer.NewSum(layout, spare, sites)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i, s := range sites {
			st, err := sum.Stream(s, "t"+s, int64(i+1))
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				for _, c := range chunks[i] {
					if _, err := st.Add(c); err != nil {
						return // the sum closed
					}
				}
			})
		}
		time.Sleep(time.Duration(k%10) * 300 * time.Microsecond)
		var sp *transfer.SpoiledError
		if _, _, err := sum.Close(nil); !errors.As(err, &sp) {
			t.Fatalf("Close with every sender unkept: %v, want a spoiled sum", err)
		}
		buf := spare["w"].Data
		snapshot := append([]float32(nil), buf...)
		wg.Wait()
		for i, v := range buf {
			if math.Float32bits(v) != math.Float32bits(snapshot[i]) {
				t.Fatalf("try %d: w[%d] changed after Close returned: %v, then %v", k, i, snapshot[i], v)
			}
		}
	}
}
