package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/verify"
)

type verifyOptions struct {
	io     *iostreams
	global *globalOptions

	planFile string
	stateDir string
	junit    string
	json     bool
	quiet    bool
	sample   int
	parallel int
	dir      dirOptions
	op       operateOptions
}

func newVerifyCmd(a *app, g *globalOptions, runF func(context.Context, *verifyOptions) error) *cobra.Command {
	o := &verifyOptions{io: a.io, global: g}
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
	rep, err := verify.Run(ctx, src, p, verify.Options{
		Target: g.nats, Sample: o.sample, Parallel: parallel, Reporter: opn.verifyReporter(prog),
	})
	prog.Close()
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
