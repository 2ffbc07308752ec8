// Package db is Tandem's PostgreSQL plumbing: the connection pool, embedded
// migrations, and the translation of database errors into errs codes.
package db

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/tandem-chat/tandem/internal/errs"
)

// Open connects to PostgreSQL, registers the pgvector types on every
// connection, and checks that the server answers.
func Open(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("db: parse DATABASE_URL: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		// The extension may not exist yet on a brand-new database; migrations
		// create it, and connections opened after that register the types.
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'vector')`).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return nil
		}
		return pgxvec.RegisterTypes(ctx, conn)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("db: connect: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("db: ping: %w", err)
	}
	return pool, nil
}

// Translate maps database errors to errs codes in one place: no rows is
// NotFound, a unique violation is Conflict, a connection failure is
// Unavailable. Other errors pass through unchanged (Internal).
func Translate(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return errs.Errorf(errs.NotFound, "%s not found", what)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505":
			return errs.Errorf(errs.Conflict, "%s already exists", what)
		case "22P02": // invalid_text_representation, e.g. a malformed uuid
			return errs.Errorf(errs.NotFound, "%s not found", what)
		}
		if Unstorable(err) {
			return &wrapped{errs.Errorf(errs.Invalid, "the %s holds characters that cannot be stored (such as NUL)", what), err}
		}
	}
	if Unreachable(err) {
		return &wrapped{errs.Errorf(errs.Unavailable, "the database is unavailable; try again shortly"), err}
	}
	return err
}

// Unstorable reports whether err is PostgreSQL refusing text it cannot
// store: a NUL character (in text, or \u0000 in JSON), or bytes that are
// not UTF-8. The input was bad, not the server.
func Unstorable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "22021" || pgErr.Code == "22P05")
}

// Unreachable reports whether err means the database could not be reached
// or went away (restarting, shutting down, refusing connections, a broken
// connection, a timeout), as opposed to refusing the statement: such a
// request may succeed if tried again shortly.
func Unreachable(err error) bool {
	if err == nil || errs.CodeOf(err) == errs.Unavailable {
		return err != nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03", // shutting down, crashed, starting up
			pgErr.Code == "53300": // too many connections
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return pgconn.SafeToRetry(err) || errors.As(err, &ce) || errors.As(err, &ne) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || pgconn.Timeout(err) || strings.Contains(err.Error(), "conn closed")
}

// wrapped keeps the coded error for callers and the cause for logs.
type wrapped struct {
	coded *errs.Error
	cause error
}

func (w *wrapped) Error() string { return w.coded.Message + ": " + w.cause.Error() }
func (w *wrapped) Unwrap() []error {
	return []error{w.coded, w.cause}
}

// Querier is what pgxpool.Pool, pgx.Conn and pgx.Tx have in common for reads.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ValidID reports whether id is a well-formed UUID, the form of every id
// Tandem hands out; a malformed id is simply not found.
func ValidID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36
}
