package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/internal/source/dir"
	"github.com/stanmigrate/stanmigrate/internal/source/live"
	"github.com/stanmigrate/stanmigrate/plan"
)

// dirOptions select the offline source: a stopped STAN server's file store
// directory, read directly instead of through a running server.
type dirOptions struct {
	dir        string
	config     string
	skipBroken bool
}

const dirHelp = `
Offline source: --stan-dir DIR reads a stopped STAN server's file store
directory (the one holding server.dat and a directory per channel) instead
of a running server: no --stan-url or --stan-monitor needed, every durable's
position is exact, and nothing in the directory is changed. A directory a
running server holds is refused: stop the server or copy the directory.
The directory does not record the store limits the server applied on start
(max_msgs, max_bytes, max_age): pass the server's configuration file with
--stan-config, otherwise the server's defaults are assumed.
`

func (d *dirOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&d.dir, "stan-dir", "", "read a stopped STAN server's file store directory instead of a running server (env STAN_DIR)")
	f.StringVar(&d.config, "stan-config", "", "with --stan-dir: the STAN server's configuration file, for the store limits the directory does not record")
	f.BoolVar(&d.skipBroken, "skip-broken", false, "with --stan-dir: leave out (and report) channels whose files cannot be read, instead of failing")
}

// resolve applies STAN_DIR under the flag and checks the combination.
func (d *dirOptions) resolve(flags *pflag.FlagSet, env environment) error {
	if !flags.Changed("stan-dir") {
		if v := env["STAN_DIR"]; v != "" {
			d.dir = v
		}
	}
	if d.dir == "" {
		if d.config != "" || d.skipBroken {
			return usageError{errors.New("--stan-config and --skip-broken only apply with --stan-dir")}
		}
		return nil
	}
	for _, f := range []string{"stan-url", "stan-monitor", "no-monitor"} {
		if flags.Lookup(f) != nil && flags.Changed(f) {
			return usageError{fmt.Errorf("--stan-dir replaces --%s: give one or the other", f)}
		}
	}
	return nil
}

// openSource opens what the flags name as the source: a store directory
// (--stan-dir), a live server through its monitoring endpoint, or, without
// monitoring, a live server whose channels and durables p lists. sessions
// is how many STAN connections reads spread over.
func (g *globalOptions) openSource(ctx context.Context, d dirOptions, p *plan.Plan, sessions int) (source.Source, error) {
	if d.dir != "" {
		return dir.Open(ctx, d.dir, dir.Options{Config: d.config, ClusterID: g.explicitCluster()})
	}
	o := live.Options{ClusterID: g.cluster, STAN: g.stan, Sessions: sessions}
	if mon := g.monitor(); mon != nil {
		return live.NewMonitored(ctx, o, mon, g.monitorURL)
	}
	if p == nil {
		return nil, usageError{errors.New("planning needs the STAN monitoring endpoint (--stan-monitor); without it, write the plan file by hand (docs/commands.md, --no-monitor) and pass it to migrate with --plan")}
	}
	return live.NewUnmonitored(o, p.SourceChannels()), nil
}

// explicitCluster is --cluster (or STAN_CLUSTER) when the operator gave
// it, "" when it is only the default: a directory knows its cluster.
func (g *globalOptions) explicitCluster() string {
	if (g.flags != nil && g.flags.Changed("cluster")) || g.env["STAN_CLUSTER"] != "" {
		return g.cluster
	}
	return ""
}

// skipUnreadable marks the plan's channels the source cannot read as
// skipped and says so on w (--skip-broken); without it they stay, and
// migrate stops on them while verify reports them as differences.
func skipUnreadable(ctx context.Context, w io.Writer, p *plan.Plan, src source.Source, skip bool) {
	if !skip {
		return
	}
	for i := range p.Channels {
		c := &p.Channels[i]
		sc, err := src.Channel(ctx, c.Name)
		if err != nil || sc.Err == nil {
			continue
		}
		c.Skip = true
		fmt.Fprintf(w, "stanmigrate: skipped channel %q (--skip-broken): %v\n", c.Name, sc.Err)
	}
}

// loadPlan reads a plan file and applies its auth references for the
// sides no security flag was given for. The plan names its STAN cluster,
// so --cluster is only needed to say otherwise.
func (g *globalOptions) loadPlan(path string) (*plan.Plan, error) {
	return g.adoptPlan(plan.Load(path))
}

// planOrDiscover loads --plan, or without one discovers a plan with the
// defaults (R1, full headers), as migrate and verify both allow.
func (g *globalOptions) planOrDiscover(ctx context.Context, io *iostreams, planFile string, dir dirOptions) (*plan.Plan, error) {
	if planFile != "" {
		return g.loadPlan(planFile)
	}
	return makePlan(ctx, &planOptions{io: io, global: g, replicas: plan.DefaultReplicas, headers: plan.DefaultHeaders, dir: dir})
}
