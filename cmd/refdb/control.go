package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/aurorabench/aurorabench/refdb/control"
	"github.com/aurorabench/aurorabench/refdb/endpoint"
)

// runControl is `refdb control --listen 127.0.0.1:3480 --dir D`.
func runControl(ctx context.Context, args []string, stderr io.Writer) error {
	err := control.Command(ctx, args, os.Stdout, stderr)
	if errors.Is(err, control.ErrUsage) {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return err
}

// runEndpoint is `refdb endpoint --writer-listen A --reader-listen B --control URL`.
func runEndpoint(ctx context.Context, args []string, stderr io.Writer) error {
	err := endpoint.Command(ctx, args, os.Stdout, stderr)
	if errors.Is(err, endpoint.ErrUsage) {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return err
}
