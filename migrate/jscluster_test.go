package migrate_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/naming"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/internal/testkit/topotest"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/plan"
	"github.com/stanmigrate/stanmigrate/verify"
)

// clusterSpec has durables whose acknowledged sets have holes (the exact
// state a consumer must reproduce) and bulk channels long enough that a
// failover lands mid-copy.
const clusterSpec = `
channels:
  - name: jobs
    messages: 12
    size: 64
    subscriptions:
      - client_id: worker
        durable: w
        at: 5
        max_inflight: 10
        ack: "1,3"
      - queue: crew
        durable: q
        members: [crew-1, crew-2]
        at: 5
        max_inflight: 10
        ack: "1,3"
  - name: bulk.a
    messages: 20000
    size: 256
  - name: bulk.b
    messages: 20000
    size: 256
`

// migrateIntoCluster plans the spec onto a three-node JetStream cluster
// with R3 streams placed by cluster name and tag, migrates while fault
// runs once a third is copied, and checks the outcome: the streams are
// identical (verify), they sit where the plan put them, and the consumers
// deliver exactly STAN's pending messages and then the unsent ones.
func migrateIntoCluster(t *testing.T, fault func(c *embedded.JetStreamCluster)) {
	t.Helper()
	migrateIntoClusterWith(t, embedded.JetStreamClusterConfig{}, fault)
}

// migrateIntoClusterWith is migrateIntoCluster on a cluster started with
// cfg (Partitionable, for a crash).
func migrateIntoClusterWith(t *testing.T, cfg embedded.JetStreamClusterConfig, fault func(c *embedded.JetStreamCluster)) {
	t.Helper()
	spec, err := fixture.Parse("cluster", []byte(clusterSpec))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	env, err := testenv.Start(ctx, t.TempDir(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	env.Seeded.Close()
	cl := topotest.JetStreamCluster(t, cfg)
	target := conn.Side{Name: "JetStream", URL: cl.URLs()}
	src := env.Src(t)
	d, err := plan.Discover(ctx, src, target)
	if err != nil {
		t.Fatal(err)
	}
	placement := &plan.Placement{Cluster: cl.Name(), Tags: []string{embedded.ClusterTag}}
	p := plan.Build(d, plan.Options{Replicas: 3, Placement: placement, Now: time.Now()})
	if b := p.Blockers(); len(b) > 0 {
		t.Fatalf("blockers: %+v", b)
	}
	rep := newFailoverReporter(p.Totals.Msgs/3, func() { fault(cl) })
	start := time.Now()
	sum, err := migrate.Run(ctx, src, p, migrate.Options{Target: target, State: state.NewDir(t.TempDir()), Reporter: rep})
	ended := time.Now()
	if err != nil {
		t.Fatalf("migrate through the fault: %v\nevents:\n%s", err, strings.Join(rep.events, "\n"))
	}
	t.Logf("migrated %d message(s) in %v; copying stopped for at most %v after the fault", sum.Copied, ended.Sub(start).Round(time.Millisecond), rep.gap().Round(time.Millisecond))
	t.Logf("events:\n%s", strings.Join(rep.events, "\n"))
	rep.faultLanded(t, ended)
	if sum.Copied != p.Totals.Msgs {
		t.Errorf("the summary counts %d message(s) copied; %d were, each once", sum.Copied, p.Totals.Msgs)
	}
	for _, e := range rep.events {
		if strings.Contains(e, "no acknowledgement from JetStream within") {
			t.Errorf("the run waited out the acknowledgement timeout instead of reacting to the failover: %s", e)
		}
	}
	vr, err := verify.Run(ctx, src, p, verify.Options{Target: target})
	if err != nil {
		for _, c := range vr.Channels {
			if !c.OK && c.Problem != "" {
				t.Errorf("%s", c.Problem)
			}
		}
		for _, c := range vr.Consumers {
			if !c.OK {
				t.Errorf("%s", c.Problem)
			}
		}
		t.Fatalf("verify after the fault: %v", err)
	}

	_, js := topotest.JetStream(t, cl.URLs())
	for _, c := range p.Channels {
		s, err := js.Stream(ctx, c.Stream)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		if cfg.Replicas != 3 || cfg.Placement == nil || cfg.Placement.Cluster != cl.Name() || !slices.Equal(cfg.Placement.Tags, placement.Tags) {
			t.Errorf("stream %q: %d replica(s), placement %+v; the plan says 3 in %s", c.Stream, cfg.Replicas, cfg.Placement, placement)
		}
	}
	// Acknowledged on STAN: 1 and 3; pending: 2, 4, 5; never sent: 6..12.
	want := []uint64{2, 4, 5, 6, 7, 8}
	for _, name := range []string{naming.ConsumerName("worker", "w", ""), naming.ConsumerName("", "q", "crew")} {
		if got := pullDeliveries(t, ctx, js, "jobs", name, len(want)); !slices.Equal(got, want) {
			t.Errorf("consumer %q delivers %v, want %v", name, got, want)
		}
	}
}

// TestJetStreamClusterStreamLeaderRestartMidMigrate shuts the leader of
// a stream being copied down mid-run and starts it again: the run
// notices the leader moved instead of waiting out the acknowledgement
// timeout, and ends identical with exact consumers.
func TestJetStreamClusterStreamLeaderRestartMidMigrate(t *testing.T) {
	migrateIntoCluster(t, func(c *embedded.JetStreamCluster) {
		i := c.StreamLeader("bulk_a")
		if i < 0 {
			t.Errorf("stream bulk_a has no leader to shut down")
			return
		}
		c.Node(i).Shutdown()
		to, err := c.WaitStreamLeader("bulk_a", i, time.Minute)
		if err != nil {
			t.Errorf("no new leader for bulk_a: %v", err)
		}
		t.Logf("stream leader of bulk_a moved from node %d to node %d", i, to)
		if err := c.Node(i).Restart(); err != nil {
			t.Errorf("restart node %d: %v", i, err)
		}
	})
}

// TestJetStreamClusterMetaLeaderRestartMidMigrate does the same to the
// meta leader, which serves the API calls that create streams and
// consumers.
func TestJetStreamClusterMetaLeaderRestartMidMigrate(t *testing.T) {
	migrateIntoCluster(t, func(c *embedded.JetStreamCluster) {
		i := c.MetaLeader()
		if i < 0 {
			t.Errorf("no meta leader to shut down")
			return
		}
		c.Node(i).Shutdown()
		to, err := c.WaitMetaLeader(i, time.Minute)
		if err != nil {
			t.Errorf("no new meta leader: %v", err)
		}
		t.Logf("meta leader moved from node %d to node %d", i, to)
		if err := c.Node(i).Restart(); err != nil {
			t.Errorf("restart node %d: %v", i, err)
		}
	})
}

// TestJetStreamClusterStreamLeaderCrashMidMigrate crashes the leader of a
// stream being copied: its routes are cut and it stops, so there is no
// leadership hand-over and the other two elect a new leader only when
// their election timers run out (4-9 s in nats-server). The run rides it
// out and ends identical with exact consumers; what it costs is logged
// ("copying stopped for at most").
func TestJetStreamClusterStreamLeaderCrashMidMigrate(t *testing.T) {
	migrateIntoClusterWith(t, embedded.JetStreamClusterConfig{Partitionable: true}, func(c *embedded.JetStreamCluster) {
		i := c.StreamLeader("bulk_a")
		if i < 0 {
			t.Errorf("stream bulk_a has no leader to crash")
			return
		}
		crashed := time.Now()
		if err := c.Node(i).Kill(); err != nil {
			t.Errorf("crash node %d: %v", i, err)
			return
		}
		to, err := c.WaitStreamLeader("bulk_a", i, time.Minute)
		if err != nil {
			t.Errorf("no new leader for bulk_a: %v", err)
		}
		t.Logf("stream leader of bulk_a crashed on node %d; node %d leads %v later", i, to, time.Since(crashed).Round(time.Millisecond))
		if err := c.Node(i).Start(); err != nil {
			t.Errorf("start node %d again: %v", i, err)
		}
	})
}
