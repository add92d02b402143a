package reliability

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
	"github.com/klaviyo-etl/klaviyo-etl/internal/e2etest"
	"github.com/klaviyo-etl/klaviyo-etl/load/parquet"
)

// unprivileged returns the credential to run the program with so that
// file permissions apply to it: nobody's when the tests run as root (root
// ignores them), nil otherwise.
func unprivileged(t testing.TB) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	uid, gid := 65534, 65534
	if u, err := user.Lookup("nobody"); err == nil {
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
}

// outputDir makes an empty folder the program (as cred) may write into.
func outputDir(t testing.TB, cred *syscall.Credential) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "reliability-out-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
		os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// committedFiles is the number of committed profiles files, -1 while the
// state file cannot be read.
func committedFiles(dir string) int {
	files, err := parquet.LiveFiles(dir)
	if err != nil {
		return -1
	}
	return len(files["profiles"])
}

// checkIntact checks a Parquet output after a failed run: the state file
// reads, lists only files that exist, and they hold an exact subset of the
// data set, once each. Leftover temporary files (.tmp-*) are reported: the
// next run's start removes them.
func checkIntact(t testing.TB, tg target, want []klaviyosim.Profile) (tally, []string) {
	t.Helper()
	if _, err := parquet.ReadState(tg.out); err != nil {
		t.Fatalf("state file after the failure: %v", err)
	}
	var left []string
	for _, d := range parquetDebris(t, tg.out) {
		if strings.HasPrefix(filepath.Base(d), ".tmp-") {
			left = append(left, d)
			continue
		}
		t.Errorf("after the failure: %s", d)
	}
	tl := e2etest.Compare(e2etest.ReadParquetProfiles(t, tg.out), want, true)
	if tl.Duplicates+tl.Differ+tl.Unexpected > 0 {
		t.Errorf("committed rows after the failure: %v", tl)
	}
	return tl, left
}

// TestParquetOutputFailures makes the output folder unwritable or full
// while a run writes into it: the run must fail with exit 1 and a clear
// message, leave the state file and the files it lists intact, and the
// next run (once the folder is usable again) must complete the export with
// no debris left. Unwritable is a permission change (the program runs as
// nobody when the tests run as root); full is RLIMIT_FSIZE lowered on the
// running program (writes fail with EFBIG) and, in the long variant, a real
// ENOSPC on a small tmpfs (needs root).
func TestParquetOutputFailures(t *testing.T) {
	t.Parallel()
	type fsCase struct {
		name, desc string
		// mid says whether the fault waits for a first committed file.
		mid bool
		// asSelf runs the program as the test's user even as root: a root
		// without CAP_SYS_RESOURCE may only prlimit its own uid's processes.
		asSelf  bool
		prepare func(t *testing.T, out string) // before the run
		hit     func(t *testing.T, out string, pr *proc)
		undo    func(t *testing.T, out string)
		message string
	}
	chmod := func(path string, mode os.FileMode) func(t *testing.T, out string) {
		return func(t *testing.T, out string) {
			if err := os.Chmod(filepath.Join(out, path), mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []fsCase{
		{name: "unwritable-from-start", desc: "output folder unwritable before the run",
			prepare: func(t *testing.T, out string) {
				// The folder does not exist yet and cannot be created.
				os.Remove(out)
				chmod("..", 0o555)(t, out)
			},
			undo: func(t *testing.T, out string) { chmod("..", 0o755)(t, out) }, message: "permission denied"},
		{name: "unwritable-table-folder", desc: "profiles/ made read-only mid-run", mid: true,
			hit:  func(t *testing.T, out string, pr *proc) { chmod("profiles", 0o555)(t, out) },
			undo: chmod("profiles", 0o755), message: "permission denied"},
		{name: "unwritable-output-folder", desc: "output folder (where _state.json is replaced) made read-only mid-run", mid: true,
			hit:  func(t *testing.T, out string, pr *proc) { chmod(".", 0o555)(t, out) },
			undo: chmod(".", 0o755), message: "permission denied"},
		{name: "full-fsize", desc: "disk full: RLIMIT_FSIZE 16 KiB set on the running program (EFBIG)", mid: true, asSelf: true,
			hit: func(t *testing.T, out string, pr *proc) {
				lim := unix.Rlimit{Cur: 16 << 10, Max: unix.RLIM_INFINITY}
				if err := unix.Prlimit(pr.cmd.Process.Pid, unix.RLIMIT_FSIZE, &lim, nil); err != nil {
					t.Fatalf("prlimit: %v", err)
				}
			},
			message: "file too large"},
	}
	if long() {
		cases = append(cases, fsCase{name: "full-tmpfs", desc: "disk full: the output on a 2 MiB tmpfs (ENOSPC)", mid: true,
			prepare: func(t *testing.T, out string) {
				if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m,mode=0777", "tmpfs", out).CombinedOutput(); err != nil {
					t.Fatalf("mounting a tmpfs needs root: %v: %s", err, out)
				}
				t.Cleanup(func() { exec.Command("umount", out).Run() })
			},
			undo: func(t *testing.T, out string) {
				if out, err := exec.Command("mount", "-o", "remount,size=256m", out).CombinedOutput(); err != nil {
					t.Fatalf("grow the tmpfs: %v: %s", err, out)
				}
			},
			message: "no space left on device"})
	}
	p := pick(struct{ profiles int }{6000}, struct{ profiles int }{50000})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cred := unprivileged(t)
			if c.asSelf {
				cred = nil
			}
			parent := outputDir(t, cred)
			out := filepath.Join(parent, "export")
			if err := os.Mkdir(out, 0o755); err != nil {
				t.Fatal(err)
			}
			if cred != nil {
				os.Chown(out, int(cred.Uid), int(cred.Gid))
			}
			if c.prepare != nil {
				c.prepare(t, out)
			}
			tg := target{sink: "parquet", out: out}
			sim := newSim(t, klaviyosim.Config{Profiles: p.profiles, Seed: 41, Latency: 30 * time.Millisecond, Jitter: 0.5,
				Unlimited: true, DisableGzip: true})
			want := sim.Profiles()
			sp := spec{args: tg.args(append([]string{"--concurrency", "2", "--page-size", "50", "--checkpoint-rows", "500",
				"--log-level", "warn"}, fastBudget...)...), env: tg.env(sim), cred: cred}
			pr := start(t, sp)
			if c.mid {
				e2etest.WaitFor(t, 2*time.Minute, "a committed file", func() bool { return committedFiles(out) > 0 || pr.exited() })
				if pr.exited() {
					t.Fatalf("the run ended before the fault: %v", pr.wait(t))
				}
			}
			if c.hit != nil {
				c.hit(t, out, pr)
			}
			first := pr.wait(t)
			if first.code != 1 {
				t.Fatalf("run on a broken output folder: %v, want exit 1", first)
			}
			msg := first.message()
			if !strings.Contains(strings.ToLower(msg), c.message) {
				t.Errorf("message %q does not say %q", msg, c.message)
			}
			var committed tally
			var left []string
			if c.name != "unwritable-from-start" {
				committed, left = checkIntact(t, tg, want)
			}
			if c.undo != nil {
				c.undo(t, out)
			}
			next := run(t, sp)
			if next.code != 0 {
				t.Fatalf("the run after the folder was fixed: %v", next)
			}
			tl := checkExact(t, tg, want)
			extra := fmt.Sprintf("%d profiles committed before the failure stayed readable", committed.Got)
			if len(left) > 0 {
				extra += fmt.Sprintf("; %d temporary file(s) left until the next start removed them", len(left))
			}
			record(t, figure{Case: c.desc + fmt.Sprintf(", %d profiles", p.profiles), Sink: "parquet", Runs: 2,
				Outcome: fmt.Sprintf("exit 1 (%s), state intact; rerun exact, no debris", clip(msg, 160)),
				Lost:    tl.Lost, Dups: tl.Duplicates, Retries: retriesOf(first, next), PeakRSS: peakRSS(first, next),
				Seconds: wallOf(first, next).Seconds(), Extra: extra})
		})
	}
}
