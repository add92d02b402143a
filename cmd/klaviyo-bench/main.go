package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	switch {
	case len(os.Args) == 3 && os.Args[1] == childFlag:
		// The same soft memory limit klaviyo-etl's main sets, so the
		// memory scenario measures the product as it runs.
		if os.Getenv("GOMEMLIMIT") == "" {
			debug.SetMemoryLimit(140 << 20) // cmd/klaviyo-etl's defaultMemoryLimit
		}
		code := childMain(ctx, os.Args[2], os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	case len(os.Args) == 4 && os.Args[1] == spawnFlag:
		code := spawnMain(ctx, os.Args[2], os.Args[3], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err))
}

// exitCode is 0 on success, 2 for a usage mistake and 1 otherwise; a
// target not met is not a failure of the command.
func exitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(os.Stderr, "klaviyo-bench: %v\n", err)
		return 2
	default:
		fmt.Fprintf(os.Stderr, "klaviyo-bench: %v\n", err)
		return 1
	}
}

// usageError marks a mistake in the flags (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }
