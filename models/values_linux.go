package models

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

var hugePagesOn = os.Getenv("FEDERA_HUGEPAGES") != "off"

const hugePage = 2 << 20

// adviseHuge advises the whole 2 MiB pages inside d's memory for
// transparent huge pages. Errors are ignored: the advice is a hint, and
// a kernel without THP refuses it (EINVAL) with nothing lost.
func adviseHuge(d []float32) {
	if len(d) == 0 {
		return
	}
	base := unsafe.Pointer(&d[0])
	p := uintptr(base)
	lo := (p + hugePage - 1) &^ (hugePage - 1)
	hi := (p + uintptr(4*len(d))) &^ (hugePage - 1)
	if hi <= lo {
		return
	}
	_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(base, lo-p)), hi-lo), unix.MADV_HUGEPAGE)
}
