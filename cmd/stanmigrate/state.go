package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/plan"
)

const stateHelp = `The run's memory (the plan it started from, per-channel checkpoints, verified
prefixes, fleet leases) lives in a state store: a local directory by default
(<plan>.state beside --plan, else ./stanmigrate-state), or a key-value bucket
on the target with --state kv:NAME, which survives the machine and lets
several machines running the same command share the channels.`

// openState opens the store --state names. A bucket is made only when
// create is set (migrate); readers refuse a bucket that does not exist.
func (g *globalOptions) openState(ctx context.Context, loc state.Location, create bool, replicas int) (state.Store, func(), error) {
	if loc.Bucket == "" {
		if err := stateDirectory(loc.Dir); err != nil {
			return nil, nil, err
		}
		return state.NewDir(loc.Dir), func() {}, nil
	}
	nc, err := conn.ConnectNATS(ctx, g.nats, "stanmigrate-state")
	if err != nil {
		return nil, nil, err
	}
	// The bucket lives in the target's JetStream: its domain or API
	// prefix (--nats-domain or the context's) included.
	js, err := conn.NewJetStream(nc, g.nats)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	st, err := state.OpenKV(ctx, js, loc.Bucket, state.KVOptions{Create: create, Replicas: replicas})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return st, nc.Close, nil
}

// openExisting opens the store a --state value names, for reading: a
// bucket that does not exist is ErrNoState.
func (g *globalOptions) openExisting(ctx context.Context, spec string) (state.Store, func(), error) {
	loc, err := parseState(spec)
	if err != nil {
		return nil, nil, err
	}
	return g.openState(ctx, loc, false, 0)
}

// parseState reads a --state value, refusing a bad bucket name as usage.
func parseState(spec string) (state.Location, error) {
	loc, err := state.ParseLocation(spec)
	if err != nil {
		return loc, usageError{err}
	}
	return loc, nil
}

// runState is a command's plan and the store holding the run's memory.
type runState struct {
	plan  *plan.Plan
	store state.Store
	close func()
}

// resolveRun finds the plan a command works from: --plan when given,
// else the plan an earlier run saved in the state store (so that every
// re-run is a resume, whatever the invocation), else a fresh one with the
// defaults. With keep (migrate) a missing bucket is made by the run's
// first write (migrate saves the plan there once its checks pass).
func (g *globalOptions) resolveRun(ctx context.Context, ios *iostreams, planFile, stateSpec string, dir dirOptions, keep bool) (*runState, error) {
	loc, err := parseState(stateSpec)
	if err != nil {
		return nil, err
	}
	// A plan file first: it may name the target's JetStream domain, where
	// a kv: store lives too.
	var fromFile *plan.Plan
	if planFile != "" {
		if fromFile, err = g.loadPlan(planFile); err != nil {
			return nil, err
		}
	}
	st, closeFn, err := g.openState(ctx, loc, false, 0)
	switch {
	case errors.Is(err, state.ErrNoState):
		st, closeFn, err = nil, func() {}, nil
	case err != nil:
		return nil, err
	}
	rs := &runState{store: st, close: closeFn}
	ok := false
	defer func() {
		if !ok {
			rs.close()
		}
	}()
	var saved []byte
	if st != nil {
		if saved, err = state.SavedPlan(ctx, st); err != nil {
			return nil, err
		}
	}
	switch {
	case fromFile != nil:
		rs.plan = fromFile
	case saved != nil:
		rs.plan, err = g.adoptPlan(plan.Parse(fmt.Sprintf("the plan saved in %s", st), saved))
		if err == nil {
			fmt.Fprintf(ios.Err, "stanmigrate: continuing with the plan saved in %s by the first run (`stanmigrate state rm` starts over)\n", st)
		}
	default:
		rs.plan, err = g.planOrDiscover(ctx, ios, "", dir)
	}
	if err != nil {
		return nil, err
	}
	if rs.store == nil && !keep {
		// Nothing to read back and nothing to keep: the bucket appears
		// with the first migrate.
		rs.store = state.NewMemory()
	}
	if rs.store == nil {
		if rs.store, rs.close, err = g.openState(ctx, loc, true, rs.plan.MaxReplicas()); err != nil {
			return nil, err
		}
	}
	ok = true
	return rs, nil
}

// adoptPlan takes a plan's cluster id (unless --cluster says otherwise)
// and its auth references for the sides no security flag was given for.
func (g *globalOptions) adoptPlan(p *plan.Plan, err error) (*plan.Plan, error) {
	if err != nil {
		return nil, err
	}
	if g.explicitCluster() == "" {
		g.cluster = p.Source.ClusterID
	}
	if err := g.applyPlanAuth(p); err != nil {
		return nil, err
	}
	return p, nil
}

type stateRmOptions struct {
	io       *iostreams
	global   *globalOptions
	planFile string
	stateDir string
	force    bool
}

func newStateCmd(a *app, g *globalOptions, runF func(context.Context, *stateRmOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "Manage a migration's state store",
		Long:  stateHelp,
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	o := &stateRmOptions{io: a.io, global: g}
	rm := &cobra.Command{
		Use:   "rm",
		Short: "Remove a finished migration's state (plan, checkpoints, verified prefixes, leases)",
		Long: `state rm removes what stanmigrate keeps of a migration: the state directory's
files, or the key-value bucket on the target. The streams and consumers it
made are not touched. Nothing removes state automatically; a run whose state
is removed starts over (and finds its streams already complete).

It refuses while a worker holds a lease renewed within the lease time (a
migration still running somewhere), unless --force.

` + stateHelp + `

` + exitCodesHelp,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.stateDir == "" {
				o.stateDir = defaultStateDir(o.planFile)
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runStateRm(cmd.Context(), o)
		},
	}
	rm.Flags().StringVar(&o.planFile, "plan", "", "plan file (its state directory is <plan>.state)")
	rm.Flags().StringVar(&o.stateDir, "state", "", "state directory, or kv:NAME for a bucket on the target")
	rm.Flags().BoolVar(&o.force, "force", false, "remove even while a worker's lease is live")
	cmd.AddCommand(rm)
	return cmd
}

func runStateRm(ctx context.Context, o *stateRmOptions) error {
	st, closeFn, err := o.global.openExisting(ctx, o.stateDir)
	if err != nil {
		return err
	}
	defer closeFn()
	leases, err := state.Leases(ctx, st)
	if err != nil {
		return err
	}
	if live := liveLeases(leases, time.Now()); len(live) > 0 && !o.force {
		return usageError{fmt.Errorf("%s: %s: stop those workers first, or pass --force", st, strings.Join(live, "; "))}
	}
	if err := st.Destroy(ctx); err != nil {
		return err
	}
	fmt.Fprintf(o.io.Out, "Removed %s.\n", st)
	return nil
}

// liveLeases describes the leases renewed within their time.
func liveLeases(leases map[string]state.Lease, now time.Time) []string {
	var live []string
	for stream, ls := range leases {
		if age := now.Sub(ls.Renewed); age < max(ls.TTL, time.Second) {
			live = append(live, fmt.Sprintf("worker %s holds stream %q (lease renewed %s ago)", ls.Worker, stream, age.Round(time.Second)))
		}
	}
	return live
}
