package main

import (
	"time"

	"github.com/aurorabench/aurorabench/chaos"
	"github.com/aurorabench/aurorabench/runner"
	"github.com/aurorabench/aurorabench/targets"
)

func nemesisNames() []string { return chaos.Names() }

// nemesisSchedule is set from --nemesis-interval / --nemesis-duration.
var nemesisSchedule = chaos.Schedule{Interval: 10 * time.Second, Duration: 5 * time.Second}

func newNemesis(name string, t targets.Target, seed int64) (runner.Nemesis, error) {
	s := nemesisSchedule
	s.Seed = seed
	n, err := chaos.New(name, t, s)
	if err != nil || n == nil {
		return nil, err
	}
	return n, nil
}
