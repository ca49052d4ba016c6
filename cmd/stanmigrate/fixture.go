package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/stan.go"
	"github.com/spf13/cobra"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/internal/source/live"
)

func newFixtureCmd(a *app, g *globalOptions, r runners) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fixture",
		Short: "Rehearse a migration: load a STAN state from a fixture spec, or capture a live STAN's shape",
		Long: `A fixture spec describes a STAN state as data: channels, messages, limits,
durables with their acknowledged and pending sets, queue groups, online owners
(docs/fixtures.md). "fixture capture" writes one from a live STAN's shape
through monitoring, copying no message content; "fixture load" builds that
state on a running STAN, such as the one docker-compose.yml starts, so a
production migration can be rehearsed in CI.

` + exitCodesHelp,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newFixtureLoadCmd(a, g, r.fixtureLoad), newFixtureCaptureCmd(a, g, r.fixtureCapture))
	return cmd
}

type fixtureLoadOptions struct {
	io     *iostreams
	global *globalOptions

	file          string
	allowExisting bool
	timeout       time.Duration
}

func newFixtureLoadCmd(a *app, g *globalOptions, runF func(context.Context, *fixtureLoadOptions) error) *cobra.Command {
	o := &fixtureLoadOptions{io: a.io, global: g}
	cmd := &cobra.Command{
		Use:   "load FILE",
		Short: "Build the state a fixture spec describes on a running STAN server",
		Long: `load publishes every channel's messages of the fixture spec FILE and drives
every subscription to its state (acknowledged and pending sets, queue groups)
on the STAN server the connection flags name. A channel that already holds
messages is refused unless --allow-existing (the fixture's messages then follow
the existing ones). With monitoring, the server's store limits are compared
with the spec's first: limits that would build another state are refused,
naming the STAN configuration to start the server with.

Durables whose owner the spec marks online stay connected until Ctrl-C.

` + exitCodesHelp,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("fixture load takes one fixture spec file, got %d argument(s): stanmigrate fixture load testdata/fixtures/core.yaml", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.file = args[0]
			if err := o.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runFixtureLoad(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.allowExisting, "allow-existing", false, "load into channels that already hold messages (the fixture's follow them)")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 15*time.Second, "longest wait for one loading step (messages received, acks applied, expiry)")
	return cmd
}

// validate checks the flags before anything runs.
func (o *fixtureLoadOptions) validate() error {
	if err := o.global.validate(); err != nil {
		return err
	}
	if o.timeout <= 0 {
		return usageError{fmt.Errorf("--timeout %v: use a positive duration, such as 30s", o.timeout)}
	}
	return nil
}

func runFixtureLoad(ctx context.Context, o *fixtureLoadOptions) error {
	spec, err := fixture.Load(o.file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return usageError{fmt.Errorf("fixture spec %s does not exist: check the path (examples are under testdata/fixtures/)", o.file)}
		}
		return usageError{err}
	}
	g := o.global
	opts := []fixture.SeedOption{fixture.WithStepTimeout(o.timeout), fixture.WithConnect(func(clientID string) (stan.Conn, error) {
		sc, err := conn.ConnectSTAN(ctx, g.stan, g.cluster, clientID, nil)
		if err != nil {
			return nil, err
		}
		return ownedSTAN{Conn: sc.SC, owner: sc}, nil
	})}
	if mon := g.monitor(); mon != nil {
		opts = append(opts, fixture.WithMonitorClient(mon))
	}
	if o.allowExisting {
		opts = append(opts, fixture.AllowExisting())
	}
	// Prove the connection before anything is written.
	if err := conn.CheckSTAN(ctx, g.stan, g.cluster); err != nil {
		return err
	}
	seeded, err := fixture.Seed(ctx, "", g.cluster, spec, opts...)
	if err != nil {
		return err
	}
	defer seeded.Close()
	for _, w := range seeded.Warnings() {
		fmt.Fprintln(o.io.Err, "warning: "+w)
	}
	var msgs, durables, online int
	for _, c := range spec.Channels {
		msgs += c.Messages
		for _, s := range c.Subscriptions {
			if s.Durable != "" {
				durables++
			}
			if s.Online {
				online++
			}
		}
	}
	fmt.Fprintf(o.io.Out, "loaded %s: %d channel(s), %s message(s), %d durable(s) into STAN cluster %q\n",
		o.file, len(spec.Channels), report.Count(uint64(msgs)), durables, g.cluster)
	if online == 0 {
		return nil
	}
	fmt.Fprintf(o.io.Err, "%d subscription(s) the spec marks online stay connected until Ctrl-C\n", online)
	<-ctx.Done()
	return nil
}

// ownedSTAN is a STAN session that closes the NATS connection it was
// opened on.
type ownedSTAN struct {
	stan.Conn
	owner *conn.STAN
}

func (s ownedSTAN) Close() error {
	s.owner.Close()
	return nil
}

type fixtureCaptureOptions struct {
	io     *iostreams
	global *globalOptions

	output   string
	scale    float64
	channels []string
}

func newFixtureCaptureCmd(a *app, g *globalOptions, runF func(context.Context, *fixtureCaptureOptions) error) *cobra.Command {
	o := &fixtureCaptureOptions{io: a.io, global: g}
	cmd := &cobra.Command{
		Use:   "capture",
		Short: "Write a live STAN's shape (no message content) as a fixture spec",
		Long: `capture reads a live STAN server's shape through monitoring: channel names,
message counts and sizes (from bytes/msgs), first and last sequences, store
limits, durables with last_sent and pending counts, queue groups. It writes a
fixture spec with synthetic payloads: no message content is read or written,
and the file's header says so and where it came from. Loading it into an
empty STAN ("fixture load") reproduces the shape, so production's shape can
be rehearsed in CI; --scale shrinks a large one while keeping every channel
and durable.

` + exitCodesHelp,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runFixtureCapture(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "-", "fixture spec file to write (- for standard output)")
	f.Float64Var(&o.scale, "scale", 1, "shrink counts and positions by this factor, above 0 and at most 1 (every channel and durable is kept)")
	f.StringArrayVar(&o.channels, "channel", nil, "only channels matching this glob (repeatable)")
	return cmd
}

// validate checks the flags before anything runs.
func (o *fixtureCaptureOptions) validate() error {
	if err := o.global.validate(); err != nil {
		return err
	}
	if o.scale <= 0 || o.scale > 1 {
		return usageError{fmt.Errorf("--scale %v: use a factor above 0 and at most 1, such as 0.01", o.scale)}
	}
	return validGlobs("--channel", o.channels)
}

func runFixtureCapture(ctx context.Context, o *fixtureCaptureOptions) error {
	if err := writableFile("--output", o.output); err != nil {
		return err
	}
	g := o.global
	mon := g.monitor()
	if mon == nil {
		return usageError{errors.New("capture reads the STAN monitoring endpoint: pass --stan-monitor")}
	}
	spec, err := fixture.Capture(ctx, mon, fixture.CaptureOptions{Scale: o.scale, Channels: o.channels})
	if err != nil {
		return live.MonitorError(err)
	}
	if c := g.explicitCluster(); c != "" && spec.Captured != nil && spec.Captured.ClusterID != c {
		return fmt.Errorf("STAN monitoring %s reports cluster id %q, not %q: pass --cluster %s (or fix --stan-monitor): %w",
			conn.Redact(g.monitorURL), spec.Captured.ClusterID, c, spec.Captured.ClusterID, conn.ErrWrongCluster)
	}
	if len(o.channels) > 0 && len(spec.Channels) == 0 {
		return usageError{fmt.Errorf("--channel %s matches no channel: check the glob", strings.Join(o.channels, ", "))}
	}
	if o.output == "-" {
		data, err := spec.Marshal()
		if err != nil {
			return err
		}
		_, err = o.io.Out.Write(data)
		if err != nil {
			return err
		}
	} else if err := fixture.WriteFile(o.output, spec); err != nil {
		return err
	}
	if spec.Captured != nil {
		for _, n := range spec.Captured.Notes {
			fmt.Fprintln(o.io.Err, "note: "+n)
		}
	}
	if o.output != "-" {
		fmt.Fprintf(o.io.Err, "fixture spec written to %s (%d channel(s)): load it with `stanmigrate fixture load %s`\n", o.output, len(spec.Channels), o.output)
	}
	return nil
}
