// Package testenv sets up what integration tests and the demo share: a
// STAN server seeded from a fixture, a JetStream target, and the
// connection settings the libraries take.
package testenv

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/monitor"
	"github.com/stanmigrate/stanmigrate/internal/source/live"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/topotest"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/plan"
)

// Env is a seeded STAN source and an empty JetStream target.
type Env struct {
	Pair   *embedded.Pair
	Spec   *fixture.Spec
	Seeded *fixture.Seeded
	Root   string
}

// Start starts both servers under root and seeds spec.
func Start(ctx context.Context, root string, spec *fixture.Spec) (*Env, error) {
	pair, err := embedded.StartPair(root, spec.StoreLimits())
	if err != nil {
		return nil, err
	}
	seeded, err := fixture.Seed(ctx, pair.STAN.URL(), pair.STAN.ClusterID(), spec, fixture.WithMonitor(pair.STAN.MonitorURL()))
	if err != nil {
		pair.Stop()
		return nil, fmt.Errorf("seed fixture: %w", err)
	}
	return &Env{Pair: pair, Spec: spec, Seeded: seeded, Root: root}, nil
}

// Stop closes seeded clients and stops both servers.
func (e *Env) Stop() {
	if e.Seeded != nil {
		e.Seeded.Close()
	}
	e.Pair.Stop()
}

// STAN is the source connection description.
func (e *Env) STAN() conn.Side { return conn.Side{Name: "STAN", URL: e.Pair.STAN.URL()} }

// Target is the JetStream connection description.
func (e *Env) Target() conn.Side { return conn.Side{Name: "JetStream", URL: e.Pair.JetStream.URL()} }

// Monitor is a monitoring client for the STAN server.
func (e *Env) Monitor() *monitor.Client { return monitor.New(e.Pair.STAN.MonitorURL(), nil) }

// Source is the STAN server as a monitored source; the caller closes it.
func (e *Env) Source(ctx context.Context) (*live.Monitored, error) {
	return live.NewMonitored(ctx, live.Options{ClusterID: e.Pair.STAN.ClusterID(), STAN: e.STAN()},
		e.Monitor(), e.Pair.STAN.MonitorURL())
}

// Plan discovers and maps with default options.
func (e *Env) Plan(ctx context.Context) (*plan.Plan, error) {
	src, err := e.Source(ctx)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	d, err := plan.Discover(ctx, src, e.Target())
	if err != nil {
		return nil, err
	}
	return plan.Build(d, plan.Options{Now: time.Now()}), nil
}

// MigrateOptions are the options migrate needs for this environment.
func (e *Env) MigrateOptions() migrate.Options {
	return migrate.Options{Target: e.Target(), State: state.NewDir(filepath.Join(e.Root, "state"))}
}

// Src is the STAN server as a monitored source for a test, closed when
// the test ends.
func (e *Env) Src(t testing.TB) *live.Monitored {
	t.Helper()
	return Monitored(t, e.Pair.STAN.ClusterID(), e.Pair.STAN.URL(), e.Pair.STAN.MonitorURL())
}

// Monitored is a monitored live source for a test, closed when the test
// ends.
func Monitored(t testing.TB, clusterID, stanURL, monitorURL string) *live.Monitored {
	t.Helper()
	return MonitoredNodes(t, clusterID, stanURL, []string{monitorURL})
}

// MonitoredNodes is Monitored for a STAN of several nodes (clustered or
// FT): stanURLs and monitors list every node, and the source reads the
// leading node's monitoring.
func MonitoredNodes(t testing.TB, clusterID, stanURLs string, monitors []string) *live.Monitored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list := strings.Join(monitors, ",")
	src, err := live.NewMonitored(ctx, live.Options{ClusterID: clusterID, STAN: conn.Side{Name: "STAN", URL: stanURLs}},
		monitor.Open(list, nil), list)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// StartFixture starts an environment seeded from a fixture file for a
// test, stopped when the test ends.
func StartFixture(t testing.TB, path string) *Env {
	t.Helper()
	spec, err := fixture.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, err := Start(ctx, t.TempDir(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	return env
}

// JS is a JetStream client on the target for a test, closed when the
// test ends.
func (e *Env) JS(t testing.TB) jetstream.JetStream {
	t.Helper()
	_, js := topotest.JetStream(t, e.Pair.JetStream.URL())
	return js
}
