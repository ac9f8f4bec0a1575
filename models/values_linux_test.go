package models

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestMakeValuesAdvisesHugePages: a model-sized tensor's memory is
// advised for transparent huge pages (its mapping carries the "hg" flag
// in /proc/self/smaps).
func TestMakeValuesAdvisesHugePages(t *testing.T) {
	if !hugePagesOn {
		t.Skip("skipped: FEDERA_HUGEPAGES=off turns the advice off, so there is no advised mapping to find")
	}
	big := MakeValues(8 << 20) // 32 MiB
	p := uintptr(unsafe.Pointer(&big[0]))
	inside := (p + hugePage - 1) &^ (hugePage - 1)
	if flags := vmFlags(t, inside); !slices.Contains(flags, "hg") {
		t.Errorf("a 32 MiB tensor's memory has flags %v, want hg (MADV_HUGEPAGE)", flags)
	}
	runtime.KeepAlive(big)
}

// vmFlags reads the VmFlags of the mapping that holds addr.
func vmFlags(t *testing.T, addr uintptr) []string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("skipped: no /proc/self/smaps (%v)", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 {
			in = lo <= addr && addr < hi
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.Fields(strings.TrimPrefix(line, "VmFlags:"))
		}
	}
	t.Fatalf("no mapping in /proc/self/smaps holds %#x", addr)
	return nil
}

// BenchmarkFreshMemory writes 64 MiB of memory new to the process — as a
// round's sum, or a site's first model, is — in 4 KiB pages and, in the
// same iteration, in huge pages (adviseHuge), each freshly mapped and
// unmapped after: huge_ms / 4k_ms is what MakeValues saves on a
// model-sized tensor's first write.
func BenchmarkFreshMemory(b *testing.B) {
	const size = 64 << 20
	write := func(huge bool) time.Duration {
		m, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
		if err != nil {
			b.Fatal(err)
		}
		defer unix.Munmap(m)
		d := unsafe.Slice((*float32)(unsafe.Pointer(&m[0])), size/4)
		start := time.Now()
		if huge {
			adviseHuge(d)
		}
		for i := range d {
			d[i] = 1
		}
		return time.Since(start)
	}
	var small, huge []float64
	for range b.N {
		small = append(small, float64(write(false))/1e6)
		huge = append(huge, float64(write(true))/1e6)
	}
	slices.Sort(small)
	slices.Sort(huge)
	b.ReportMetric(small[len(small)/2], "4k_ms")
	b.ReportMetric(huge[len(huge)/2], "huge_ms")
	b.ReportMetric(huge[len(huge)/2]/small[len(small)/2], "huge/4k")
}
