package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

const usageText = `klaviyo-etl exports every Klaviyo profile into Parquet or PostgreSQL, incrementally.

Usage:
  klaviyo-etl run       [flags]   export new and changed profiles (see: klaviyo-etl run -h)
  klaviyo-etl migrate   [flags]   apply pending PostgreSQL migrations
  klaviyo-etl state     [flags]   print the committed state as JSON
  klaviyo-etl simulate  [flags]   serve a simulated Klaviyo API on HTTP
  klaviyo-etl demo      [flags]   export a simulated account twice, to show the incremental step
  klaviyo-etl version             print version, commit and Go version
`

// run is the whole program: main only maps its error to an exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return usagef("no command given")
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "run":
		err = cmdRun(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		err = cmdMigrate(ctx, rest, getenv, stdout, stderr)
	case "state":
		err = cmdState(ctx, rest, getenv, stdout, stderr)
	case "simulate":
		err = cmdSimulate(ctx, rest, getenv, stdout, stderr)
	case "demo":
		err = cmdDemo(ctx, rest, getenv, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	default:
		fmt.Fprint(stderr, usageText)
		return usagef("unknown command %q", cmd)
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// newFlagSet returns a FlagSet whose parse errors are usage errors.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("klaviyo-etl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return nil
}

// envOr returns the environment variable's value, or def when it is unset.
func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
