//go:build !linux

package main

import (
	"context"
	"errors"
)

type localPostgres struct{ version string }

func startPostgres(context.Context) (*localPostgres, error) {
	return nil, errors.New("starting a throwaway PostgreSQL needs Linux; pass -database-url")
}

func (p *localPostgres) URL() string { return "" }
func (p *localPostgres) stop() error { return nil }
