//go:build linux

package main

import (
	"os"
	"syscall"
)

// peakRSS is a finished child's peak resident set size in bytes
// (Rusage.Maxrss is in KiB on Linux).
func peakRSS(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss * 1024
	}
	return 0
}
