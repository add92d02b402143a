//go:build !unix

package parquet

import (
	"errors"
	"os"
)

func lockDir(dir string) (*os.File, error) {
	return nil, errors.New("the parquet sink needs flock, which this platform lacks")
}
