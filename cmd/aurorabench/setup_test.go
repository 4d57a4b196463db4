package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aurorabench/aurorabench/workloads"
)

// setupOnly is a workload whose Setup fails with err; nothing else of it is used.
type setupOnly struct {
	workloads.Workload
	err   error
	calls int
}

func (s *setupOnly) Name() string { return "setup-only" }

func (s *setupOnly) Setup(context.Context, *workloads.Env) error {
	s.calls++
	return s.err
}

// A workload that cannot run with its settings fails at once (the lag workload with too few
// workers for its pollers was retried for a minute); a failure that may pass is retried.
func TestSetupRetryStopsOnConfigError(t *testing.T) {
	bad := &setupOnly{err: &workloads.ConfigError{Err: errors.New("needs more workers")}}
	if err := setupWithRetry(context.Background(), bad, &workloads.Env{}); err == nil || bad.calls != 1 {
		t.Fatalf("config error: %v after %d attempts, want it after 1", err, bad.calls)
	}
	flaky := &setupOnly{err: errors.New("connection refused")}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	if err := setupWithRetry(ctx, flaky, &workloads.Env{}); err == nil || flaky.calls < 2 {
		t.Fatalf("transient error: %v after %d attempts, want a retry", err, flaky.calls)
	}
}
