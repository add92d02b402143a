package pgtest

import (
	"errors"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func TestDatabaseRoundTrip(t *testing.T) {
	ctx := t.Context()
	url := NewDatabase(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	tests := []struct {
		id   int
		name string
		at   time.Time
	}{
		{1, "ascii", time.Date(2024, 2, 29, 23, 59, 59, 123456000, time.UTC)},
		{2, "ünïcödé ✓", time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC)},
		{3, "", time.Unix(0, 0).UTC()},
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL, at timestamptz NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		if _, err := conn.Exec(ctx, `INSERT INTO t VALUES ($1, $2, $3)`, tt.id, tt.name, tt.at); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var name string
			var at time.Time
			if err := conn.QueryRow(ctx, `SELECT name, at FROM t WHERE id = $1`, tt.id).Scan(&name, &at); err != nil {
				t.Fatal(err)
			}
			if name != tt.name || !at.Equal(tt.at) {
				t.Errorf("got (%q, %v), want (%q, %v)", name, at, tt.name, tt.at)
			}
		})
	}

	// The cluster is made for the tests' data: UTF8, whatever the machine's
	// locale.
	var enc string
	if err := conn.QueryRow(ctx, `SHOW server_encoding`).Scan(&enc); err != nil {
		t.Fatal(err)
	}
	if enc != "UTF8" {
		t.Errorf("server_encoding = %s, want UTF8", enc)
	}
}

func TestDatabasesAreIsolated(t *testing.T) {
	ctx := t.Context()
	a, b := NewDatabase(t), NewDatabase(t)
	if a == b {
		t.Fatalf("two databases share the URL %s", a)
	}
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	if _, err := ca.Exec(ctx, `CREATE TABLE only_in_a (x int)`); err != nil {
		t.Fatal(err)
	}
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	var found bool
	if err := cb.QueryRow(ctx, `SELECT to_regclass('only_in_a') IS NOT NULL`).Scan(&found); err != nil {
		t.Fatal(err)
	}
	if found {
		t.Error("a table created in one test database is visible in another")
	}
}

func TestRestartKeepsCommittedData(t *testing.T) {
	srv := NewServer(t)
	if srv.DataDir() == "" || srv.Port() == 0 || srv.PID() == 0 {
		t.Fatalf("private server lacks data dir, port or pid: %q %d %d", srv.DataDir(), srv.Port(), srv.PID())
	}
	if _, err := os.Stat(srv.DataDir() + "/PG_VERSION"); err != nil {
		t.Fatalf("data dir: %v", err)
	}
	url := srv.NewDatabase(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE t (x int)`); err != nil {
		t.Fatal(err)
	}

	for _, mode := range []ShutdownMode{Fast, Immediate} {
		t.Run(mode.String(), func(t *testing.T) {
			// Committed just before the server goes down: a crash test
			// relies on it surviving even an immediate shutdown.
			if _, err := conn.Exec(ctx, `INSERT INTO t VALUES (42)`); err != nil {
				t.Fatal(err)
			}
			before := srv.PID()
			srv.Restart(t, mode)
			if after := srv.PID(); after == 0 || after == before {
				t.Fatalf("postmaster pid %d after restart, %d before", after, before)
			}
			if alive(before) {
				t.Errorf("old postmaster %d still running", before)
			}
			// The old connection died with the old server.
			if err := conn.Ping(ctx); err == nil {
				t.Error("connection survived a restart")
			}
			conn, err = pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM t WHERE x = 42`).Scan(&n); err != nil || n != int(mode)+1 {
				t.Fatalf("after %s restart: %d committed rows, want %d (%v)", mode, n, int(mode)+1, err)
			}
		})
	}
	conn.Close(ctx)
}

// TestStartAgainWaitsForItsPort: a port another socket took while the
// server was down delays the start instead of failing it.
func TestStartAgainWaitsForItsPort(t *testing.T) {
	srv := NewServer(t)
	srv.Stop(t, Fast)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(srv.Port()))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(time.Second)
		l.Close()
	}()
	start := time.Now()
	srv.StartAgain(t)
	if took := time.Since(start); took < time.Second {
		t.Fatalf("started in %v while the port was taken", took)
	}
	conn, err := pgx.Connect(t.Context(), srv.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())
}

func TestStopRemovesEverything(t *testing.T) {
	srv, err := newLocalServer()
	if err != nil {
		t.Fatal(err)
	}
	pid := srv.PID()
	if err := srv.close(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Errorf("postmaster %d still running after close", pid)
	}
	if _, err := os.Stat(srv.SocketDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s left behind: %v", srv.SocketDir(), err)
	}
	if err := srv.close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

func TestRunsAsPostgresUserWhenRoot(t *testing.T) {
	srv := Start(t)
	if srv.External() {
		t.Fatalf("test needs the local cluster; unset %s", EnvURL)
	}
	fi, err := os.Stat(srv.DataDir())
	if err != nil {
		t.Fatal(err)
	}
	uid := fi.Sys().(*syscall.Stat_t).Uid
	switch {
	case os.Geteuid() == 0 && uid == 0:
		t.Error("data directory owned by root; postgres refuses to run so")
	case os.Geteuid() != 0 && int(uid) != os.Geteuid():
		t.Errorf("data directory owned by uid %d, want %d", uid, os.Geteuid())
	}
}

func TestURL(t *testing.T) {
	tests := []struct {
		external, db, want string
	}{
		{"postgres://u:p@h:5433/base?sslmode=disable", "t_1", "postgres://u:p@h:5433/t_1?sslmode=disable"},
		{"postgresql://h/base", "t_2", "postgresql://h/t_2"},
		{"host=h port=5433 dbname=base", "t_3", "host=h port=5433 dbname=base dbname='t_3'"},
	}
	for _, tt := range tests {
		t.Run(tt.db, func(t *testing.T) {
			s := &Server{external: tt.external}
			if got := s.URL(tt.db); got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.db, got, tt.want)
			}
			cfg, err := pgx.ParseConfig(s.URL(tt.db))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Database != tt.db {
				t.Errorf("database %q, want %q", cfg.Database, tt.db)
			}
		})
	}
	local := &Server{port: 5999}
	cfg, err := pgx.ParseConfig(local.URL("t_x"))
	if err != nil || cfg.Port != 5999 || cfg.Database != "t_x" || cfg.Host != "127.0.0.1" {
		t.Errorf("local URL %s parsed as %+v, %v", local.URL("t_x"), cfg, err)
	}
}
