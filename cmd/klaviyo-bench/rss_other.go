//go:build !linux

package main

import (
	"os"
	"runtime"
	"syscall"
)

// peakRSS is a finished child's peak resident set size in bytes
// (Rusage.Maxrss is in bytes on macOS, KiB on the BSDs).
func peakRSS(ps *os.ProcessState) int64 {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss)
	}
	return int64(ru.Maxrss) * 1024
}

// ownHWM is unknown outside Linux.
func ownHWM() int64 { return 0 }
