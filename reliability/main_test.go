package reliability

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klaviyo-etl/klaviyo-etl/internal/pgtest"
)

var (
	longFlag   = flag.Bool("long", false, "run the long variants (also RELIABILITY_LONG=1)")
	reportFlag = flag.String("report", "", "append each case's figures as JSON lines to this file, and render them as Markdown next to it (also RELIABILITY_REPORT)")
)

// long reports whether the long variants run.
func long() bool {
	return *longFlag || os.Getenv("RELIABILITY_LONG") == "1"
}

// pick returns the short variant's value in CI and the long one on demand.
func pick[T any](short, long_ T) T {
	if long() {
		return long_
	}
	return short
}

func mode() string {
	if long() {
		return "long"
	}
	return "short"
}

func TestMain(m *testing.M) {
	flag.Parse()
	start := time.Now()
	pgtest.Main(m)
	removeBinary()
	if path := reportPath(); path != "" {
		if err := renderReport(path); err != nil {
			fmt.Fprintf(os.Stderr, "reliability: render report: %v\n", err)
		}
	}
	fmt.Fprintf(os.Stderr, "reliability: %s variants took %s\n", mode(), time.Since(start).Round(time.Second))
}

// The program under test: cmd/klaviyo-etl built once per test binary.
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// programPath builds cmd/klaviyo-etl on first use and returns its path.
// The binary is built with -race when the tests run with -race, so data
// races in the program fail the case that provoked them.
func programPath(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "reliability-bin-")
		if err != nil {
			binary.err = err
			return
		}
		// An unprivileged child (TestParquetOutputFailures) must reach it.
		if err := os.Chmod(dir, 0o755); err != nil {
			binary.err = err
			return
		}
		binary.dir = dir
		binary.path = filepath.Join(dir, "klaviyo-etl")
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goTool); err != nil {
			goTool = "go"
		}
		args := []string{"build", "-o", binary.path}
		if raceBuild {
			args = append(args, "-race")
		}
		args = append(args, "../cmd/klaviyo-etl")
		cmd := exec.Command(goTool, args...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
			return
		}
		fmt.Fprintf(os.Stderr, "reliability: built klaviyo-etl (race=%v) in %s\n", raceBuild, time.Since(start).Round(100*time.Millisecond))
	})
	if binary.err != nil {
		t.Fatalf("build the program: %v", binary.err)
	}
	return binary.path
}

func removeBinary() {
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
}
