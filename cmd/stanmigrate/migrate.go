package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/plan"
)

type migrateOptions struct {
	planFile  string
	stateDir  string
	parallel  int
	follow    bool
	untilIdle time.Duration
	json      bool
	quiet     bool
	status    bool
	window    int
	positions string
	dir       dirOptions // offline source (standir.go)
}

// defaultStateDir keeps checkpoints beside the plan they belong to.
func defaultStateDir(planFile string) string {
	if planFile == "" {
		return "stanmigrate-state"
	}
	return strings.TrimSuffix(planFile, filepath.Ext(planFile)) + ".state"
}

func newMigrateCmd(a *app, g *globalOptions) *cobra.Command {
	o := &migrateOptions{}
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Execute a plan: streams, messages by sequence, then consumers (resumable)",
		Long: `migrate creates each stream positioned at its channel's first sequence,
replays every message with its own sequence (stream sequence == channel
sequence), checkpoints as it goes, then creates each durable's consumer at the
position it had. Interrupt it at any time and run it again: it resumes where
the streams stand. Without --plan it plans with defaults first.

With --follow it keeps tailing the channels after the history is copied: the
first Ctrl-C (or --until-idle) means "finish": a final catch-up, then the
consumers. A second Ctrl-C stops with the checkpoint saved.
` + dirHelp + `
` + exitCodesHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.stateDir == "" {
				o.stateDir = defaultStateDir(o.planFile)
			}
			if o.status {
				cps, err := migrate.State{Dir: o.stateDir}.All()
				if err != nil {
					return err
				}
				report.Status(a.stdout, cps)
				return nil
			}
			if err := o.dir.resolve(cmd.Flags()); err != nil {
				return err
			}
			if o.dir.dir != "" && o.follow {
				return usageError{errors.New("--follow needs a running STAN server: a store directory does not grow")}
			}
			if o.positions != "exact" && o.positions != "lowest-unacked" {
				return usageError{fmt.Errorf("--positions is %q: use exact or lowest-unacked", o.positions)}
			}
			if o.untilIdle > 0 && !o.follow {
				return usageError{errors.New("--until-idle needs --follow")}
			}
			ctx := cmd.Context()
			var p *plan.Plan
			var err error
			if o.planFile != "" {
				p, err = plan.Load(o.planFile)
				if err == nil {
					err = g.applyPlanAuth(p)
				}
			} else {
				p, err = makePlan(ctx, g, &planOptions{replicas: 1, headers: plan.HeadersFull, dir: o.dir})
				if err == nil {
					err = plan.Save(filepath.Join(o.stateDir, "plan.yaml"), p)
				}
			}
			if err != nil {
				return err
			}
			mo := migrate.Options{
				ClusterID:   g.cluster,
				Source:      g.stan,
				Target:      g.nats,
				Monitor:     g.monitor(),
				StateDir:    o.stateDir,
				Parallel:    o.parallel,
				Window:      o.window,
				Follow:      o.follow,
				IdleFinish:  o.untilIdle,
				AtLeastOnce: o.positions == "lowest-unacked",
			}
			if o.dir.dir != "" {
				st, _, err := o.dir.open(ctx, g.explicitCluster())
				if err != nil {
					return err
				}
				defer st.Close()
				skipUnreadable(a.stderr, p, st, o.dir.skipBroken)
				mo.Offline, mo.Monitor, mo.ClusterID = st, nil, st.ClusterID()
			}
			prog := newProgress(a.stderr, a.terminal, o.quiet || o.json)
			finish := make(chan struct{})
			if o.follow {
				a.interrupts.onFinish(func() {
					fmt.Fprintln(a.stderr, "finishing: final catch-up, then consumers (Ctrl-C again to stop with the checkpoint saved)")
					close(finish)
				})
			}
			mo.Finish, mo.Reporter = finish, prog
			sum, err := migrate.Run(ctx, p, mo)
			prog.Close()
			if sum != nil {
				if o.json {
					if jerr := report.JSONTo(a.stdout, sum); jerr != nil {
						return jerr
					}
				} else {
					report.Migration(a.stdout, sum)
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.planFile, "plan", "", "plan file from `stanmigrate plan` (default: plan now with defaults)")
	f.StringVar(&o.stateDir, "state", "", "checkpoint directory (default: beside the plan, <plan>.state)")
	f.IntVar(&o.parallel, "parallel", 0, "channels migrated at once (default: 8, or the number of CPUs if higher)")
	f.IntVar(&o.window, "window", 0, "publishes awaiting a JetStream ack per channel (default 8192; payload in flight is also capped at 32 MiB across all channels)")
	f.StringVar(&o.positions, "positions", "exact", "consumer state: exact (ack what STAN had acknowledged past the start, redeliver only the pending) or lowest-unacked (at-least-once: start at the lowest unacknowledged sequence, acknowledged messages past it are delivered again)")
	o.dir.addFlags(f)
	f.BoolVar(&o.follow, "follow", false, "keep tailing new messages until Ctrl-C or --until-idle, then finish")
	f.DurationVar(&o.untilIdle, "until-idle", 0, "with --follow: finish a channel after this long without a new message")
	f.BoolVar(&o.json, "json", false, "print the summary as JSON (no progress output)")
	f.BoolVar(&o.quiet, "quiet", false, "no progress output")
	f.BoolVar(&o.status, "status", false, "show per-channel progress from the state directory and exit")
	return cmd
}

func newStatusCmd(a *app, g *globalOptions) *cobra.Command {
	var planFile, stateDir string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show per-channel migration progress from the state directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if stateDir == "" {
				stateDir = defaultStateDir(planFile)
			}
			cps, err := migrate.State{Dir: stateDir}.All()
			if err != nil {
				return err
			}
			report.Status(a.stdout, cps)
			return nil
		},
	}
	cmd.Flags().StringVar(&planFile, "plan", "", "plan file (its state directory is <plan>.state)")
	cmd.Flags().StringVar(&stateDir, "state", "", "checkpoint directory")
	return cmd
}
