package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/plan"
	"github.com/stanmigrate/stanmigrate/verify"
)

func newDemoCmd(a *app) *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run plan, migrate and verify on embedded STAN and JetStream servers",
		Long: `demo starts an embedded NATS Streaming server and an embedded JetStream
server in a temporary directory, seeds channels and durables (a dotted channel
name, a front dropped by max_msgs, a channel emptied by max_age, caught-up,
behind and pending durables, an offline durable queue group, a non-durable),
then runs plan, migrate and verify and prints what each step did.

` + exitCodesHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), a, keep)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory (server stores, plan, state)")
	return cmd
}

func runDemo(ctx context.Context, a *app, keep bool) error {
	root, err := os.MkdirTemp("", "stanmigrate-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintf(a.stderr, "demo files kept in %s\n", root)
	} else {
		defer os.RemoveAll(root)
	}
	step := func(format string, args ...any) {
		fmt.Fprintf(a.stdout, "\n== "+format+"\n\n", args...)
	}
	step("1/4 starting embedded STAN (file store) and JetStream, seeding channels and durables")
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	env, err := testenv.Start(sctx, root, fixture.Demo())
	cancel()
	if err != nil {
		return err
	}
	defer env.Stop()
	fmt.Fprintf(a.stdout, "STAN %s (cluster %q, monitoring %s)\nJetStream %s (nats-server %s)\n",
		env.Pair.STAN.URL(), env.Pair.STAN.ClusterID(), env.Pair.STAN.MonitorURL(), env.Pair.JetStream.URL(), env.Pair.JetStream.Version())

	step("2/4 stanmigrate plan")
	p, err := env.Plan(ctx)
	if err != nil {
		return err
	}
	planFile := filepath.Join(root, "plan.yaml")
	if err := plan.Save(planFile, p); err != nil {
		return err
	}
	if err := report.Plan(a.stdout, p, report.Table); err != nil {
		return err
	}

	step("3/4 stanmigrate migrate --plan %s", planFile)
	mo := env.MigrateOptions()
	prog := newProgress(a.stderr, a.terminal, false)
	mo.Reporter = prog
	sum, err := migrate.Run(ctx, p, mo)
	prog.Close()
	report.Migration(a.stdout, sum)
	if err != nil {
		return err
	}

	step("4/4 stanmigrate verify --plan %s", planFile)
	rep, err := verify.Run(ctx, p, env.VerifyOptions())
	if rep != nil {
		report.Verification(a.stdout, rep)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, "\nDemo complete: every channel is a stream with the same sequences and content, every durable a consumer at its position.")
	return nil
}
