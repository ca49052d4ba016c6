package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/internal/state"
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
channel, how far the copy got, how many consumers exist, and which worker holds
it now (with its lease's age) or completed it. A bucket on the target is read
through --nats-url.

` + exitCodesHelp,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.stateDir == "" {
				o.stateDir = defaultStateDir(o.planFile)
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

func runStatus(ctx context.Context, o *statusOptions) error {
	loc, err := parseState(o.stateDir)
	if err != nil {
		return err
	}
	st, closeFn, err := o.global.openState(ctx, loc, false, 0)
	if err != nil {
		return err
	}
	defer closeFn()
	v := report.StatusView{Now: time.Now()}
	if v.Checkpoints, err = state.AllCheckpoints(ctx, st); err != nil {
		return err
	}
	if v.Leases, err = state.Leases(ctx, st); err != nil {
		return err
	}
	report.Status(o.io.Out, v)
	return nil
}
