package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/migrate"
)

type migrateOptions struct {
	io         *iostreams
	global     *globalOptions
	interrupts *interrupts

	planFile  string
	stateDir  string
	leaseTTL  time.Duration
	parallel  int
	follow    bool
	untilIdle time.Duration
	json      bool
	quiet     bool
	status    bool
	window    int
	positions string
	publish   string
	dir       dirOptions
	op        operateOptions
}

// defaultStateDir keeps checkpoints beside the plan they belong to.
func defaultStateDir(planFile string) string {
	if planFile == "" {
		return "stanmigrate-state"
	}
	return strings.TrimSuffix(planFile, filepath.Ext(planFile)) + ".state"
}

func newMigrateCmd(a *app, g *globalOptions, runF func(context.Context, *migrateOptions) error) *cobra.Command {
	o := &migrateOptions{io: a.io, global: g, interrupts: a.interrupts}
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
Run the same command on several machines with --state kv:NAME and they share
the plan's channels: each works on a channel only under its lease in the
bucket, and a dead worker's channels move to the others when its leases
expire (--lease-ttl).

` + stateHelp + `
` + dirHelp + `
` + exitCodesHelp,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.dir.resolve(cmd.Flags(), a.env); err != nil {
				return err
			}
			if err := o.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runMigrate(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.planFile, "plan", "", "plan file written by the plan command (default: plan now with defaults)")
	f.StringVar(&o.stateDir, "state", "", "state directory (default: beside the plan, <plan>.state), or kv:NAME for a key-value bucket on the target that several machines can share")
	f.DurationVar(&o.leaseTTL, "lease-ttl", state.DefaultLeaseTTL, fmt.Sprintf("how long a worker's claim on a channel lasts unrenewed, %v to %v: a dead worker's channels move to the others after about this long",
		state.MinLeaseTTL, state.MaxLeaseTTL))
	f.IntVar(&o.parallel, "parallel", migrate.DefaultParallel, fmt.Sprintf("channels migrated at once, 1 to %d", maxParallel))
	f.IntVar(&o.window, "window", migrate.DefaultWindow, fmt.Sprintf("publishes awaiting a JetStream ack per channel, %d to %d (payload in flight is also capped at %s across all channels)",
		migrate.MinWindow, migrate.MaxWindow, humanize.IBytes(migrate.DefaultWindowBytes)))
	f.StringVar(&o.positions, "positions", migrate.DefaultPositions, fmt.Sprintf("consumer state: %s (ack what STAN had acknowledged past the start, redeliver only the pending) or %s (at-least-once: start at the lowest unacknowledged sequence, acknowledged messages past it are delivered again)",
		migrate.PositionsExact, migrate.PositionsLowestUnacked))
	f.StringVar(&o.publish, "publish", migrate.PublishAuto, "auto (fast-ingest batches where the target offers them, nats-server 2.14+; each message asynchronously otherwise) or async (always each message asynchronously)")
	o.dir.addFlags(f)
	o.op.addFlags(f, true)
	f.BoolVar(&o.follow, "follow", false, "keep tailing new messages until Ctrl-C or --until-idle, then finish")
	f.DurationVar(&o.untilIdle, "until-idle", 0, "with --follow: finish a channel after this long without a new message")
	f.BoolVar(&o.json, "json", false, "print the summary as JSON (no progress output)")
	f.BoolVar(&o.quiet, "quiet", false, "no progress output")
	f.BoolVar(&o.status, "status", false, "show per-channel progress from the state directory and exit")
	return cmd
}

// validate checks the flags against each other and their ranges, before
// anything runs.
func (o *migrateOptions) validate() error {
	if err := o.global.validate(); err != nil {
		return err
	}
	if o.dir.dir != "" && o.follow {
		return usageError{errors.New("--follow needs a running STAN server: a store directory does not grow")}
	}
	if o.positions != migrate.PositionsExact && o.positions != migrate.PositionsLowestUnacked {
		return usageError{fmt.Errorf("--positions is %q: use %s or %s", o.positions, migrate.PositionsExact, migrate.PositionsLowestUnacked)}
	}
	if o.publish != migrate.PublishAuto && o.publish != migrate.PublishAsync {
		return usageError{fmt.Errorf("--publish %q: use %s or %s", o.publish, migrate.PublishAuto, migrate.PublishAsync)}
	}
	if o.untilIdle != 0 && !o.follow {
		return usageError{errors.New("--until-idle needs --follow")}
	}
	if o.untilIdle < 0 {
		return usageError{fmt.Errorf("--until-idle %v: use a positive duration, such as 30s", o.untilIdle)}
	}
	if err := inRange("--parallel", o.parallel, 1, maxParallel); err != nil {
		return err
	}
	if err := inRange("--window", o.window, migrate.MinWindow, migrate.MaxWindow); err != nil {
		return err
	}
	if o.leaseTTL != 0 {
		if err := inRangeDuration("--lease-ttl", o.leaseTTL, state.MinLeaseTTL, state.MaxLeaseTTL); err != nil {
			return err
		}
	}
	return o.op.check()
}

func runMigrate(ctx context.Context, o *migrateOptions) (err error) {
	if o.stateDir == "" {
		o.stateDir = defaultStateDir(o.planFile)
	}
	if _, err := parseState(o.stateDir); err != nil {
		return err
	}
	if o.status {
		return runStatus(ctx, &statusOptions{io: o.io, global: o.global, stateDir: o.stateDir})
	}
	if o.leaseTTL == 0 {
		o.leaseTTL = state.DefaultLeaseTTL
	}
	opn, err := o.op.start()
	if err != nil {
		return err
	}
	defer func() { opn.end(err) }()
	g := o.global
	prog := newProgress(o.io, progressOptions{verb: "migrating", quiet: o.quiet || o.json, format: o.op.logFormat, limit: o.op.limit(), every: o.op.logEvery})
	defer prog.Close()
	rs, err := g.resolveRun(ctx, prog.notesIO(), o.planFile, o.stateDir, o.dir, true)
	if err != nil {
		return err
	}
	defer rs.close()
	p := rs.plan
	src, err := g.openSource(ctx, o.dir, p, 1)
	if err != nil {
		return err
	}
	defer src.Close()
	skipUnreadable(ctx, prog.Notes(), p, src, o.dir.skipBroken)
	finish := make(chan struct{})
	clock := &cutoverClock{Reporter: opn.reporter(prog)}
	if o.follow && o.interrupts != nil {
		o.interrupts.onFinish(func() {
			fmt.Fprintln(prog.Notes(), "finishing: final catch-up, then consumers (Ctrl-C again to stop with the checkpoint saved)")
			clock.finishing()
			close(finish)
		})
	}
	sum, err := migrate.Run(ctx, src, p, migrate.Options{
		Target:      g.nats,
		State:       rs.store,
		LeaseTTL:    o.leaseTTL,
		Parallel:    o.parallel,
		Window:      o.window,
		Follow:      o.follow,
		Finish:      finish,
		IdleFinish:  o.untilIdle,
		AtLeastOnce: o.positions == migrate.PositionsLowestUnacked,
		Publish:     o.publish,
		Rate:        float64(o.op.rate),
		RateBytes:   o.op.rateBytesN,
		SourceEvery: o.op.sourceEvery,
		Reporter:    clock,
	})
	prog.Close()
	clock.printMigrate(prog.Notes(), time.Now())
	if sum != nil {
		if perr := printResult(o.io, o.json, sum, func() { report.Migration(o.io.Out, sum) }); perr != nil {
			return perr
		}
	}
	return err
}

// printResult writes a command's result to stdout: as JSON alone with
// --json, as the human table otherwise.
func printResult(ios *iostreams, asJSON bool, v any, table func()) error {
	if asJSON {
		return report.JSONTo(ios.Out, v)
	}
	table()
	return nil
}
