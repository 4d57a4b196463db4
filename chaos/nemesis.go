// Package chaos injects faults into a running target: it kills, pauses and
// restarts nodes on a schedule and records each fault's start and end into
// the history, so checkers and reports can line anomalies and latency up
// with what the cluster was going through.
//
// A nemesis is named "<action>-<selector>" (kill-writer, pause-storage,
// kill-az-az1, pause-minority...) or "failover" (a planned failover), and
// several can be combined with commas: each interval one is picked at
// random from the seed. Every fault is healed before the run's final reads.
package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/aurorabench/aurorabench/history"
	"github.com/aurorabench/aurorabench/targets"
)

// Actions a fault can take on its nodes.
var actions = map[string]string{
	"kill":  "SIGKILL, then restart after the fault duration (a killed writer is replaced by failover first)",
	"pause": "SIGSTOP, then SIGCONT after the fault duration",
}

// Selectors choose the nodes a fault acts on.
var selectors = map[string]string{
	"writer":   "the current writer",
	"reader":   "one random reader (replica)",
	"storage":  "one random storage node",
	"random":   "one random node of any kind",
	"minority": "a random minority of all nodes ((n-1)/2 of them)",
	"all":      "every node at once (storage and instances): a power failure of the whole cluster",
	"az-NAME":  "every node in availability zone NAME (e.g. az-az1)",
}

// Names lists the nemesis names for --help ("none" first).
func Names() []string {
	ns := []string{"none", "failover"}
	var rest []string
	for a := range actions {
		for s := range selectors {
			rest = append(rest, a+"-"+s)
		}
	}
	sort.Strings(rest)
	return append(ns, rest...)
}

// Schedule says when faults happen.
type Schedule struct {
	Interval time.Duration // between the end of one fault and the start of the next
	Duration time.Duration // how long a fault lasts
	Seed     int64
}

// spec is one parsed nemesis name.
type spec struct {
	name, action, selector string
}

func parse(name string) (spec, error) {
	if name == "failover" {
		return spec{name: name, action: "failover"}, nil
	}
	action, sel, ok := strings.Cut(name, "-")
	if !ok {
		return spec{}, fmt.Errorf("unknown nemesis %q", name)
	}
	if _, ok := actions[action]; !ok {
		return spec{}, fmt.Errorf("unknown nemesis %q: action must be kill or pause", name)
	}
	if _, ok := selectors[sel]; !ok && !(strings.HasPrefix(sel, "az-") && len(sel) > 3) {
		return spec{}, fmt.Errorf("unknown nemesis %q: selector must be writer, reader, storage, random, minority, all or az-NAME", name)
	}
	return spec{name: name, action: action, selector: sel}, nil
}

// Nemesis injects a mix of faults on a schedule. It implements
// runner.Nemesis.
type Nemesis struct {
	specs    []spec
	target   targets.Target
	schedule Schedule
	rng      *rand.Rand
}

// New parses a comma-separated list of nemesis names and returns nil for
// "none". With a nil target it only validates the names.
func New(names string, t targets.Target, s Schedule) (*Nemesis, error) {
	if names == "none" || names == "" {
		return nil, nil
	}
	var specs []spec
	for _, n := range strings.Split(names, ",") {
		sp, err := parse(strings.TrimSpace(n))
		if err != nil {
			return nil, fmt.Errorf("%w (known: %s)", err, strings.Join(Names(), ", "))
		}
		specs = append(specs, sp)
	}
	if s.Interval <= 0 || s.Duration <= 0 {
		return nil, fmt.Errorf("nemesis interval and duration must be positive")
	}
	if t != nil && len(t.Nodes()) == 0 {
		return nil, fmt.Errorf("nemesis %s needs a local target with processes to act on (%s has none)", names, t.Name())
	}
	return &Nemesis{specs: specs, target: t, schedule: s, rng: rand.New(rand.NewPCG(uint64(s.Seed), 99))}, nil
}

// Run injects faults until ctx ends, then heals and returns.
func (n *Nemesis) Run(ctx context.Context, clock func() int64, rec func(history.Op)) error {
	var firstErr error
	for sleep(ctx, n.schedule.Interval) {
		sp := n.specs[n.rng.IntN(len(n.specs))]
		if err := n.inject(ctx, sp, clock, rec); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// healCtx outlives the run's context: a fault is always healed before the
// final reads, even when the run ended mid-fault.
func healCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Minute)
}

// pick returns the nodes a selector chooses right now.
func (n *Nemesis) pick(sel string) []targets.Node {
	nodes := n.target.Nodes()
	one := func(ns []targets.Node) []targets.Node {
		if len(ns) == 0 {
			return nil
		}
		return []targets.Node{ns[n.rng.IntN(len(ns))]}
	}
	byRole := func(r targets.Role) []targets.Node {
		var out []targets.Node
		for _, x := range nodes {
			if x.Role() == r {
				out = append(out, x)
			}
		}
		return out
	}
	switch {
	case sel == "writer":
		if w := targets.Writer(n.target); w != nil {
			return []targets.Node{w}
		}
		return nil
	case sel == "reader":
		return one(byRole(targets.RoleReader))
	case sel == "storage":
		return one(byRole(targets.RoleStorage))
	case sel == "random":
		return one(nodes)
	case sel == "all":
		return nodes
	case sel == "minority":
		perm := n.rng.Perm(len(nodes))
		k := (len(nodes) - 1) / 2
		out := make([]targets.Node, 0, k)
		for _, i := range perm[:k] {
			out = append(out, nodes[i])
		}
		return out
	case strings.HasPrefix(sel, "az-"):
		var out []targets.Node
		for _, x := range nodes {
			if x.AZ() == sel[3:] {
				out = append(out, x)
			}
		}
		return out
	}
	return nil
}

func (n *Nemesis) inject(ctx context.Context, sp spec, clock func() int64, rec func(history.Op)) error {
	event := func(f, node string, v any, err error) {
		op := history.Op{F: f, Type: history.Info, Time: clock(), Node: node}
		if v != nil {
			op.Value = history.Marshal(v)
		}
		if err != nil {
			op.Error = err.Error()
		}
		rec(op)
	}
	if sp.action == "failover" {
		t0 := time.Now()
		event("start-failover", "", map[string]any{"fault": "planned failover", "role": "writer"}, nil)
		err := n.target.Failover(ctx)
		event("stop-failover", "", map[string]any{"seconds": time.Since(t0).Seconds()}, err)
		return err
	}
	nodes := n.pick(sp.selector)
	if len(nodes) == 0 {
		event("skip-"+sp.action, "", map[string]any{"fault": sp.name, "reason": "no node matches " + sp.selector}, nil)
		return nil
	}
	ids := make([]string, len(nodes))
	roles := make([]string, len(nodes))
	hitWriter := false
	for i, x := range nodes {
		ids[i], roles[i] = x.ID(), string(x.Role())
		hitWriter = hitWriter || x.Role() == targets.RoleWriter
	}
	label := strings.Join(ids, ",")
	desc := map[string]any{"fault": sp.name, "nodes": ids, "roles": roles}
	if hitWriter {
		desc["role"] = "writer" // the failover-time checker keys on this
	}
	var firstErr error
	note := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	var done []targets.Node
	for _, x := range nodes {
		var err error
		if sp.action == "kill" {
			err = x.Kill(ctx)
		} else {
			err = x.Pause(ctx)
		}
		note(err)
		if err == nil {
			done = append(done, x)
		}
	}
	event("start-"+sp.action, label, desc, firstErr)
	// Failover runs alongside the fault, not before the heal: when the same fault also
	// took out more storage than the quorum model allows, failover can only finish once
	// the heal brings storage back, and waiting for it first would stretch the outage.
	failoverDone := make(chan error, 1)
	if sp.action == "kill" && hitWriter && len(done) > 0 {
		go func() {
			t0 := time.Now()
			err := n.target.Failover(ctx)
			event("failover", "", map[string]any{"seconds": time.Since(t0).Seconds()}, err)
			failoverDone <- err
		}()
	} else {
		failoverDone <- nil
	}
	sleep(ctx, n.schedule.Duration)
	hctx, cancel := healCtx()
	defer cancel()
	var healErr error
	for _, x := range done {
		var err error
		if sp.action == "kill" {
			err = x.Start(hctx)
		} else {
			err = x.Resume(hctx)
		}
		if err != nil && healErr == nil {
			healErr = fmt.Errorf("heal %s on %s: %w", sp.action, x.ID(), err)
		}
	}
	event("stop-"+sp.action, label, nil, healErr)
	note(healErr)
	note(<-failoverDone)
	return firstErr
}
