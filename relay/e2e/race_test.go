//go:build race

package e2e

// raceEnabled: the tests run with -race, so the relay binary is built with
// it too and its data races show up in its log (which fails the test).
const raceEnabled = true
