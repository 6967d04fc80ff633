package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/skype-relay/relay/relay"
)

// classify wraps err with what the caller was doing and with its kind, so
// that the HTTP layer answers it correctly:
//
//   - relay.ErrUnavailable (503 with Retry-After, the sender retries) when
//     the database could not do the work now but may well do it later
//     (see isUnavailable);
//   - relay.ErrInternal (500, logged at error level) for everything else:
//     an error with no PostgreSQL code that is not about the connection (a
//     scan or encode error, a broken invariant, a panic) or a code that
//     means our statement or our data is wrong (syntax error, undefined
//     column, data exception, constraint violation). Retrying the same
//     request cannot cure those, and calling them "unavailable" would hide
//     a bug behind an endless retry and a warning about a dependency.
//
// An error that already carries a kind (relay.ErrNotFound, ErrInvalid,
// ErrConflict, ErrUnavailable, ErrInternal) keeps it.
func classify(doing string, err error) error {
	switch {
	case err == nil:
		return nil
	case classified(err):
		return fmt.Errorf("%s: %w", doing, err)
	case isUnavailable(err):
		return fmt.Errorf("%s: %w: %w", doing, relay.ErrUnavailable, err)
	default:
		return fmt.Errorf("%s: %w: %w", doing, relay.ErrInternal, err)
	}
}

func classified(err error) bool {
	for _, kind := range []error{relay.ErrUnavailable, relay.ErrInternal, relay.ErrInvalid, relay.ErrNotFound, relay.ErrConflict} {
		if errors.Is(err, kind) {
			return true
		}
	}
	return false
}

// isUnavailable reports whether err means the database could not do the
// work right now, for a reason a later retry may not meet: the connection
// failed or broke, the operation ran out of time, or the server refused for
// a passing reason (shutting down or starting up, a failover, too many
// connections, a serialization failure or deadlock, a lock wait cut short).
//
// pgconn.SafeToRetry is deliberately not a criterion: it says that nothing
// reached the server, which is also true of "conn busy", a programming
// error. The connection failures it covers are recognised below by their
// cause.
func isUnavailable(err error) bool {
	if errors.Is(err, relay.ErrUnavailable) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || pgconn.Timeout(err) {
		return true
	}
	// Before PgError: a server that refuses a connection attempt (starting
	// up, too many clients, a wrong password) answers with a code, but
	// whatever the code, no connection means nothing can be done now.
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return unavailableCode(pgErr)
	}
	var netErr net.Error
	return errors.As(err, &netErr) || // dial, read or write on the socket failed
		errors.Is(err, pgconn.ErrConnClosed) || // used a connection that had died
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// unavailableCode reports whether a PostgreSQL error code means "not now"
// rather than "never" (https://www.postgresql.org/docs/current/errcodes-appendix.html).
func unavailableCode(e *pgconn.PgError) bool {
	code := e.Code
	switch {
	case pgerrcode.IsConnectionException(code), // class 08
		// Class 53: disk full, out of memory, too many connections. Not
		// the request's fault; the operators' to fix.
		pgerrcode.IsInsufficientResources(code),
		// Class 57: admin shutdown (57P01), crash shutdown (57P02), cannot
		// connect now (57P03, starting up or in recovery), query canceled
		// (57014: our own deadline, statement_timeout or an operator's
		// pg_cancel_backend, never the statement's fault), idle session
		// timeout.
		pgerrcode.IsOperatorIntervention(code):
		return true
	}
	switch code {
	case pgerrcode.SerializationFailure, pgerrcode.DeadlockDetected, // retrying is the documented answer
		pgerrcode.StatementCompletionUnknown,      // the connection was lost around a commit
		pgerrcode.LockNotAvailable,                // lock_timeout
		pgerrcode.ReadOnlySQLTransaction,          // a failover in progress: the primary became a replica
		pgerrcode.IdleInTransactionSessionTimeout, // the server closed the session
		"25P04",                                  // transaction_timeout (PostgreSQL 17)
		pgerrcode.SystemError, pgerrcode.IOError: // the server's disk or operating system failed it
		return true
	case pgerrcode.FeatureNotSupported:
		// A migration changed a table under a statement pgx had prepared:
		// pgx drops the statement from its cache, so the next try works.
		return strings.Contains(e.Message, "cached plan must not change result type")
	}
	return false
}
