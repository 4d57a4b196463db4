// Package report writes a run's results folder: summary.json, report.html
// (self-contained, inline SVG plots) and HdrHistogram .hlog files.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aurorabench/aurorabench/checker"
)

// Summary is summary.json: the machine-readable outcome of a run. Its
// "valid" field is the contract CI jobs gate on.
type Summary struct {
	Valid    bool   `json:"valid"`
	Target   string `json:"target"`
	Workload string `json:"workload"`
	Nemesis  string `json:"nemesis"`
	// Config echoes the run's settings (concurrency, rate, seed, time...).
	Config map[string]any `json:"config,omitempty"`
	// Started is RFC 3339; Duration the measured span in seconds.
	Started  string  `json:"started,omitempty"`
	Duration float64 `json:"duration_s"`
	// Checks holds every checker's verdict and numbers, by checker name.
	Checks map[string]checker.Result `json:"checks"`
	// Line is the one-line summary printed last.
	Line string `json:"line"`
	// TargetLag is the replica lag the target measured itself (refdb: Aurora's measure),
	// read from it at the end of the run; empty for targets that do not measure it.
	TargetLag []TargetLag `json:"target_lag,omitempty"`
}

// TargetLag is one replica's own lag distribution, in milliseconds, over what the replica
// applied since it started.
type TargetLag struct {
	Replica string  `json:"replica"`
	Count   int64   `json:"count"`
	P50     float64 `json:"p50_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
}

// SummaryFile is the name of the summary inside a results folder.
const SummaryFile = "summary.json"

// WriteSummary writes dir/summary.json.
func WriteSummary(dir string, s *Summary) error {
	return writeJSON(filepath.Join(dir, SummaryFile), "summary", s)
}

// writeJSON writes v as indented JSON to path; what names it in errors.
func writeJSON(path, what string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", what, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	return nil
}

// ReadSummary reads dir/summary.json.
func ReadSummary(dir string) (*Summary, error) {
	b, err := os.ReadFile(filepath.Join(dir, SummaryFile))
	if err != nil {
		return nil, fmt.Errorf("read summary: %w", err)
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse %s: %w", filepath.Join(dir, SummaryFile), err)
	}
	return &s, nil
}
