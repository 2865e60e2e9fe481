//go:build race

package core

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// allocation counts of code that uses pools vary; tests that compare them
// skip those checks.
const raceEnabled = true
