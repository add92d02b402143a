package pgtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// installHint is appended to every "no PostgreSQL" failure.
const installHint = "set TEST_DATABASE_URL to a server the tests may create databases on, " +
	"or install the PostgreSQL server binaries (Debian/Ubuntu: apt-get install postgresql; " +
	"Alpine: apk add postgresql; macOS: brew install postgresql)"

// binaries are the server programs of one PostgreSQL installation.
type binaries struct {
	dir      string
	initdb   string
	postgres string
	version  string // as `postgres --version` prints it
}

// findBinaries returns the first directory holding both initdb and postgres,
// trying pg_config --bindir, then /usr/lib/postgresql/<newest>/bin, then
// PATH.
func findBinaries() (binaries, error) {
	var dirs []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	dirs = append(dirs, debianBinDirs()...)
	for _, name := range []string{"postgres", "initdb"} {
		if p, err := exec.LookPath(name); err == nil {
			dirs = append(dirs, filepath.Dir(p))
			if real, err := filepath.EvalSymlinks(p); err == nil {
				dirs = append(dirs, filepath.Dir(real))
			}
		}
	}
	var tried []string
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		b := binaries{
			dir:      dir,
			initdb:   filepath.Join(dir, "initdb"),
			postgres: filepath.Join(dir, "postgres"),
		}
		if !executable(b.initdb) || !executable(b.postgres) {
			tried = append(tried, dir)
			continue
		}
		out, err := exec.Command(b.postgres, "--version").Output()
		if err != nil {
			tried = append(tried, dir)
			continue
		}
		b.version = strings.TrimSpace(string(out))
		return b, nil
	}
	return binaries{}, fmt.Errorf("no PostgreSQL server binaries (initdb and postgres) found (looked in pg_config --bindir, /usr/lib/postgresql/*/bin and PATH%s): %s",
		triedList(tried), installHint)
}

func triedList(dirs []string) string {
	if len(dirs) == 0 {
		return ""
	}
	return "; incomplete: " + strings.Join(dirs, ", ")
}

// debianBinDirs lists /usr/lib/postgresql/*/bin, newest major version first.
func debianBinDirs() []string {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	major := func(p string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(p)), 64)
		return v
	}
	sort.Slice(matches, func(i, j int) bool { return major(matches[i]) > major(matches[j]) })
	return matches
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// serverCredential returns the credential to run initdb and postgres with:
// nil when not root, else the postgres system user's, creating that user
// when it does not exist.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		out, uerr := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
			"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "postgres").CombinedOutput()
		if uerr != nil {
			return nil, fmt.Errorf("running as root, and postgres refuses root: useradd postgres: %w: %s", uerr, bytes.TrimSpace(out))
		}
		u, err = user.Lookup("postgres")
	}
	if err != nil {
		return nil, fmt.Errorf("look up user postgres: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of postgres %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of postgres %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}
