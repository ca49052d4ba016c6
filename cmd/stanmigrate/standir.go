package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats-streaming-server/stores"
	"github.com/spf13/pflag"

	"github.com/stanmigrate/stanmigrate/internal/stanstore"
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
func (d *dirOptions) resolve(flags *pflag.FlagSet) error {
	if !flags.Changed("stan-dir") {
		if v := os.Getenv("STAN_DIR"); v != "" {
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

// open opens the directory read-only with the limits from --stan-config
// (or the server's defaults); limitsFrom names their origin for the plan.
// clusterID, when not empty, must be the directory's.
func (d *dirOptions) open(ctx context.Context, clusterID string) (st *stanstore.Store, limitsFrom string, err error) {
	var o stanstore.Options
	configCluster := ""
	if d.config != "" {
		cfg, err := stanstore.LoadServerConfig(d.config)
		if err != nil {
			return nil, "", usageError{fmt.Errorf("%w: check --stan-config", err)}
		}
		if cfg.StoreType != stores.TypeFile {
			return nil, "", usageError{fmt.Errorf("STAN configuration %s says store type %s: --stan-dir reads file stores only", d.config, cfg.StoreType)}
		}
		o, limitsFrom, configCluster = cfg.Options, "STAN configuration "+d.config, cfg.ClusterID
	}
	st, err = stanstore.Open(ctx, d.dir, o)
	if err != nil {
		if errors.Is(err, stanstore.ErrLocked) || errors.Is(err, stanstore.ErrNotStore) || errors.Is(err, stanstore.ErrBroken) {
			err = usageError{err}
		}
		return nil, "", err
	}
	switch {
	case configCluster != "" && configCluster != st.ClusterID():
		err = fmt.Errorf("STAN configuration %s is for cluster %q, the directory %s belongs to %q: pass the configuration of the server that wrote the directory",
			d.config, configCluster, st.Dir(), st.ClusterID())
	case clusterID != "" && clusterID != st.ClusterID():
		err = fmt.Errorf("the STAN directory %s belongs to cluster %q, not %q: pass --cluster %s (or check --stan-dir)", st.Dir(), st.ClusterID(), clusterID, st.ClusterID())
	}
	if err != nil {
		st.Close()
		return nil, "", usageError{err}
	}
	return st, limitsFrom, nil
}

// explicitCluster is --cluster (or STAN_CLUSTER) when the operator gave
// it, "" when it is only the default: the directory knows its cluster.
func (g *globalOptions) explicitCluster() string {
	if (g.flags != nil && g.flags.Changed("cluster")) || os.Getenv("STAN_CLUSTER") != "" {
		return g.cluster
	}
	return ""
}

// planFromDir is makePlan for the offline source.
func planFromDir(ctx context.Context, g *globalOptions, o *planOptions) (*plan.Plan, error) {
	if o.replicas < 1 || o.replicas > 5 {
		return nil, usageError{fmt.Errorf("--replicas %d: use 1 to 5", o.replicas)}
	}
	if o.headers != plan.HeadersFull && o.headers != plan.HeadersMinimal {
		return nil, usageError{fmt.Errorf("--headers %q: use full or minimal", o.headers)}
	}
	st, limitsFrom, err := o.dir.open(ctx, g.explicitCluster())
	if err != nil {
		return nil, err
	}
	defer st.Close()
	d, err := plan.DiscoverDir(ctx, plan.DirConfig{
		Store: st, LimitsFrom: limitsFrom, SkipBroken: o.dir.skipBroken, Target: g.nats,
	})
	if err != nil {
		return nil, err
	}
	p := plan.Build(d, plan.Options{
		Include: o.include, Exclude: o.exclude, Replicas: o.replicas, Headers: o.headers, Now: time.Now(),
	})
	if errs := d.Offline.Unreadable(p); len(errs) > 0 {
		return nil, usageError{fmt.Errorf("%d channel(s) cannot be read from the STAN directory %s; pass --skip-broken to plan the other channels and skip these:\n%w",
			len(errs), st.Dir(), errors.Join(errs...))}
	}
	p.Target.Auth = authRefs(g.nats, "")
	return p, nil
}

// skipUnreadable marks the plan's channels the directory cannot read as
// skipped (with --skip-broken) and says so on w; without --skip-broken
// they stay, and verify reports them as differences.
func skipUnreadable(w io.Writer, p *plan.Plan, st *stanstore.Store, skip bool) {
	for i := range p.Channels {
		c := &p.Channels[i]
		sc, ok := st.Channel(c.Name)
		if !ok || sc.Err == nil || !skip {
			continue
		}
		c.Skip = true
		fmt.Fprintf(w, "stanmigrate: skipped channel %q (--skip-broken): %v\n", c.Name, sc.Err)
	}
}
