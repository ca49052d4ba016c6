package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/migrate"
)

type statusOptions struct {
	io       *iostreams
	planFile string
	stateDir string
}

func newStatusCmd(a *app, runF func(context.Context, *statusOptions) error) *cobra.Command {
	o := &statusOptions{io: a.io}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show per-channel migration progress from the state directory",
		Long: `status reads the checkpoints in the state directory (never the servers) and
shows, per channel, how far the copy got, the time it has left at its recent
copy rate (ETA; "stale" when no run has written its checkpoint for a minute)
and how many consumers exist.

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
	cmd.Flags().StringVar(&o.stateDir, "state", "", "checkpoint directory")
	return cmd
}

func runStatus(_ context.Context, o *statusOptions) error {
	if err := stateDirectory(o.stateDir); err != nil {
		return err
	}
	cps, err := migrate.State{Dir: o.stateDir}.All()
	if err != nil {
		return err
	}
	report.Status(o.io.Out, cps, time.Now())
	return nil
}
