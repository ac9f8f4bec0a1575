package sim_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/federa-dev/federa/dataset"
	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// The no-row guard: a row has not left a site in any form the coordinator
// could invert. Every number a site sent is read back out of its messages
// — double and float fields in field order, tensor chunks as float32,
// numbers inside JSON payloads — and a message leaks a row when any three
// numbers in sequence are three cells of one row, in any order (columns
// reordered), raw or standardized with the job's own scaler (which the
// coordinator holds and could undo), as float64 or float32.

// rowIndex maps a number (as float32 bits, the coarsest form a site
// sends) to the rows holding it.
type rowIndex struct {
	rows  []string // "site row N (form)"
	where map[uint32][]int
}

// indexRows indexes every row of every file in both forms: its raw
// feature cells and the cells standardized with scaler (features in the
// scaler's order).
func indexRows(t *testing.T, files map[string]string, features []string, scaler models.Scaler) *rowIndex {
	t.Helper()
	ix := &rowIndex{where: map[uint32][]int{}}
	for site, path := range files {
		tab, err := dataset.LoadCSV(path, dataset.Options{Label: "label", Features: features})
		if err != nil {
			t.Fatal(err)
		}
		std := scaler.Apply(tab.X)
		for i := range tab.Rows() {
			for form, row := range map[string][]float64{"raw": tab.X.RawRowView(i), "standardized": std.RawRowView(i)} {
				id := len(ix.rows)
				ix.rows = append(ix.rows, fmt.Sprintf("%s row %d (%s)", site, i+1, form))
				for _, v := range row {
					if trivial(v) {
						continue
					}
					k := math.Float32bits(float32(v))
					if l := ix.where[k]; len(l) == 0 || l[len(l)-1] != id {
						ix.where[k] = append(l, id)
					}
				}
			}
		}
	}
	return ix
}

// trivial values (0, ±1) are in too many places to identify anything.
func trivial(v float64) bool { return v == 0 || math.Abs(v) == 1 }

// leak returns the row three numbers in sequence of seq come from, or "".
func (ix *rowIndex) leak(seq []float64) string {
	for i := 0; i+2 < len(seq); i++ {
		a, b, c := seq[i], seq[i+1], seq[i+2]
		if trivial(a) || trivial(b) || trivial(c) || a == b || b == c || a == c {
			continue
		}
		common := ix.where[math.Float32bits(float32(a))]
		for _, v := range []float64{b, c} {
			next := ix.where[math.Float32bits(float32(v))]
			common = slices.DeleteFunc(slices.Clone(common), func(r int) bool { return !slices.Contains(next, r) })
		}
		if len(common) > 0 {
			return fmt.Sprintf("%s: cells %v, %v, %v", ix.rows[common[0]], a, b, c)
		}
	}
	return ""
}

// numbers lists every number in m in the order it is encoded: float and
// double fields in field order (repeated ones element by element, nested
// messages depth first), bytes as float32 little-endian when their length
// allows, and the numbers of a JSON payload.
func numbers(m protoreflect.Message) []float64 {
	var out []float64
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		v := m.Get(fd)
		add := func(v protoreflect.Value) {
			switch fd.Kind() {
			case protoreflect.DoubleKind, protoreflect.FloatKind:
				out = append(out, v.Float())
			case protoreflect.MessageKind:
				out = append(out, numbers(v.Message())...)
			case protoreflect.BytesKind:
				out = append(out, bytesNumbers(v.Bytes())...)
			}
		}
		switch {
		case fd.IsList():
			for j := range v.List().Len() {
				add(v.List().Get(j))
			}
		case fd.IsMap():
		default:
			add(v)
		}
	}
	return out
}

func bytesNumbers(b []byte) []float64 {
	var out []float64
	var doc any
	if json.Unmarshal(b, &doc) == nil {
		var walk func(any)
		walk = func(x any) {
			switch x := x.(type) {
			case float64:
				out = append(out, x)
			case []any:
				for _, e := range x {
					walk(e)
				}
			case map[string]any:
				for _, k := range slices.Sorted(maps.Keys(x)) {
					walk(x[k])
				}
			}
		}
		walk(doc)
		return out
	}
	for i := 0; i+4 <= len(b); i += 4 {
		out = append(out, float64(math.Float32frombits(binary.LittleEndian.Uint32(b[i:]))))
	}
	return out
}

// findLeak returns the first message of msgs that carries a row, or "".
func findLeak(ix *rowIndex, msgs []proto.Message) string {
	for i, m := range msgs {
		if l := ix.leak(numbers(m.ProtoReflect())); l != "" {
			return fmt.Sprintf("message %d (%T): %s", i, m, l)
		}
	}
	return ""
}

// jobScaler is the scaler the coordinator sent the sites for their tasks.
func jobScaler(t *testing.T, sent []proto.Message) ([]string, models.Scaler) {
	t.Helper()
	for _, m := range sent {
		if cm, ok := m.(*federav1.CoordinatorMessage); ok {
			if task := cm.GetTask(); len(task.GetScalerMean()) > 0 {
				return task.GetFeatures(), models.Scaler{Mean: task.GetScalerMean(), Scale: task.GetScalerScale()}
			}
		}
	}
	t.Fatal("no task with the job's scaler was sent")
	return nil, models.Scaler{}
}

// TestNoRowGuardCatchesEveryForm plants one row of eu/paris in each form a
// coordinator could invert, in each kind of result, and requires the
// guard to catch it; the same messages without the row pass.
func TestNoRowGuardCatchesEveryForm(t *testing.T) {
	files := map[string]string{}
	for _, s := range shippedSites {
		files[s.Name] = s.Path
	}
	tab, err := dataset.LoadCSV(files["eu/paris"], dataset.Options{Label: "label"})
	if err != nil {
		t.Fatal(err)
	}
	// A scaler like the job's: the union's moments.
	var mo models.Moments
	for _, p := range files {
		tb, err := dataset.LoadCSV(p, dataset.Options{Label: "label", Features: tab.Features})
		if err != nil {
			t.Fatal(err)
		}
		if err := mo.Merge(models.ComputeMoments(tb.X)); err != nil {
			t.Fatal(err)
		}
	}
	scaler := mo.Scaler()
	ix := indexRows(t, files, tab.Features, scaler)
	row := tab.X.RawRowView(6)
	std := scaler.Apply(mat.NewDense(1, len(row), slices.Clone(row))).RawRowView(0)
	pick := func(r []float64, cols ...int) []float64 {
		out := make([]float64, len(cols))
		for i, c := range cols {
			out[i] = r[c]
		}
		return out
	}
	f32 := func(vs []float64) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(v)))
		}
		return b
	}
	noise := []float64{0.123, -4.56, 7.89, 0.0101}
	for _, tc := range []struct {
		name  string
		build func(cells []float64) proto.Message
	}{
		{"statistics sums, float64", func(c []float64) proto.Message {
			return &federav1.SiteMessage{Body: &federav1.SiteMessage_Result{Result: &federav1.TaskResult{Kind: federav1.TaskKind_TASK_KIND_STATS, Sum: append(slices.Clone(noise), c...)}}}
		}},
		{"metrics in consecutive fields", func(c []float64) proto.Message {
			return &federav1.SiteMessage{Body: &federav1.SiteMessage_Result{Result: &federav1.TaskResult{Kind: federav1.TaskKind_TASK_KIND_EVAL, TrainLoss: c[0], EvalLoss: c[1], ComputeMs: c[2]}}}
		}},
		{"model update tensor, float32", func(c []float64) proto.Message {
			return &federav1.SiteMessage{Body: &federav1.SiteMessage_Chunk{Chunk: &federav1.TensorChunk{Data: append(f32(noise), f32(c)...)}}}
		}},
		{"JSON statistics payload", func(c []float64) proto.Message {
			b, _ := json.Marshal(map[string]any{"cells": []any{map[string]any{"sum": c}}})
			return &federav1.SiteMessage{Body: &federav1.SiteMessage_Chunk{Chunk: &federav1.TensorChunk{Data: b}}}
		}},
	} {
		for form, cells := range map[string][]float64{
			"raw":                        pick(row, 0, 1, 2),
			"standardized":               pick(std, 3, 4, 5),
			"reordered columns":          pick(row, 9, 2, 17),
			"standardized and reordered": pick(std, 20, 7, 11),
		} {
			t.Run(tc.name+"/"+form, func(t *testing.T) {
				if l := findLeak(ix, []proto.Message{tc.build(cells)}); !strings.Contains(l, "eu/paris row 7") {
					t.Errorf("a planted %s row in %s was not caught (got %q)", form, tc.name, l)
				}
			})
		}
		t.Run(tc.name+"/clean", func(t *testing.T) {
			if l := findLeak(ix, []proto.Message{tc.build([]float64{0.5, 0.25, 2.75})}); l != "" {
				t.Errorf("no row was planted, yet: %s", l)
			}
		})
	}
	if len(ix.rows) == 0 {
		t.Fatal("no rows indexed")
	}
}
