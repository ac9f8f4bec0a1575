// Package federa holds what the whole module shares at its root: the demo
// dataset, embedded so `federa demo` runs from any directory with no setup.
//
// The code lives in the packages below: coordinator/ and site/ (the two
// daemons), models/ (training and aggregation), attest/ (identity), store/
// (durable state), proto/ (the wire), cli/ (the one binary).
package federa

import (
	"embed"
	"io/fs"
)

//go:embed testdata/breast-cancer/*.csv
var demoData embed.FS

// DemoData is the shipped demo dataset: one CSV per site named
// <jurisdiction>-<site>.csv plus test.csv, which no site gets. See
// testdata/README.md for its source, licence and split.
func DemoData() fs.FS {
	sub, err := fs.Sub(demoData, "testdata/breast-cancer")
	if err != nil {
		panic(err) // the pattern above guarantees the directory
	}
	return sub
}
