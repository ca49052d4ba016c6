package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/embedded"
	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/plan"
	"github.com/stanmigrate/stanmigrate/verify"
)

type demoOptions struct {
	io   *iostreams
	keep bool
}

func newDemoCmd(a *app, runF func(context.Context, *demoOptions) error) *cobra.Command {
	o := &demoOptions{io: a.io}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run plan, migrate and verify on embedded STAN and JetStream servers",
		Long: `demo starts an embedded NATS Streaming server and an embedded JetStream
server in a temporary directory, seeds channels and durables (a dotted channel
name, a front dropped by max_msgs, a channel emptied by max_age, caught-up,
behind and pending durables, an offline durable queue group, a non-durable),
then runs plan, migrate and verify and prints what each step did.

` + exitCodesHelp,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runDemo(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.keep, "keep", false, "keep the temporary directory (server stores, plan, state)")
	return cmd
}

// runDemo runs the same plan, migrate and verify an operator would, with
// the connection settings pointing at embedded servers.
func runDemo(ctx context.Context, o *demoOptions) error {
	root, err := os.MkdirTemp("", "stanmigrate-demo-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(o.io.Err, "demo files kept in %s\n", root)
	} else {
		defer os.RemoveAll(root)
	}
	step := func(format string, args ...any) {
		fmt.Fprintf(o.io.Out, "\n== "+format+"\n\n", args...)
	}
	step("1/4 starting embedded STAN (file store) and JetStream, seeding channels and durables")
	spec := fixture.Demo()
	pair, err := embedded.StartPair(root, spec.StoreLimits())
	if err != nil {
		return err
	}
	defer pair.Stop()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	seeded, err := fixture.Seed(sctx, pair.STAN.URL(), pair.STAN.ClusterID(), spec, fixture.WithMonitor(pair.STAN.MonitorURL()))
	cancel()
	if err != nil {
		return fmt.Errorf("seed the demo's channels: %w", err)
	}
	defer seeded.Close()
	fmt.Fprintf(o.io.Out, "STAN %s (cluster %q, monitoring %s)\nJetStream %s (nats-server %s)\n",
		pair.STAN.URL(), pair.STAN.ClusterID(), pair.STAN.MonitorURL(), pair.JetStream.URL(), pair.JetStream.Version())

	g := &globalOptions{
		stan: conn.Side{Name: "STAN", URL: pair.STAN.URL()}, nats: conn.Side{Name: "JetStream", URL: pair.JetStream.URL()},
		cluster: pair.STAN.ClusterID(), monitorURL: pair.STAN.MonitorURL(),
	}
	planFile := filepath.Join(root, "plan.yaml")
	step("2/4 stanmigrate plan -o %s", planFile)
	if err := runPlan(ctx, &planOptions{io: o.io, global: g, output: planFile, format: report.Table, replicas: plan.DefaultReplicas, headers: plan.DefaultHeaders}); err != nil {
		return err
	}
	step("3/4 stanmigrate migrate --plan %s", planFile)
	if err := runMigrate(ctx, &migrateOptions{io: o.io, global: g, planFile: planFile, positions: migrate.DefaultPositions, publish: migrate.PublishAuto,
		parallel: migrate.DefaultParallel, window: migrate.DefaultWindow}); err != nil {
		return err
	}
	step("4/4 stanmigrate verify --plan %s", planFile)
	if err := runVerify(ctx, &verifyOptions{io: o.io, global: g, planFile: planFile, parallel: verify.DefaultParallel}); err != nil {
		return err
	}
	fmt.Fprintln(o.io.Out, "\nDemo complete: every channel is a stream with the same sequences and content, every durable a consumer at its position.")
	return nil
}
