// Package chaos injects faults into a running target: it kills, pauses and
// restarts nodes on a schedule and records each fault's start and end into
// the history, so checkers and reports can line anomalies and latency up
// with what the cluster was going through.
//
// A nemesis is named "<action>-<selector>" (kill-writer, pause-storage,
// kill-az-az1, pause-minority...), a network fault (partition-az-az1,
// partition-writer-storage, latency-all...; see netFaults), an outage
// (outage-writer-az, outage-writer-az-plus-one...; see outages) or "failover"
// (a planned failover), and several can be combined with commas: each interval
// one is picked at random from the seed. Every fault is healed before the
// run's final reads.
//
// Network faults act on the per-link TCP proxies (chaos/netem) that every
// inter-node connection of a local target goes through when the target was
// started with a network (targets.Options.Network); they need no root.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aurorabench/aurorabench/chaos/netem"
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

// netFaults are the network faults, by action and selector. A partition
// cuts links in both directions (Schedule.PartitionMode says how); latency
// delays every byte on a link by Schedule.Latency ± Schedule.Jitter.
var netFaults = map[string]map[string]string{
	"partition": {
		"az-NAME":         "cut every link between availability zone NAME and the rest (e.g. partition-az-az1)",
		"writer-storage":  "cut the links between the current writer and every storage node",
		"writer-replicas": "cut the links between the current writer and every replica (reader)",
		"halves":          "split the nodes into two random halves that cannot reach each other",
		"bridge":          "two random halves plus one node that reaches both (Jepsen's bridge)",
	},
	"latency": {
		"all":     "delay every link",
		"writer":  "delay the links to and from the current writer",
		"storage": "delay the links to and from storage nodes",
		"az-NAME": "delay every link between availability zone NAME and the rest",
	},
}

// outages take a group of nodes out the way a real availability zone failure does: their
// links to the rest of the cluster go first, and half-way through the fault the nodes crash
// (SIGKILL) while still cut off; at the end the links heal and the nodes restart. The order
// matters: while cut off, a writer in the group either stalls (it cannot reach a write
// quorum) or, if it wrongly acknowledges commits, keeps them on segments the rest of the
// cluster cannot see, and gossip cannot carry them out either. The crash then forces a
// failover to the other side, whose recovery must not lose anything acknowledged, nor keep
// anything a reader in the group showed and the rest never saw.
var outages = map[string]string{
	"writer-az":          "every node in the current writer's availability zone",
	"writer-az-plus-one": "the current writer's availability zone plus one storage node of another zone (Aurora's AZ+1: 3 of 6 segments)",
	"az-NAME":            "every node in availability zone NAME (e.g. outage-az-az1)",
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
	for a, sels := range netFaults {
		for s := range sels {
			rest = append(rest, a+"-"+s)
		}
	}
	for s := range outages {
		rest = append(rest, "outage-"+s)
	}
	sort.Strings(rest)
	return append(ns, rest...)
}

// Describe is one line per nemesis name pattern, for --help.
func Describe() []string {
	out := []string{"failover: a planned failover (switchover) of the writer"}
	var rest []string
	for a, d := range actions {
		for s, sd := range selectors {
			rest = append(rest, fmt.Sprintf("%s-%s: %s; %s", a, s, sd, d))
		}
	}
	for a, sels := range netFaults {
		for s, d := range sels {
			rest = append(rest, fmt.Sprintf("%s-%s: %s", a, s, d))
		}
	}
	for s, d := range outages {
		rest = append(rest, fmt.Sprintf("outage-%s: %s; cut off from the rest, SIGKILL half-way through, links healed and restarted at the end", s, d))
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// Schedule says when faults happen and how network faults behave.
type Schedule struct {
	Interval time.Duration // between the end of one fault and the start of the next
	Duration time.Duration // how long a fault lasts
	Seed     int64
	// Latency and Jitter shape the latency faults (defaults 50ms and 25ms).
	Latency, Jitter time.Duration
	// PartitionMode is how a partition cuts a link (default netem.Drop: connections
	// stall; netem.Reset: they are reset).
	PartitionMode netem.Mode
}

// Default network fault settings.
const (
	DefaultLatency = 50 * time.Millisecond
	DefaultJitter  = 25 * time.Millisecond
)

// NeedsNetwork reports whether any of the comma-separated nemesis names is a
// network fault, which needs a target started with a netem.Network.
func NeedsNetwork(names string) bool {
	for _, n := range strings.Split(names, ",") {
		if sp, err := parse(strings.TrimSpace(n)); err == nil && sp.network() {
			return true
		}
	}
	return false
}

// spec is one parsed nemesis name.
type spec struct {
	name, action, selector string
}

// network reports whether the fault acts on links (partition, latency, outage).
func (s spec) network() bool { return netFaults[s.action] != nil || s.action == "outage" }

func parse(name string) (spec, error) {
	if name == "failover" {
		return spec{name: name, action: "failover"}, nil
	}
	action, sel, ok := strings.Cut(name, "-")
	if !ok {
		return spec{}, fmt.Errorf("unknown nemesis %q", name)
	}
	if action == "outage" {
		if _, ok := outages[sel]; !ok && !(strings.HasPrefix(sel, "az-") && len(sel) > 3) {
			return spec{}, fmt.Errorf("unknown nemesis %q: outage selector must be writer-az, writer-az-plus-one or az-NAME", name)
		}
		return spec{name: name, action: action, selector: sel}, nil
	}
	if sels := netFaults[action]; sels != nil {
		if _, ok := sels[sel]; !ok && !(strings.HasPrefix(sel, "az-") && len(sel) > 3) {
			var known []string
			for s := range sels {
				known = append(known, s)
			}
			sort.Strings(known)
			return spec{}, fmt.Errorf("unknown nemesis %q: %s selector must be one of %s", name, action, strings.Join(known, ", "))
		}
		return spec{name: name, action: action, selector: sel}, nil
	}
	if _, ok := actions[action]; !ok {
		return spec{}, fmt.Errorf("unknown nemesis %q: action must be kill, pause, partition, latency or outage", name)
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
	net      *netem.Network // nil unless a network fault is among specs
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
	if s.Latency == 0 && s.Jitter == 0 {
		s.Latency, s.Jitter = DefaultLatency, DefaultJitter
	}
	if s.Latency < 0 || s.Jitter < 0 {
		return nil, fmt.Errorf("latency and jitter must not be negative")
	}
	if s.PartitionMode == 0 {
		s.PartitionMode = netem.Drop
	}
	if t != nil && len(t.Nodes()) == 0 {
		return nil, fmt.Errorf("nemesis %s needs a local target with processes to act on (%s has none)", names, t.Name())
	}
	n := &Nemesis{specs: specs, target: t, schedule: s, rng: rand.New(rand.NewPCG(uint64(s.Seed), 99))}
	for _, sp := range specs {
		if !sp.network() || t == nil {
			continue
		}
		if n.net = targets.NetworkOf(t); n.net == nil {
			return nil, fmt.Errorf("nemesis %s needs a local target started with per-link proxies (refdb, mariadb or postgres; %s has none)", sp.name, t.Name())
		}
	}
	return n, nil
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
	if sp.action == "outage" {
		return n.injectOutage(ctx, sp, event)
	}
	if sp.network() {
		return n.injectNet(ctx, sp, event)
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
	failoverDone := n.failoverAlongside(ctx, sp.action == "kill" && hitWriter && len(done) > 0, event)
	sleep(ctx, n.schedule.Duration)
	hctx, cancel := healCtx()
	defer cancel()
	// Heal every node at once, as power coming back would: a restarted instance waits until
	// it serves, which needs the storage nodes restarted in the same heal.
	healErrs := make([]error, len(done))
	var wg sync.WaitGroup
	for i, x := range done {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if sp.action == "kill" {
				err = x.Start(hctx)
			} else {
				err = x.Resume(hctx)
			}
			if err != nil {
				healErrs[i] = fmt.Errorf("heal %s on %s: %w", sp.action, x.ID(), err)
			}
		}()
	}
	wg.Wait()
	var healErr error
	for _, err := range healErrs {
		if err != nil {
			healErr = err
			break
		}
	}
	event("stop-"+sp.action, label, nil, healErr)
	note(healErr)
	note(<-failoverDone)
	return firstErr
}

// injectNet cuts or slows the links a network fault selects, holds the fault
// for the schedule's duration, then heals every link.
func (n *Nemesis) injectNet(ctx context.Context, sp spec, event func(f, node string, v any, err error)) error {
	nodes := n.target.Nodes()
	role := map[string]targets.Role{}
	var ids []string
	writer := ""
	for _, x := range nodes {
		r := x.Role()
		role[x.ID()] = r
		ids = append(ids, x.ID())
		if r == targets.RoleWriter {
			writer = x.ID()
		}
	}
	sort.Strings(ids)
	is := func(r targets.Role) func(netem.NodeRef) bool {
		return func(x netem.NodeRef) bool { return role[x.ID] == r }
	}
	isWriter := func(x netem.NodeRef) bool { return writer != "" && x.ID == writer }
	between := func(a, b func(netem.NodeRef) bool) netem.Pred {
		return func(from, to netem.NodeRef) bool { return a(from) && b(to) || b(from) && a(to) }
	}
	// apart cuts links between two groups of node ids.
	apart := func(a, b []string) netem.Pred {
		in := func(g []string) func(netem.NodeRef) bool {
			return func(x netem.NodeRef) bool { return slices.Contains(g, x.ID) }
		}
		return between(in(a), in(b))
	}
	desc := map[string]any{"fault": sp.name}
	var pred netem.Pred
	label := ""
	skip := ""
	switch sel := sp.selector; {
	case strings.HasPrefix(sel, "az-"):
		az := sel[3:]
		inAZ := func(x netem.NodeRef) bool { return x.AZ == az }
		pred = between(inAZ, func(x netem.NodeRef) bool { return !inAZ(x) })
		var members []string
		for _, x := range nodes {
			if x.AZ() == az {
				members = append(members, x.ID())
			}
		}
		sort.Strings(members)
		label, desc["az"], desc["nodes"] = az, az, members
	case sel == "writer-storage", sel == "writer-replicas", sel == "writer":
		if writer == "" {
			skip = "no writer"
			break
		}
		switch sel {
		case "writer-storage":
			pred = between(isWriter, is(targets.RoleStorage))
		case "writer-replicas":
			pred = between(isWriter, is(targets.RoleReader))
		default:
			pred = func(from, to netem.NodeRef) bool { return isWriter(from) || isWriter(to) }
		}
		label, desc["nodes"] = writer, []string{writer}
	case sel == "storage":
		pred = func(from, to netem.NodeRef) bool { return is(targets.RoleStorage)(from) || is(targets.RoleStorage)(to) }
		label = "storage"
	case sel == "all":
		pred = func(netem.NodeRef, netem.NodeRef) bool { return true }
		label = "all"
	case sel == "halves", sel == "bridge":
		perm := n.rng.Perm(len(ids))
		shuffled := make([]string, len(ids))
		for i, j := range perm {
			shuffled[i] = ids[j]
		}
		k := len(shuffled) / 2
		a, b := shuffled[:k], shuffled[k:]
		if sel == "bridge" && len(b) > 1 {
			desc["bridge"] = b[0]
			b = b[1:]
		}
		a, b = sorted(a), sorted(b)
		pred = apart(a, b)
		desc["sides"] = [][]string{a, b}
		label = strings.Join(a, ",") + "|" + strings.Join(b, ",")
	}
	var links []netem.LinkInfo
	if skip == "" {
		// Check the selection before acting: a fault that matches no link is skipped.
		for _, l := range n.net.Links() {
			if pred(l.From, l.To) {
				links = append(links, l)
			}
		}
		if len(links) == 0 {
			skip = "no link matches " + sp.selector
		}
	}
	if skip != "" {
		event("skip-"+sp.action, "", map[string]any{"fault": sp.name, "reason": skip}, nil)
		return nil
	}
	if sp.action == "partition" {
		links = n.net.Cut(pred, n.schedule.PartitionMode)
		desc["mode"] = n.schedule.PartitionMode.String()
	} else {
		links = n.net.Slow(pred, n.schedule.Latency, n.schedule.Jitter)
		desc["delay_ms"] = n.schedule.Latency.Milliseconds()
		desc["jitter_ms"] = n.schedule.Jitter.Milliseconds()
	}
	names := make([]string, len(links))
	for i, l := range links {
		names[i] = l.String()
		// A writer cut off from storage cannot commit: the failover-time checker measures
		// how long until writes succeed again.
		if sp.action == "partition" && (isWriter(l.From) && role[l.To.ID] == targets.RoleStorage ||
			isWriter(l.To) && role[l.From.ID] == targets.RoleStorage) {
			desc["role"] = "writer"
		}
	}
	desc["links"] = names
	event("start-"+sp.action, label, desc, nil)
	sleep(ctx, n.schedule.Duration)
	n.net.Heal()
	event("stop-"+sp.action, label, nil, nil)
	return nil
}

// injectOutage cuts a group of nodes off from the rest, crashes them half-way through the
// fault, and at the end heals their links and restarts them (see outages).
// failoverAlongside starts a failover of the target in the background when start is set, and
// returns where its outcome arrives (nil at once when not started). The fault goes on, and is
// healed, while the failover runs: it may only finish once the heal brings storage back.
func (n *Nemesis) failoverAlongside(ctx context.Context, start bool, event func(f, node string, v any, err error)) <-chan error {
	done := make(chan error, 1)
	if !start {
		done <- nil
		return done
	}
	go func() {
		t0 := time.Now()
		err := n.target.Failover(ctx)
		event("failover", "", map[string]any{"seconds": time.Since(t0).Seconds()}, err)
		done <- err
	}()
	return done
}

func (n *Nemesis) injectOutage(ctx context.Context, sp spec, event func(f, node string, v any, err error)) error {
	nodes := n.target.Nodes()
	az := ""
	if strings.HasPrefix(sp.selector, "az-") {
		az = sp.selector[3:]
	} else if w := targets.Writer(n.target); w != nil {
		az = w.AZ()
	}
	var group, elsewhere []targets.Node
	for _, x := range nodes {
		switch {
		case az != "" && x.AZ() == az:
			group = append(group, x)
		case x.Role() == targets.RoleStorage:
			elsewhere = append(elsewhere, x)
		}
	}
	if sp.selector == "writer-az-plus-one" && len(group) > 0 && len(elsewhere) > 0 {
		group = append(group, elsewhere[n.rng.IntN(len(elsewhere))])
	}
	if len(group) == 0 {
		reason := "no node in " + az
		if az == "" {
			reason = "no writer"
		}
		event("skip-outage", "", map[string]any{"fault": sp.name, "reason": reason}, nil)
		return nil
	}
	in := map[string]bool{}
	ids := make([]string, len(group))
	roles := make([]string, len(group))
	hitWriter := false
	for i, x := range group {
		in[x.ID()] = true
		ids[i], roles[i] = x.ID(), string(x.Role())
		hitWriter = hitWriter || x.Role() == targets.RoleWriter
	}
	label := strings.Join(ids, ",")
	links := n.net.Cut(func(from, to netem.NodeRef) bool { return in[from.ID] != in[to.ID] }, n.schedule.PartitionMode)
	names := make([]string, len(links))
	for i, l := range links {
		names[i] = l.String()
	}
	desc := map[string]any{"fault": sp.name, "az": az, "nodes": ids, "roles": roles, "links": names, "mode": n.schedule.PartitionMode.String()}
	if hitWriter {
		desc["role"] = "writer" // the failover-time checker keys on this
	}
	event("start-outage", label, desc, nil)
	var firstErr error
	note := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	var crashed []targets.Node
	failoverDone := n.failoverAlongside(ctx, false, event)
	if sleep(ctx, n.schedule.Duration/2) {
		for _, x := range group {
			err := x.Kill(ctx)
			note(err)
			if err == nil {
				crashed = append(crashed, x)
			}
		}
		cids := make([]string, len(crashed))
		for i, x := range crashed {
			cids[i] = x.ID()
		}
		event("crash-outage", label, map[string]any{"nodes": cids}, firstErr)
		// As for kill: failover runs alongside the outage; its recovery can finish only
		// with segments outside the group, or once the heal brings the group back.
		failoverDone = n.failoverAlongside(ctx, hitWriter && len(crashed) > 0, event)
		sleep(ctx, n.schedule.Duration-n.schedule.Duration/2)
	}
	hctx, cancel := healCtx()
	defer cancel()
	// Network and power come back together: links first, so that restarted nodes find
	// their peers, then every crashed node at once.
	n.net.Heal()
	healErrs := make([]error, len(crashed))
	var wg sync.WaitGroup
	for i, x := range crashed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := x.Start(hctx); err != nil {
				healErrs[i] = fmt.Errorf("heal outage on %s: %w", x.ID(), err)
			}
		}()
	}
	wg.Wait()
	healErr := errors.Join(healErrs...)
	event("stop-outage", label, nil, healErr)
	note(healErr)
	note(<-failoverDone)
	return firstErr
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
