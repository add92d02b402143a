package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// describe adds to a PostgreSQL error the objects it names (table, column,
// constraint, COPY line) in front of pgx's "ERROR: message (SQLSTATE
// code)", keeping *pgconn.PgError reachable with errors.As. Detail is left
// out: it can quote row values.
func describe(err error) error {
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) {
		return err
	}
	var parts []string
	if pgErr.TableName != "" {
		t := pgErr.TableName
		if pgErr.SchemaName != "" {
			t = pgErr.SchemaName + "." + t
		}
		parts = append(parts, "table "+t)
	}
	if pgErr.ColumnName != "" {
		parts = append(parts, "column "+pgErr.ColumnName)
	}
	if pgErr.ConstraintName != "" {
		parts = append(parts, "constraint "+pgErr.ConstraintName)
	}
	if pgErr.DataTypeName != "" {
		parts = append(parts, "type "+pgErr.DataTypeName)
	}
	if pgErr.Where != "" {
		parts = append(parts, pgErr.Where)
	}
	if len(parts) == 0 {
		return err
	}
	return fmt.Errorf("%s: %w", strings.Join(parts, ", "), err)
}

// transient reports whether err is worth replaying the checkpoint for on a
// new connection: a lost or refused connection, a server shutting down or
// starting, a serialization failure or a deadlock. Cancellation never is.
func transient(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40001", // serialization_failure
			"40P01", // deadlock_detected
			"57P01", // admin_shutdown (also pg_terminate_backend)
			"57P02", // crash_shutdown
			"57P03", // cannot_connect_now
			"53300": // too_many_connections
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08") // connection_exception
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) ||
		errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE)
}

// sqlState returns err's SQLSTATE, "" if it has none.
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
