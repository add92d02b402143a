package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/klaviyo-etl/klaviyo-etl/internal/pgtest"
)

// TestMain lets the test binary stand in for the klaviyo-etl binary, so the
// kill tests run the real program as a subprocess without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("KLAVIYO_ETL_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	pgtest.Main(m)
}

// result is what one in-process invocation of the program did.
type result struct {
	code           int
	stdout, stderr string
}

// invoke runs the program in-process as main would, with only env as its
// environment.
func invoke(t *testing.T, ctx context.Context, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string { return env[k] }
	err := run(ctx, args, getenv, &stdout, &stderr)
	code := exitCode(ctx, err, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// summaryOf decodes the run's JSON summary line from stdout.
func summaryOf(t *testing.T, r result) map[string]any {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if strings.HasPrefix(line, "{") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("summary line %q: %v", line, err)
			}
			return m
		}
	}
	t.Fatalf("no summary line in stdout %q (stderr %s)", r.stdout, r.stderr)
	return nil
}
