// Package e2e holds end-to-end tests of the relay binary: the real command,
// built once per test run, runs as separate processes against a real
// PostgreSQL database and the in-process UCWA simulator (package ucwasim),
// while the tests crash it with SIGKILL, stop it with SIGTERM, take the
// database away behind a TCP proxy, fail PostgreSQL over from a crashed
// primary to its synchronous standby, fail the Skype for Business pool
// over, run two replicas against one database, and serve TLS with basic
// auth from a web configuration file.
//
// Every test asserts outcomes only: each webhook answered 2xx ends up
// delivered, reached the simulator at least once, and any second copy of a
// message is marked as resent; the simulator saw no protocol violation.
// Timing only bounds the waits, generously.
//
// The package has no non-test code. Run it with
//
//	deploy/local/test.sh ./relay/e2e/ -v
//
// Each relay's JSON log is printed when its test fails; with E2E_LOG_DIR
// set, every relay's whole log is also written there as TEST-RELAY.log.
package e2e
