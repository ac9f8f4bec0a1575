package store

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// TestStagedWeights: a checkpoint saved without weights adopts those
// staged for its round, across a reopen; the previous round's file goes;
// a checkpoint with no staged weights is refused, leaving the last one;
// a finished job leaves no file behind.
func TestStagedWeights(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	j := job("job-1", 1, 0)
	stage := func(r int32, content string) {
		t.Helper()
		if err := b.StageWeights("job-1", r, func(w io.Writer) error { _, err := io.WriteString(w, content); return err }); err != nil {
			t.Fatal(err)
		}
	}
	files := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, "checkpoints", "*"))
		for i := range m {
			m[i] = filepath.Base(m[i])
		}
		return m
	}
	for r := int32(1); r <= 2; r++ {
		stage(r, strings.Repeat("w", int(r)*10))
		cp := checkpoint("job-1", r)
		cp.Weights = nil
		if err := b.SaveRound(j, cp); err != nil {
			t.Fatalf("SaveRound %d: %v", r, err)
		}
	}
	if got := files(); len(got) != 1 || got[0] != "job-1.r2.safetensors" {
		t.Fatalf("weight files %v, want only round 2's", got)
	}
	cp := checkpoint("job-1", 3)
	cp.Weights = nil
	if err := b.SaveRound(j, cp); err == nil {
		t.Fatal("a checkpoint without weights, none staged, was saved")
	}
	b.Close()
	b = open(t, dir)
	got, err := b.LoadCheckpoint("job-1")
	if err != nil {
		t.Fatal(err)
	}
	want := checkpoint("job-1", 2)
	want.Weights = bytes.Repeat([]byte("w"), 20)
	if !proto.Equal(got, want) {
		t.Fatalf("checkpoint after reopen: round %d, %d weight bytes; want round 2's staged 20", got.GetRound(), len(got.GetWeights()))
	}
	// A checkpoint with weights in its record replaces the file's.
	if err := b.SaveRound(j, checkpoint("job-1", 3)); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.LoadCheckpoint("job-1"); !proto.Equal(got, checkpoint("job-1", 3)) || len(files()) != 0 {
		t.Fatalf("after a checkpoint with weights: %v, files %v", got, files())
	}
	stage(4, "x")
	if err := b.FinishJob(j, []byte("model")); err != nil {
		t.Fatal(err)
	}
	if f := files(); len(f) != 0 {
		t.Fatalf("files left after the job finished: %v", f)
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoints")); err != nil {
		t.Fatal(err)
	}
}
