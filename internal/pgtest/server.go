package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// ShutdownMode is how Stop and Restart bring the server down.
type ShutdownMode int

const (
	// Fast rolls back open transactions, disconnects every client,
	// checkpoints and exits (SIGINT).
	Fast ShutdownMode = iota
	// Immediate exits at once without a checkpoint (SIGQUIT); the next
	// start runs crash recovery, as after a power loss.
	Immediate
)

func (m ShutdownMode) String() string {
	if m == Immediate {
		return "immediate"
	}
	return "fast"
}

// readyTimeout bounds how long a starting server may take to accept
// connections; crash recovery after an Immediate stop is included.
const readyTimeout = 60 * time.Second

// stopTimeout bounds a shutdown before the process group is killed.
const stopTimeout = 60 * time.Second

// Server is one PostgreSQL server: a local cluster this package started, or
// the server of TEST_DATABASE_URL.
type Server struct {
	external string // TEST_DATABASE_URL, empty for a local cluster

	bin     binaries
	cred    *syscall.Credential
	dir     string // temporary directory: socket, log, data/
	dataDir string
	port    int

	mu   sync.Mutex
	proc *process
}

// process is one run of the postmaster.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the postmaster has exited and been reaped
	err  error         // cmd.Wait's result, set before done closes
}

// External reports whether the server is TEST_DATABASE_URL's, which this
// package can neither stop nor restart.
func (s *Server) External() bool { return s.external != "" }

// DataDir is the cluster's data directory ("" for an external server).
func (s *Server) DataDir() string { return s.dataDir }

// SocketDir is the directory holding the server's unix socket ("" for an
// external server).
func (s *Server) SocketDir() string { return s.dir }

// Port is the TCP port the server listens on (127.0.0.1 for a local
// cluster).
func (s *Server) Port() int {
	if s.External() {
		cfg, err := pgconn.ParseConfig(s.external)
		if err != nil {
			return 0
		}
		return int(cfg.Port)
	}
	return s.port
}

// PID is the postmaster's process id, 0 when it is stopped or external.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// Version is what `postgres --version` printed ("" for an external server).
func (s *Server) Version() string { return s.bin.version }

// URL is the connection URL of database db on the server.
func (s *Server) URL(db string) string {
	if !s.External() {
		return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, url.PathEscape(db))
	}
	if strings.HasPrefix(s.external, "postgres://") || strings.HasPrefix(s.external, "postgresql://") {
		u, err := url.Parse(s.external)
		if err == nil {
			u.Path = "/" + db
			u.RawPath = ""
			return u.String()
		}
	}
	// Keyword/value form: a later dbname overrides an earlier one.
	return s.external + " dbname='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(db) + "'"
}

// adminURL is where databases are created and dropped from.
func (s *Server) adminURL() string {
	if s.External() {
		return s.external
	}
	return s.URL("postgres")
}

// newLocalServer initialises and starts a cluster in a new temporary
// directory.
func newLocalServer() (*Server, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	sweepStale()
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	s := &Server{bin: bin, cred: cred, dir: dir, dataDir: filepath.Join(dir, "data")}
	if err := s.initdb(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.startFreePort(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// initdb creates the cluster: trust authentication for user postgres,
// UTF8, C locale, no fsync.
func (s *Server) initdb() error {
	// The owner file lets a later test binary remove this directory if this
	// one dies without cleaning up (see sweepStale).
	if err := os.WriteFile(filepath.Join(s.dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("write owner file: %w", err)
	}
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return fmt.Errorf("chown %s to postgres: %w", s.dir, err)
		}
	}
	cmd := exec.Command(s.bin.initdb, "-D", s.dataDir, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb (%s): %w\n%s", s.bin.version, err, bytes.TrimSpace(out))
	}
	return nil
}

// startFreePort starts the server on a free port, trying again when another
// process takes the port between the probe and the bind.
func (s *Server) startFreePort() error {
	var err error
	for range 5 {
		s.port, err = freePort()
		if err != nil {
			return err
		}
		err = s.start()
		if err == nil || !errors.Is(err, errPortTaken) {
			return err
		}
	}
	return err
}

var errPortTaken = errors.New("port taken")

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start launches the postmaster on s.port and waits until it accepts
// connections.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("server already running")
	}
	logPath := filepath.Join(s.dir, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	logStart, _ := logf.Seek(0, 2)
	cmd := exec.Command(s.bin.postgres,
		"-D", s.dataDir,
		"-p", strconv.Itoa(s.port),
		"-k", s.dir,
		"-c", "listen_addresses=127.0.0.1",
		// Speed without lying to crash tests: fsync=off only loses data if
		// the machine itself goes down, while a killed server (Immediate)
		// keeps every commit it acknowledged. synchronous_commit=off would
		// not: it acknowledges commits before their WAL leaves the server.
		"-c", "fsync=off",
		"-c", "full_page_writes=off",
		"-c", "max_wal_size=4GB",
		"-c", "max_connections=200",
		"-c", "timezone=UTC",
	)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: s.cred,
		// Own process group: a terminal's ^C reaches the test binary, which
		// stops the server in order, and a stuck server can be killed with
		// its backends as one group.
		Setpgid: true,
		// If the test binary dies without stopping the server (a panic in a
		// test, a timeout), the kernel tells the postmaster to shut down
		// immediately.
		Pdeathsig: syscall.SIGQUIT,
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked the child exits, not
		// the process; holding this thread until the postmaster exits keeps
		// the signal for the process's death only.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	err = <-started
	logf.Close()
	if err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	if err := s.waitReady(p); err != nil {
		if !isDone(p) {
			s.kill(p)
		}
		tail := logTail(logPath, logStart)
		if strings.Contains(tail, "could not bind") || strings.Contains(tail, "Address already in use") {
			return fmt.Errorf("%w: %d", errPortTaken, s.port)
		}
		return fmt.Errorf("%w; server log:\n%s", err, tail)
	}
	s.proc = p
	return nil
}

// waitReady polls the unix socket until the server accepts a connection.
func (s *Server) waitReady(p *process) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	dsn := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable connect_timeout=2", s.dir, s.port)
	for {
		conn, err := pgconn.Connect(ctx, dsn)
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("postgres exited before accepting connections: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("postgres did not accept connections within %s: %w", readyTimeout, err)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func isDone(p *process) bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop brings the postmaster down by signalling its PID, escalating to
// SIGKILL of its process group if it does not exit in time.
func (s *Server) stop(mode ShutdownMode) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	sig := syscall.SIGINT
	if mode == Immediate {
		sig = syscall.SIGQUIT
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !isDone(p) {
		return fmt.Errorf("signal postgres (pid %d): %w", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
		s.kill(p)
		return fmt.Errorf("postgres (pid %d) ignored %s shutdown for %s; killed", p.cmd.Process.Pid, mode, stopTimeout)
	}
}

// kill SIGKILLs the postmaster's process group while the postmaster is
// still unreaped, so the group id cannot have been reused.
func (s *Server) kill(p *process) {
	if !isDone(p) {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.done
}

// StartLocal starts a throwaway cluster as the tests get one, for a program
// that is not a test (the benchmark command): the caller owns it and ends
// it with Close.
func StartLocal() (*Server, error) { return newLocalServer() }

// Close stops a server from StartLocal (fast shutdown) and removes its
// directory.
func (s *Server) Close() error { return s.close() }

// close stops the server and removes its directory.
func (s *Server) close() error {
	if s.External() {
		return nil
	}
	err := s.stop(Fast)
	if rerr := os.RemoveAll(s.dir); rerr != nil && err == nil {
		err = fmt.Errorf("remove %s: %w", s.dir, rerr)
	}
	return err
}

// Stop shuts the server down; connections to it fail until StartAgain.
// It fails the test for an external server.
func (s *Server) Stop(tb testing.TB, mode ShutdownMode) {
	tb.Helper()
	if s.External() {
		tb.Fatalf("pgtest: cannot stop the server of TEST_DATABASE_URL; take a private one with pgtest.NewServer")
	}
	if err := s.stop(mode); err != nil {
		tb.Fatalf("pgtest: %s stop: %v", mode, err)
	}
}

// StartAgain starts a stopped server on the same port and data directory.
func (s *Server) StartAgain(tb testing.TB) {
	tb.Helper()
	if s.External() {
		tb.Fatalf("pgtest: cannot start the server of TEST_DATABASE_URL")
	}
	// Connections from other tests may take the port as their own while
	// the server is down; they seldom keep it long.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.start()
		if err == nil {
			return
		}
		if !errors.Is(err, errPortTaken) || time.Now().After(deadline) {
			tb.Fatalf("pgtest: start again on port %d: %v", s.port, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Restart stops the server with mode and starts it again on the same port.
// Every connection to it is broken.
func (s *Server) Restart(tb testing.TB, mode ShutdownMode) {
	tb.Helper()
	s.Stop(tb, mode)
	s.StartAgain(tb)
}

// logTail returns what the server logged since offset, at most the last
// 4 KiB of it.
func logTail(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if offset < int64(len(b)) {
		b = b[offset:]
	}
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(bytes.TrimSpace(b))
}

// sweepStale removes the directories of clusters whose test binary and
// postmaster are both gone (a binary that died before cleaning up). It
// never signals anything.
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgtest-*"))
	for _, dir := range dirs {
		if alive(pidFile(filepath.Join(dir, "owner"))) {
			continue
		}
		if alive(pidFile(filepath.Join(dir, "data", "postmaster.pid"))) {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "owner")); err != nil {
			continue // not ours, or still being created
		}
		os.RemoveAll(dir)
	}
}

// pidFile reads the PID on the first line of path, 0 if there is none.
func pidFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// alive reports whether pid may be a running process. Signal 0 only
// checks; anything but "no such process" counts as alive.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
