package cluster

// Status is what the control plane's GET /status answers: cluster.json with roles, PIDs and
// live fields current, plus what the endpoints and tools need to follow changes.
type Status struct {
	File
	// Version grows on every change of roles, health or membership; GET /status?wait=V
	// blocks until it differs from V (long poll).
	Version            uint64 `json:"version"`
	FailoverInProgress bool   `json:"failover_in_progress"`
}
