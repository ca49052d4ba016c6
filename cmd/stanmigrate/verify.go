package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/plan"
	"github.com/stanmigrate/stanmigrate/verify"
)

func newVerifyCmd(a *app, g *globalOptions) *cobra.Command {
	var planFile string
	var asJSON bool
	var sample, parallel int
	var dir dirOptions
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
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := dir.resolve(cmd.Flags()); err != nil {
				return err
			}
			if sample < 0 {
				return usageError{fmt.Errorf("--sample %d: use a positive number of sequences per channel", sample)}
			}
			ctx := cmd.Context()
			var p *plan.Plan
			var err error
			if planFile != "" {
				p, err = plan.Load(planFile)
				if err == nil {
					err = g.applyPlanAuth(p)
				}
			} else {
				p, err = makePlan(ctx, g, &planOptions{replicas: 1, headers: plan.HeadersFull, dir: dir})
			}
			if err != nil {
				return err
			}
			o := verify.Options{
				ClusterID: g.cluster, Source: g.stan, Target: g.nats, Monitor: g.monitor(),
				Sample: sample, Parallel: parallel,
			}
			if dir.dir != "" {
				st, _, err := dir.open(ctx, p.Source.ClusterID)
				if err != nil {
					return err
				}
				defer st.Close()
				skipUnreadable(a.stderr, p, st, dir.skipBroken)
				o.Store, o.Monitor = st, nil
			}
			rep, err := verify.Run(ctx, p, o)
			if rep != nil {
				if asJSON {
					if jerr := report.JSONTo(a.stdout, rep); jerr != nil {
						return jerr
					}
				} else {
					report.Verification(a.stdout, rep)
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&planFile, "plan", "", "plan file (default: plan now with defaults)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.IntVar(&sample, "sample", 0, "check N random sequences per channel by direct get instead of every message")
	f.IntVar(&parallel, "parallel", 0, "channels verified at once (default: number of CPUs)")
	dir.addFlags(f)
	return cmd
}
