//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// localPostgres is a throwaway cluster started from the machine's
// PostgreSQL binaries, as internal/pgtest starts one for the tests (same
// settings: trust authentication, UTF8, C locale, fsync, synchronous_commit
// and full_page_writes off). pgtest has no entry point for a program, only
// for tests, hence this copy of its essentials.
type localPostgres struct {
	dir     string
	port    int
	version string
	cmd     *exec.Cmd
	done    chan struct{}
}

// startPostgres initialises a cluster in a new temporary folder and starts
// it on a free port of 127.0.0.1, as the postgres user when running as
// root (the server refuses root).
func startPostgres(ctx context.Context) (*localPostgres, error) {
	bin, version, err := postgresBinaries()
	if err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, and PostgreSQL refuses root: %w (create a postgres user or pass -database-url)", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
	}
	dir, err := os.MkdirTemp("", "klaviyo-bench-pg-")
	if err != nil {
		return nil, err
	}
	p := &localPostgres{dir: dir, version: version, done: make(chan struct{})}
	if err := p.init(bin, cred); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := p.start(ctx, bin, cred); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

func (p *localPostgres) init(bin string, cred *syscall.Credential) error {
	if cred != nil {
		if err := os.Chown(p.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("chown %s to postgres: %w", p.dir, err)
		}
	}
	cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", filepath.Join(p.dir, "data"), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, bytes.TrimSpace(out))
	}
	return nil
}

func (p *localPostgres) start(ctx context.Context, bin string, cred *syscall.Credential) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("find a free port: %w", err)
	}
	p.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	logf, err := os.Create(filepath.Join(p.dir, "postgres.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	if cred != nil {
		os.Chown(logf.Name(), int(cred.Uid), int(cred.Gid))
	}
	p.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", filepath.Join(p.dir, "data"),
		"-p", strconv.Itoa(p.port), "-k", p.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_wal_size=4GB", "-c", "timezone=UTC")
	p.cmd.Dir = p.dir
	p.cmd.Env = append(os.Environ(), "LC_ALL=C")
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// Pdeathsig stops the server if the bench dies; it fires when the
	// thread that started the child exits, so that thread is held until
	// the server exits.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := p.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	dsn := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable connect_timeout=2", p.dir, p.port)
	for {
		conn, err := pgconn.Connect(wctx, dsn)
		if err == nil {
			conn.Close(wctx)
			return nil
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("postgres exited before accepting connections:\n%s", bytes.TrimSpace(b))
		case <-wctx.Done():
			p.stop()
			return fmt.Errorf("postgres did not accept connections: %w", err)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// URL is the postgres database's connection URL.
func (p *localPostgres) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// stop shuts the server down (fast shutdown, by the PID this process
// started) and removes its folder.
func (p *localPostgres) stop() error {
	var err error
	if p.cmd != nil && p.cmd.Process != nil {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-p.done:
			case <-time.After(time.Minute):
				p.cmd.Process.Kill()
				<-p.done
				err = errors.New("postgres ignored a fast shutdown for a minute; killed")
			}
		}
	}
	if rerr := os.RemoveAll(p.dir); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// postgresBinaries finds the folder holding initdb and postgres, as pgtest
// does: pg_config --bindir, /usr/lib/postgresql/<newest>/bin, PATH.
func postgresBinaries() (dir, version string, err error) {
	var dirs []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	deb, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	major := func(p string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(p)), 64)
		return v
	}
	sort.Slice(deb, func(i, j int) bool { return major(deb[i]) > major(deb[j]) })
	dirs = append(dirs, deb...)
	if p, err := exec.LookPath("postgres"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			continue
		}
		out, err := exec.Command(filepath.Join(d, "postgres"), "--version").Output()
		if err != nil {
			continue
		}
		return d, strings.TrimSpace(string(out)), nil
	}
	return "", "", errors.New("no PostgreSQL server binaries (initdb, postgres) found; install them or pass -database-url")
}
