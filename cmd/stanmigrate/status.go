package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/plan"
)

type statusOptions struct {
	io       *iostreams
	global   *globalOptions
	planFile string
	stateDir string
}

func newStatusCmd(a *app, g *globalOptions, runF func(context.Context, *statusOptions) error) *cobra.Command {
	o := &statusOptions{io: a.io, global: g}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show per-channel migration progress from the state store",
		Long: `status reads the checkpoints in the state store (never STAN) and shows, per
channel, how far the copy got, the time it has left at its recent copy rate
(ETA; "stale" when no run has written its checkpoint for a minute), how many
consumers exist, and which worker holds it now (with its lease's age) or
completed it. A bucket on the target is read through --nats-url.

` + exitCodesHelp,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.stateDir == "" {
				o.stateDir = defaultStateDir(o.planFile)
			}
			if err := o.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runStatus(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.planFile, "plan", "", "plan file (its state directory is <plan>.state)")
	cmd.Flags().StringVar(&o.stateDir, "state", "", "state directory, or kv:NAME for a bucket on the target")
	return cmd
}

// validate checks --state, and for a bucket on the target the URL it is
// read through, before anything runs.
func (o *statusOptions) validate() error {
	loc, err := parseState(o.stateDir)
	if err != nil || loc.Bucket == "" {
		return err
	}
	return o.global.validate()
}

func runStatus(ctx context.Context, o *statusOptions) error {
	st, closeFn, err := o.global.openExisting(ctx, o.stateDir)
	if err != nil {
		return err
	}
	defer closeFn()
	v := report.StatusView{Now: time.Now()}
	if v.Checkpoints, err = state.AllCheckpoints(ctx, st); err != nil {
		return err
	}
	if v.Checkpoints, err = withUnstarted(ctx, st, v.Checkpoints); err != nil {
		return err
	}
	if v.Leases, err = state.Leases(ctx, st); err != nil {
		return err
	}
	report.Status(o.io.Out, v)
	return nil
}

// withUnstarted adds the saved plan's channels no worker has started
// yet, so that status counts the whole migration, not what has begun.
func withUnstarted(ctx context.Context, st state.Store, cps []*state.Checkpoint) ([]*state.Checkpoint, error) {
	text, err := state.SavedPlan(ctx, st)
	if err != nil || text == nil {
		return cps, err
	}
	p, err := plan.Parse(fmt.Sprintf("the plan saved in %s", st), text)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, cp := range cps {
		seen[cp.Stream] = true
	}
	for _, c := range p.Active() {
		if !seen[c.Stream] {
			cps = append(cps, &state.Checkpoint{Channel: c.Name, Stream: c.Stream, FirstSeq: c.FirstSeq,
				LastSeq: c.FirstSeq - 1, TargetSeq: max(c.LastSeq, c.FirstSeq-1)})
		}
	}
	sort.Slice(cps, func(i, j int) bool { return cps[i].Channel < cps[j].Channel })
	return cps, nil
}
