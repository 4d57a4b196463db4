// Package checker turns a history into verdicts and numbers: Porcupine
// linearizability per key, bank and set invariants, and HDR-histogram
// statistics of latency, throughput and replica lag.
//
// A Checker is a pure function of the history, so `aurorabench check DIR`
// re-derives exactly what the run reported.
package checker

import (
	"context"

	"github.com/aurorabench/aurorabench/history"
)

// Input is what every checker sees.
type Input struct {
	Ops     []history.Op   // the whole history, in order
	Pairs   []history.Pair // client operations, invocation order
	Nemesis []history.Op   // fault events
	// Dir is the results folder: a checker may write artifacts there
	// (the Porcupine visualization). Empty = write nothing.
	Dir string
}

// NewInput builds an Input from a history.
func NewInput(ops []history.Op, dir string) *Input {
	pairs, nem := history.Pairs(ops)
	return &Input{Ops: ops, Pairs: pairs, Nemesis: nem, Dir: dir}
}

// Result is one checker's verdict.
type Result struct {
	Name  string `json:"name"`
	Valid bool   `json:"valid"`
	// Anomalies names what was found, one line each (empty when valid).
	Anomalies []string `json:"anomalies,omitempty"`
	// Numbers are the checker's measurements (counts, percentiles).
	Numbers map[string]any `json:"numbers,omitempty"`
	// Artifacts are files written into the results folder.
	Artifacts []string `json:"artifacts,omitempty"`
}

// Checker checks one property of a history.
type Checker interface {
	Name() string
	Check(ctx context.Context, in *Input) Result
}

// Percentiles summarise one measured quantity, in milliseconds.
type Percentiles struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min_ms"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}
