package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/verify"
)

type verifyOptions struct {
	io         *iostreams
	global     *globalOptions
	interrupts *interrupts

	planFile string
	stateDir string
	junit    string
	json     bool
	quiet    bool
	sample   int
	parallel int
	dir      dirOptions
	op       operateOptions

	full      bool
	follow    bool
	untilIdle time.Duration
}

func newVerifyCmd(a *app, g *globalOptions, runF func(context.Context, *verifyOptions) error) *cobra.Command {
	o := &verifyOptions{io: a.io, global: g, interrupts: a.interrupts}
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Compare every channel with its stream and every durable with its consumer",
		Long: `verify streams each channel and its stream side by side in sequence order
(constant memory) and compares counts, first/last sequences, a SHA-256 over
(sequence, subject, payload) and each message; then each consumer's start
against its durable's position. It changes no message, durable or consumer:
it reads STAN through short-lived non-durable subscriptions of its own (which
STAN records in its subscription file while they exist) and JetStream through
ephemeral ordered consumers. Exit code 1 on any difference,
naming the channel and the first differing sequences: made for CI.

Each channel found identical is recorded as a verified prefix in the
migration's state (--state, the same as migrate's): a later verify checks the prefix cheaply (both
sides' first and last sequences, the stream's message count over it) and
reads only past it, so a final verify at cutover costs the new messages, not
the history. --full reads everything again. --follow runs beside
migrate --follow and keeps the prefix moving until Ctrl-C (or --until-idle):
then one last round checks the tails and the consumers, and says how long it
took. Finish migrate first, then verify.
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
			return runVerify(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.planFile, "plan", "", "plan file (default: the plan migrate saved in the state store, else plan now with defaults)")
	f.StringVar(&o.stateDir, "state", "", "the migration's state: directory (default: beside the plan, <plan>.state) or kv:NAME")
	f.BoolVar(&o.json, "json", false, "print the report as JSON (no progress output)")
	f.StringVar(&o.junit, "junit", "", "also write the report as JUnit XML to this file (one test case per channel and consumer), for CI")
	f.BoolVar(&o.quiet, "quiet", false, "no progress output")
	f.IntVar(&o.sample, "sample", 0, "check N random sequences per channel by direct get instead of every message")
	f.IntVar(&o.parallel, "parallel", verify.DefaultParallel, fmt.Sprintf("channels verified at once, 1 to %d", maxParallel))
	f.BoolVar(&o.full, "full", false, "read every message again, ignoring the verified prefixes (a new one is recorded)")
	f.BoolVar(&o.follow, "follow", false, "keep verifying as both sides grow (beside migrate --follow) until Ctrl-C or --until-idle, then check the tails and consumers")
	f.DurationVar(&o.untilIdle, "until-idle", 0, "with --follow: finish after this long without a new message")
	o.dir.addFlags(f)
	o.op.addFlags(f, false)
	return cmd
}

// validate checks the flags' ranges before anything runs.
func (o *verifyOptions) validate() error {
	if err := o.global.validate(); err != nil {
		return err
	}
	if o.sample < 0 {
		return usageError{fmt.Errorf("--sample %d: use a positive number of sequences per channel (0, the default, checks every message)", o.sample)}
	}
	if err := inRange("--parallel", o.parallel, 1, maxParallel); err != nil {
		return err
	}
	if err := o.checkFollow(); err != nil {
		return err
	}
	return o.op.check()
}

func runVerify(ctx context.Context, o *verifyOptions) (err error) {
	if err := writableFile("--junit", o.junit); err != nil {
		return err
	}
	opn, err := o.op.start()
	if err != nil {
		return err
	}
	defer func() { opn.end(err) }()
	start := time.Now()
	g := o.global
	if o.stateDir == "" {
		o.stateDir = defaultStateDir(o.planFile)
	}
	prog := newProgress(o.io, progressOptions{verb: "verifying", quiet: o.quiet || o.json, format: o.op.logFormat, every: o.op.logEvery})
	defer prog.Close()
	rs, err := g.resolveRun(ctx, prog.notesIO(), o.planFile, o.stateDir, o.dir, false)
	if err != nil {
		return err
	}
	defer rs.close()
	p := rs.plan
	parallel := o.parallel
	// One STAN session per channel verified at once: a session is one
	// connection whose messages one goroutine hands out.
	src, err := g.openSource(ctx, o.dir, p, parallel)
	if err != nil {
		return err
	}
	defer src.Close()
	skipUnreadable(ctx, prog.Notes(), p, src, o.dir.skipBroken)
	finish := make(chan struct{})
	clock := &cutoverClock{}
	if o.follow && o.interrupts != nil {
		o.interrupts.onFinish(func() {
			fmt.Fprintln(prog.Notes(), "finishing: a last round checks the tails past the verified prefixes, then the consumers (Ctrl-C again to stop)")
			clock.finishing()
			close(finish)
		})
	}
	rep, err := verify.Run(ctx, src, p, verify.Options{
		Target: g.nats, Sample: o.sample, Parallel: parallel, Reporter: opn.verifyReporter(prog),
		State: rs.store, Full: o.full,
		Follow: o.follow, Finish: finish, IdleFinish: o.untilIdle,
	})
	prog.Close()
	clock.printVerify(prog.Notes(), time.Now(), rep)
	if o.junit != "" {
		if jerr := report.WriteJUnit(o.junit, rep, report.JUnitOptions{Timestamp: start, Duration: time.Since(start), Err: err}); jerr != nil {
			return fmt.Errorf("write the JUnit report %s: %w", o.junit, jerr)
		}
	}
	if rep != nil {
		if perr := printResult(o.io, o.json, rep, func() { report.Verification(o.io.Out, rep) }); perr != nil {
			return perr
		}
	}
	return err
}

// checkFollow refuses flag combinations --follow cannot honour.
func (o *verifyOptions) checkFollow() error {
	switch {
	case o.untilIdle != 0 && !o.follow:
		return usageError{errors.New("--until-idle needs --follow")}
	case o.untilIdle < 0:
		return usageError{fmt.Errorf("--until-idle %v: use a positive duration, such as 30s", o.untilIdle)}
	case o.follow && o.sample > 0:
		return usageError{errors.New("--follow and --sample do not go together: following moves the verified prefixes, which sampling does not make")}
	case o.follow && o.full:
		return usageError{errors.New("--follow and --full do not go together: run verify --full once, then --follow")}
	case o.follow && o.dir.dir != "":
		return usageError{errors.New("--follow needs a running STAN server: a store directory does not grow")}
	}
	return nil
}
