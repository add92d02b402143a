package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// defaultMemoryLimit is the Go runtime's soft memory limit when GOMEMLIMIT
// is not set. The job's live heap peaks near 70 MB whatever the account
// size; without a limit the heap and the memory freed but kept by the
// runtime creep up over a long run. 140 MiB holds a run of any size under
// ~175 MB of RSS at the speed 170 MiB gave (docs/performance.md); a lower
// limit starts to cost collector time.
const defaultMemoryLimit = 140 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		cancel(interrupted{s.(syscall.Signal)})
		signal.Stop(sigs) // a second signal kills the process the usual way
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	os.Exit(exitCode(ctx, err, os.Stderr))
}
