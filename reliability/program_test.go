package reliability

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
	"github.com/klaviyo-etl/klaviyo-etl/pipeline"
)

// runTimeout bounds every subprocess; a run still going then is killed and
// fails its test.
func runTimeout() time.Duration { return pick(3*time.Minute, 60*time.Minute) }

// spec is one invocation of the program.
type spec struct {
	args []string
	env  map[string]string
	// cred runs the program as another user (root tests of unwritable
	// folders).
	cred *syscall.Credential
	// sample, when set, is called with the program's RSS every
	// sampleEvery (default 50ms) while it runs.
	sample      func(rssKB int64)
	sampleEvery time.Duration
}

// result is what one invocation did.
type result struct {
	code   int            // exit code, -1 when killed by a signal
	signal syscall.Signal // the signal that killed it, 0 if it exited
	stdout string
	stderr string
	wall   time.Duration
	// maxRSSKB is the program's peak resident set size. The kernel's
	// ru_maxrss of a child starts at the parent's peak RSS when it execs
	// (exec records the high-water mark of the address space it replaces,
	// the parent's under vfork), so it is taken only when it exceeds the
	// test process's own peak (read after the program ended, so it is at
	// least the parent's RSS at exec); otherwise the peak is the highest
	// VmHWM sampled from /proc while the program ran.
	maxRSSKB int64
	// rusageKB and sampledKB are the two measurements maxRSSKB is chosen
	// from.
	rusageKB, sampledKB int64
	summary             *pipeline.Summary // the JSON summary line, if printed
}

// killed reports whether the process died of a signal.
func (r result) killed() bool { return r.signal != 0 }

// message is the program's final error line ("klaviyo-etl: …"), without
// the prefix.
func (r result) message() string {
	var last string
	for _, line := range strings.Split(r.stderr, "\n") {
		if s, ok := strings.CutPrefix(line, "klaviyo-etl: "); ok {
			last = s
		}
	}
	return last
}

func (r result) String() string {
	return "exit " + strconv.Itoa(r.code) + " after " + r.wall.Round(time.Millisecond).String() + ": " + tail(r.stderr, 1500)
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// proc is a running invocation.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	started        time.Time
	done           chan struct{}
	res            result
	stopSampling   chan struct{}
	samplerDone    sync.WaitGroup
	hwm            atomic.Int64
}

// start runs the program with sp; it never inherits the test's environment
// beyond PATH, HOME and TMPDIR.
func start(t testing.TB, sp spec) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{}), stopSampling: make(chan struct{})}
	cmd := exec.Command(programPath(t), sp.args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir(), "TMPDIR=" + os.TempDir(),
		// A data race in the program makes it exit 66.
		"GORACE=exitcode=66"}
	for k, v := range sp.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout = &p.stdout
	cmd.Stderr = &p.stderr
	if sp.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: sp.cred}
	}
	p.cmd = cmd
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the program: %v", err)
	}
	every := sp.sampleEvery
	if every <= 0 {
		every = 50 * time.Millisecond
	}
	p.samplerDone.Add(1)
	go func() {
		defer p.samplerDone.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-p.stopSampling:
				return
			case <-tick.C:
				pid := cmd.Process.Pid
				if kb, ok := procStatus(pid, "VmHWM"); ok && kb > p.hwm.Load() {
					p.hwm.Store(kb)
				}
				if sp.sample != nil {
					if kb, ok := procStatus(pid, "VmRSS"); ok {
						sp.sample(kb)
					}
				}
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		p.res.wall = time.Since(p.started)
		close(p.stopSampling)
		p.samplerDone.Wait()
		p.res.stdout, p.res.stderr = p.stdout.String(), p.stderr.String()
		st := cmd.ProcessState
		if st == nil {
			p.res.code = -1
			p.res.stderr += "\n(wait: " + err.Error() + ")"
		} else {
			p.res.code = st.ExitCode()
			if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				p.res.signal = ws.Signal()
			}
			if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
				p.res.rusageKB = ru.Maxrss // KiB on Linux
			}
		}
		p.res.sampledKB = p.hwm.Load()
		p.res.maxRSSKB = p.res.sampledKB
		if parentHWM, ok := procStatus(os.Getpid(), "VmHWM"); ok && p.res.rusageKB > parentHWM {
			p.res.maxRSSKB = p.res.rusageKB
		}
		p.res.summary = parseSummary(p.res.stdout)
		close(p.done)
	}()
	return p
}

// signal sends sig to the program (by its PID).
func (p *proc) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// exited reports whether the program has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait returns the result once the program ends; after runTimeout it is
// killed and the test fails.
func (p *proc) wait(t testing.TB) result {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(runTimeout() - time.Since(p.started)):
		p.signal(syscall.SIGKILL)
		<-p.done
		t.Fatalf("the program ran longer than %s and was killed: %s", runTimeout(), tail(p.res.stderr, 3000))
	}
	if p.res.code == 66 && strings.Contains(p.res.stderr, "WARNING: DATA RACE") {
		t.Errorf("data race in the program:\n%s", tail(p.res.stderr, 6000))
	}
	return p.res
}

// run runs the program to its end.
func run(t testing.TB, sp spec) result {
	t.Helper()
	return start(t, sp).wait(t)
}

// parseSummary decodes the run's JSON summary line from stdout.
func parseSummary(stdout string) *pipeline.Summary {
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var s pipeline.Summary
		if json.Unmarshal(line, &s) == nil && s.RunID != "" {
			return &s
		}
	}
	return nil
}

// procStatus reads a kB figure (VmRSS, VmHWM) of a process from /proc.
func procStatus(pid int, field string) (int64, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, err := strconv.ParseInt(f[0], 10, 64)
				return n, err == nil
			}
		}
	}
	return 0, false
}

// target is one output: a Parquet folder or a PostgreSQL database.
type target struct {
	sink string // "parquet" or "postgres"
	out  string // parquet folder
	url  string // postgres database URL
}

const pgSchema = "klaviyo"

// newTarget makes an empty output of the named sink for t.
func newTarget(t testing.TB, sink string) target {
	t.Helper()
	switch sink {
	case "parquet":
		return target{sink: sink, out: filepath.Join(t.TempDir(), "export")}
	case "postgres":
		return target{sink: sink, url: newDatabase(t)}
	}
	t.Fatalf("unknown sink %q", sink)
	return target{}
}

var sinks = []string{"parquet", "postgres"}

// args returns the run arguments for this target followed by extra.
func (tg target) args(extra ...string) []string {
	a := []string{"run", "--sink", tg.sink, "--log-format", "json", "--progress", "never"}
	if tg.sink == "parquet" {
		a = append(a, "--out", tg.out)
	} else {
		a = append(a, "--pg-schema", pgSchema)
	}
	return append(a, extra...)
}

// env returns the program's environment for the simulator and this target.
func (tg target) env(sim *klaviyosim.Server) map[string]string {
	env := map[string]string{"KLAVIYO_API_KEY": "pk_test", "KLAVIYO_BASE_URL": sim.URL()}
	if tg.url != "" {
		env["DATABASE_URL"] = tg.url
	}
	return env
}

// fastBudget lets the client send as fast as the simulator answers: the
// cases here are about failures, not about the rate budget.
var fastBudget = []string{"--rate-burst", "1000/1s", "--rate-steady", "60000/1m"}

// runUntilDone runs the program until it exits 0, waiting out a lock still
// held by a killed run's PostgreSQL backend (exit 3), at most a minute. It
// returns every result.
func runUntilDone(t testing.TB, sp spec) []result {
	t.Helper()
	var rs []result
	deadline := time.Now().Add(time.Minute)
	for {
		r := run(t, sp)
		rs = append(rs, r)
		if r.code != 3 || time.Now().After(deadline) {
			return rs
		}
		time.Sleep(500 * time.Millisecond)
	}
}
