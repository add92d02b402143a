package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/klaviyo-etl/klaviyo-etl/load"
)

// Exit codes of the contract.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitLocked      = 3
	exitInterrupted = 128 // plus the signal number: 130 SIGINT, 143 SIGTERM
)

// usageError marks a usage or configuration mistake (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// interrupted is the cancellation cause set by main when a signal arrives.
type interrupted struct{ sig syscall.Signal }

func (i interrupted) Error() string { return "interrupted by " + i.sig.String() }

// errPrinted marks an error whose message was already reported.
var errPrinted = errors.New("reported")

func exitCode(ctx context.Context, err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var sig interrupted
	if errors.As(context.Cause(ctx), &sig) {
		fmt.Fprintf(stderr, "klaviyo-etl: %v; committed what was complete, the next run resumes\n", sig)
		return exitInterrupted + int(sig.sig)
	}
	if !errors.Is(err, errPrinted) {
		fmt.Fprintf(stderr, "klaviyo-etl: %v\n", err)
	}
	var ue usageError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, load.ErrLocked):
		return exitLocked
	default:
		return exitFailed
	}
}
