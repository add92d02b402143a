//go:build unix

package parquet

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/klaviyo-etl/klaviyo-etl/load"
)

// lockDir takes an exclusive flock on the directory itself, so the lock
// leaves no file behind and the kernel releases it when a crashed process's
// descriptor goes away.
func lockDir(dir string) (*os.File, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	for {
		err = syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = d.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", dir, load.ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return d, nil
}
