//go:build race

package coordinator

// raceEnabled: built with -race, whose sync.Pool drops a share of what
// is put back on purpose.
const raceEnabled = true
