package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
)

// importPath is this command's package, built again without DuckDB.
const importPath = "github.com/klaviyo-etl/klaviyo-etl/cmd/klaviyo-bench"

// leanBinary returns the binary that runs every child but DuckDB's: this
// one when it was built without DuckDB, else a copy built with -tags
// nobenchduckdb (the packages are in the build cache by then, so it only
// links). DuckDB, linked in, makes every process ~28 MB larger, which the
// pipeline's peak RSS must not be charged with. Without a Go toolchain or
// outside the module, it falls back to this binary and says so.
func (b *bench) leanBinary(ctx context.Context) string {
	if !hasDuckDB {
		return b.self
	}
	out := filepath.Join(b.tmp, "klaviyo-bench-lean")
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "nobenchduckdb", "-o", out, importPath)
	var msg bytes.Buffer
	cmd.Stdout, cmd.Stderr = &msg, &msg
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(b.stderr, "klaviyo-bench: building the binary without DuckDB failed (%v: %s); children run this binary, whose peak RSS includes DuckDB's ~28 MB\n",
			err, bytes.TrimSpace(msg.Bytes()))
		b.leanFailed = true
		return b.self
	}
	return out
}
