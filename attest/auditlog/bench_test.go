package auditlog

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// dirBytes is the disk footprint of a log directory.
func dirBytes(tb testing.TB, dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// BenchmarkAppend measures durable appends. The baseline writes the same
// record bytes to a file and fsyncs once per entry, which is the floor for
// any log that acknowledges only durable entries; the log's cost over it
// is hashing, a second fsync (hashes.bin) and the checkpoints.
func BenchmarkAppend(b *testing.B) {
	signer, _ := testKey(b, "federa.bench/log")
	entry := sampleEntry(b, 3, "") // a round entry, the largest federa writes often
	leaf, err := func() ([]byte, error) { e := entry; e.Time = testClock()(); return e.Canonical() }()
	if err != nil {
		b.Fatal(err)
	}
	record := appendRecord(nil, leaf)

	report := func(b *testing.B, entries int, dir string) {
		b.ReportMetric(float64(entries)/b.Elapsed().Seconds(), "entries/s")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(entries), "ns/entry")
		b.ReportMetric(float64(dirBytes(b, dir))/float64(entries), "bytes/entry")
	}

	b.Run("baseline-write-fsync", func(b *testing.B) {
		dir := b.TempDir()
		f, err := os.Create(filepath.Join(dir, "baseline"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		var off int64
		for b.Loop() {
			if _, err := f.WriteAt(record, off); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			off += int64(len(record))
		}
		report(b, b.N, dir)
	})
	for _, every := range []int{30, 0} {
		name := fmt.Sprintf("log-checkpoint-every-%d", every)
		if every == 0 {
			name = "log-no-checkpoints"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			l, err := Open(dir, Options{Signer: signer})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			i := 0
			for b.Loop() {
				if _, err := l.Append(entry); err != nil {
					b.Fatal(err)
				}
				if i++; every > 0 && i%every == 0 {
					if _, err := l.Checkpoint(); err != nil {
						b.Fatal(err)
					}
				}
			}
			report(b, b.N, dir)
		})
	}
	// One Append per round of 30 entries: what batching buys.
	b.Run("log-batch-30-checkpoint-each", func(b *testing.B) {
		dir := b.TempDir()
		l, err := Open(dir, Options{Signer: signer})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		batch := make([]Entry, 30)
		for i := range batch {
			batch[i] = entry
		}
		for b.Loop() {
			if _, err := l.Append(batch...); err != nil {
				b.Fatal(err)
			}
			if _, err := l.Checkpoint(); err != nil {
				b.Fatal(err)
			}
		}
		report(b, b.N*len(batch), dir)
	})
}

// BenchmarkVerify measures Verify over a log of 100,000 entries (and
// 1,000,000 with FEDERA_BENCH_LARGE=1 and without -short). Building the
// log is not timed.
func BenchmarkVerify(b *testing.B) {
	sizes := []int{100_000}
	if !testing.Short() && os.Getenv("FEDERA_BENCH_LARGE") == "1" {
		sizes = append(sizes, 1_000_000)
	}
	signer, vkey := testKey(b, "federa.bench/log")
	for _, n := range sizes {
		dir := filepath.Join(b.TempDir(), "log")
		buildBenchLog(b, dir, signer, n)
		b.Run(fmt.Sprintf("entries-%d", n), func(b *testing.B) {
			for b.Loop() {
				rep, err := Verify(dir, vkey)
				if err != nil {
					b.Fatal(err)
				}
				if rep.Size != int64(n) {
					b.Fatalf("verified %d entries, want %d", rep.Size, n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
			b.ReportMetric(float64(dirBytes(b, dir))/float64(n), "bytes/entry")
		})
	}
}

// buildBenchLog appends n varied entries in rounds of 1,000 with a
// checkpoint every 10,000.
func buildBenchLog(b *testing.B, dir string, signer note.Signer, n int) {
	b.Helper()
	l, err := Open(dir, Options{Signer: signer, Now: testClock()})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	templates := make([]Entry, 64)
	for i := range templates {
		templates[i] = sampleEntry(b, i, "")
	}
	clock := testClock()
	batch := make([]Entry, 0, 1000)
	for i := 0; i < n; i++ {
		e := templates[i%len(templates)]
		e.Time = clock()
		batch = append(batch, e)
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := l.Append(batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
			if l.Size()%10_000 == 0 || i == n-1 {
				if _, err := l.Checkpoint(); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}
