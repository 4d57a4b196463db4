//go:build !linux

package main

import "time"

// withTimerSlack is Linux-only (see timerslack_linux.go).
func withTimerSlack(time.Duration) error { return nil }
