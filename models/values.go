package models

// MakeValues returns n zeroed float32s for a tensor: make([]float32, n),
// with one difference for a model-sized tensor (4 MiB or more) on Linux:
// its memory is advised for transparent huge pages (madvise
// MADV_HUGEPAGE), so the kernel backs it with 2 MiB pages when it is
// first written instead of 4 KiB ones. A round writes model-sized memory
// that is new to the process — the sum of the first rounds, a site's
// first model and update — and each 4 KiB page costs a page fault: on
// the 2-core development VM, 100 MB of fresh memory took 280–380 ms to
// write in 4 KiB pages and about 30 ms in huge pages (BenchmarkFreshMemory
// measures the same). The advice is a hint: where the kernel has THP off
// (transparent_hugepage=never) or no huge page free, it falls back to
// 4 KiB pages; FEDERA_HUGEPAGES=off turns it off.
func MakeValues(n int) []float32 {
	d := make([]float32, n)
	if n >= hugeMin/4 && hugePagesOn {
		adviseHuge(d)
	}
	return d
}

// hugeMin is the smallest tensor, in bytes, advised for huge pages: two
// of them, so that at least one whole aligned 2 MiB page lies inside.
const hugeMin = 4 << 20
