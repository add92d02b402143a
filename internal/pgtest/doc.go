// Package pgtest gives tests a real PostgreSQL server.
//
// When TEST_DATABASE_URL is set, tests use that server. Otherwise the first
// test that asks for a database starts a throwaway cluster from the
// machine's own binaries (initdb and postgres, found through pg_config
// --bindir, /usr/lib/postgresql/*/bin and PATH) in a temporary directory,
// listening on 127.0.0.1 at a free port and on a unix socket inside that
// directory, with fsync off (commits still reach the OS before they are
// acknowledged, so a killed server loses nothing it committed). One cluster
// serves every test of a test binary; it is stopped and its directory
// removed when the binary's tests end.
// postgres refuses to run as root, so as root the cluster runs as the
// postgres system user (created with useradd when missing).
//
// A package opts in with a TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		url := pgtest.NewDatabase(t) // CREATE DATABASE t_<random>, dropped at cleanup
//		conn, err := pgx.Connect(t.Context(), url)
//		...
//	}
//
// Tests that break the server on purpose (restart it, kill it) take a
// private cluster with NewServer, so the package's other tests are not
// disturbed.
//
// Without a PostgreSQL server every test that asks for one fails with a
// message telling how to install one; nothing is skipped, in CI or not.
//
// The package only ever signals the postgres processes it started, by PID
// (the postmaster runs in its own process group, and gets SIGQUIT from the
// kernel if the test binary dies without stopping it).
package pgtest
