package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stanmigrate/stanmigrate/internal/changlob"
	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/plan"
)

type planOptions struct {
	io     *iostreams
	global *globalOptions

	output   string
	include  []string
	exclude  []string
	format   string
	replicas int
	cluster  string
	tags     []string
	headers  string
	msgID    bool
	expiry   string
	dir      dirOptions
}

func newPlanCmd(a *app, g *globalOptions, runF func(context.Context, *planOptions) error) *cobra.Command {
	o := &planOptions{io: a.io, global: g}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Discover channels and durables and write an editable plan (changes nothing)",
		Long: `plan reads the STAN monitoring endpoint and the JetStream target, maps every
channel to a stream and every durable to a consumer, writes the plan file and
prints a dry-run report: what will be created, how much data, what is risky or
blocked. It changes nothing on either server.
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
			return runPlan(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "plan.yaml", "plan file to write (- to write none)")
	f.StringArrayVar(&o.include, "channel", nil, "only channels matching this glob (repeatable)")
	f.StringArrayVar(&o.exclude, "exclude", nil, "leave out channels matching this glob (repeatable)")
	f.StringVar(&o.format, "format", report.Table, "report format: table, json or markdown")
	f.IntVar(&o.replicas, "replicas", plan.DefaultReplicas, fmt.Sprintf("stream replicas on the target, %d to %d (3 on a three-node cluster)", plan.MinReplicas, plan.MaxReplicas))
	f.StringVar(&o.cluster, "placement-cluster", "", "put every stream in this JetStream cluster")
	f.StringArrayVar(&o.tags, "placement-tag", nil, "put every stream's replicas on servers with this tag (repeatable)")
	o.dir.addFlags(f)
	f.StringVar(&o.headers, "headers", plan.DefaultHeaders, fmt.Sprintf("headers on migrated messages: %s (stan2js's: channel, sequence, original timestamp) or %s (original timestamp)", jsformat.HeadersFull, jsformat.HeadersMinimal))
	f.StringVar(&o.expiry, "expiry", plan.ExpiryOriginal, fmt.Sprintf("when a migrated message of a channel with max_age expires: %s (at its STAN timestamp + max_age, by per-message TTL on nats-server 2.11+) or %s (max_age counted from the copy)", plan.ExpiryOriginal, plan.ExpiryMigration))
	f.BoolVar(&o.msgID, "msg-id", false, "also put a Nats-Msg-Id (<cluster>:<channel>:<sequence>) on every message; exactly-once does not need it, and it costs the server memory and time")
	return cmd
}

// validate checks the flags' values before anything runs.
func (o *planOptions) validate() error {
	if err := o.global.validate(); err != nil {
		return err
	}
	switch o.format {
	case report.Table, report.JSON, report.Markdown:
	default:
		return usageError{fmt.Errorf("--format %q: use table, json or markdown", o.format)}
	}
	if err := inRange("--replicas", o.replicas, plan.MinReplicas, plan.MaxReplicas); err != nil {
		return err
	}
	if err := validGlobs("--channel", o.include); err != nil {
		return err
	}
	if err := validGlobs("--exclude", o.exclude); err != nil {
		return err
	}
	if o.headers != jsformat.HeadersFull && o.headers != jsformat.HeadersMinimal {
		return usageError{fmt.Errorf("--headers %q: use %s or %s", o.headers, jsformat.HeadersFull, jsformat.HeadersMinimal)}
	}
	if o.expiry != "" && o.expiry != plan.ExpiryOriginal && o.expiry != plan.ExpiryMigration {
		return usageError{fmt.Errorf("--expiry %q: use %s or %s", o.expiry, plan.ExpiryOriginal, plan.ExpiryMigration)}
	}
	return nil
}

func runPlan(ctx context.Context, o *planOptions) error {
	if err := writableFile("--output", o.output); err != nil {
		return err
	}
	p, err := makePlan(ctx, o)
	if err != nil {
		return err
	}
	if o.output != "" && o.output != "-" {
		if err := plan.Save(o.output, p); err != nil {
			return err
		}
	}
	if err := report.Plan(o.io.Out, p, o.format); err != nil {
		return err
	}
	if o.output != "" && o.output != "-" && o.format == report.Table {
		fmt.Fprintf(o.io.Err, "\nplan written to %s: review it, then run `stanmigrate migrate --plan %s`\n", o.output, o.output)
	}
	return nil
}

// makePlan discovers the source and the target and maps them.
func makePlan(ctx context.Context, o *planOptions) (*plan.Plan, error) {
	g := o.global
	src, err := g.openSource(ctx, o.dir, nil, 1)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	// A dry run proves every connection migrate will need, changing
	// nothing: the source (monitoring answered when it opened), then the
	// JetStream API, which Discover asks for the account's limits.
	if err := src.Check(ctx); err != nil {
		return nil, err
	}
	d, err := plan.Discover(ctx, src, g.nats)
	if err != nil {
		return nil, err
	}
	if err := selectionMatches(o.include, d); err != nil {
		return nil, err
	}
	var placement *plan.Placement
	if o.cluster != "" || len(o.tags) > 0 {
		placement = &plan.Placement{Cluster: o.cluster, Tags: o.tags}
	}
	p := plan.Build(d, plan.Options{
		Include: o.include, Exclude: o.exclude, Replicas: o.replicas, Placement: placement, Headers: o.headers, MsgID: o.msgID, Expiry: o.expiry, Now: time.Now(),
		SkipBroken: o.dir.skipBroken,
	})
	if errs := d.Unreadable(p); len(errs) > 0 {
		return nil, fmt.Errorf("%d channel(s) cannot be read from %s; pass --skip-broken to plan the other channels and skip these:\n%w",
			len(errs), d.Source.Name, errors.Join(errs...))
	}
	// References only (paths, a context name): migrate and verify reuse
	// them when no security flag is given.
	if o.dir.dir == "" {
		p.Source.Auth = authRefs(g.stan, g.monitorCA)
	}
	p.Target.Auth = authRefs(g.nats, "")
	return p, nil
}

// selectionMatches refuses a --channel glob that matches no channel: an
// empty plan is almost always a typo, and migrating it would do nothing
// while looking like success.
func selectionMatches(include []string, d *plan.Discovery) error {
	all := make([]string, len(d.Channels))
	for i, c := range d.Channels {
		all[i] = c.Name
	}
	for _, g := range (changlob.Selector{Include: include}).Unmatched(all) {
		names := make([]string, 0, 5)
		for _, c := range d.Channels {
			if len(names) == 5 {
				names = append(names, "...")
				break
			}
			names = append(names, c.Name)
		}
		return usageError{fmt.Errorf("--channel %q matches none of the %d channel(s) on %s (%s): check the glob (* matches within a name, so orders.* matches orders.eu)",
			g, len(d.Channels), d.Source.Name, strings.Join(names, ", "))}
	}
	return nil
}
