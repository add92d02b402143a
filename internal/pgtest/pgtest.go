package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable of an existing server to test
// against instead of starting a cluster.
const EnvURL = "TEST_DATABASE_URL"

// shared is the one server of a test binary.
var shared struct {
	mu   sync.Mutex
	main bool // Main is running the tests
	srv  *Server
	err  error // why the server could not be had; every later test fails with it
}

// Main runs the package's tests and then stops the shared cluster, if one
// was started, and removes its directory. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// The test binary exits with m.Run's code when TestMain returns.
func Main(m *testing.M) {
	shared.mu.Lock()
	shared.main = true
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	srv := shared.srv
	shared.srv = nil
	shared.mu.Unlock()
	if srv != nil {
		if err := srv.close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stopping the test cluster: %v\n", err)
			if code == 0 {
				// Returning lets the testing package exit with m.Run's code,
				// which would hide the leak.
				os.Exit(1)
			}
		}
	}
}

// Start returns the test binary's shared server, starting a local cluster
// on first use unless TEST_DATABASE_URL is set. It fails the test, never
// skips it, when no server can be had.
func Start(tb testing.TB) *Server {
	tb.Helper()
	srv, err := sharedServer()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return srv
}

func sharedServer() (*Server, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.main {
		return nil, fmt.Errorf("the package has no TestMain calling pgtest.Main(m), so nothing would stop the shared cluster; add:\n\tfunc TestMain(m *testing.M) { pgtest.Main(m) }")
	}
	if shared.srv != nil {
		return shared.srv, nil
	}
	if shared.err != nil {
		return nil, shared.err
	}
	if u := os.Getenv(EnvURL); u != "" {
		if _, err := pgx.ParseConfig(u); err != nil {
			shared.err = fmt.Errorf("%s: %w", EnvURL, err)
			return nil, shared.err
		}
		shared.srv = &Server{external: u}
		return shared.srv, nil
	}
	srv, err := newLocalServer()
	if err != nil {
		// Remembered so every later test fails at once instead of each
		// waiting for its own failed initdb.
		shared.err = fmt.Errorf("no PostgreSQL server for the tests: %w", err)
		return nil, shared.err
	}
	shared.srv = srv
	return srv, nil
}

// NewDatabase creates an empty database on the shared server, drops it when
// the test ends, and returns its URL.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	return Start(tb).NewDatabase(tb)
}

// NewServer starts a private local cluster for tb, stopped and removed at
// tb's cleanup. Use it for tests that stop, restart or kill the server, so
// that the package's other tests keep theirs; it always starts a local
// cluster, TEST_DATABASE_URL or not.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	srv, err := newLocalServer()
	if err != nil {
		tb.Fatalf("pgtest: private cluster: %v", err)
	}
	tb.Cleanup(func() {
		if err := srv.close(); err != nil {
			tb.Errorf("pgtest: stopping private cluster: %v", err)
		}
	})
	return srv
}

// NewDatabase creates an empty database t_<random> on s, drops it when the
// test ends, and returns its URL.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	var rnd [8]byte
	rand.Read(rnd[:])
	name := "t_" + hex.EncodeToString(rnd[:])

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.admin(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		// tb's own context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := s.admin(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		switch {
		case err == nil:
		case !s.External() && s.PID() == 0:
			// A test left the local server stopped; the database goes with
			// the cluster's directory.
		default:
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return s.URL(name)
}

// admin runs one statement on the server's maintenance database.
func (s *Server) admin(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.adminURL())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}
