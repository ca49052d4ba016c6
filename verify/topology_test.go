package verify_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/monitor"
	"github.com/stanmigrate/stanmigrate/internal/naming"
	"github.com/stanmigrate/stanmigrate/internal/source/live"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/internal/testkit/topotest"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/plan"
	"github.com/stanmigrate/stanmigrate/verify"
)

// haPair is the production shape: a fault-tolerant STAN pair (active and
// standby on one store) holding one channel of seeded messages, migrated
// into R3 streams on a three-node JetStream cluster. stanURL picks which
// of the pair's servers the source connects to (nil: both).
type haPair struct {
	ctx    context.Context
	ft     *embedded.STANFT
	cl     *embedded.JetStreamCluster
	src    *live.Monitored
	plan   *plan.Plan
	target conn.Side
	mo     migrate.Options
}

func startHAPair(t *testing.T, channel string, seeded int, stanURL func(*embedded.STANFT) string) *haPair {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	t.Cleanup(cancel)
	ft := topotest.STANFT(t, embedded.STANFTConfig{})
	monitors := strings.Join(ft.MonitorURLs(), ",")
	spec := &fixture.Spec{Channels: []fixture.Channel{{Name: channel, Messages: seeded, Size: 64}}}
	s, err := fixture.Seed(ctx, ft.URLs(), ft.ClusterID(), spec, fixture.WithMonitorClient(monitor.Open(monitors, nil)))
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	s.Close()
	cl := topotest.JetStreamCluster(t, embedded.JetStreamClusterConfig{})
	h := &haPair{ctx: ctx, ft: ft, cl: cl, target: conn.Side{Name: "JetStream", URL: cl.URLs()}}
	urls := ft.URLs()
	if stanURL != nil {
		urls = stanURL(ft)
	}
	h.src = testenv.MonitoredNodes(t, ft.ClusterID(), urls, ft.MonitorURLs())
	d, err := plan.Discover(ctx, h.src, h.target)
	if err != nil {
		t.Fatal(err)
	}
	h.plan = plan.Build(d, plan.Options{Replicas: 3, Now: time.Now()})
	if b := h.plan.Blockers(); len(b) > 0 {
		t.Fatalf("blockers: %+v", b)
	}
	h.mo = migrate.Options{Target: h.target, State: state.NewDir(filepath.Join(t.TempDir(), "migrate"))}
	if _, err := migrate.Run(ctx, h.src, h.plan, h.mo); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return h
}

// failOver kills the active STAN server, waits for the standby to take
// over and starts the old one again as a standby.
func (h *haPair) failOver(t *testing.T) error {
	old, err := h.ft.KillActive()
	if err != nil {
		return err
	}
	now, err := h.ft.WaitActive(old, time.Minute)
	if err != nil {
		return fmt.Errorf("no standby took over: %w", err)
	}
	t.Logf("active STAN server moved from node %d to node %d", old, now)
	return h.ft.Restart(old)
}

// TestFollowRidesOutAnFTFailoverAndAStreamLeaderChange runs verify
// --follow in the production shape (haPair) while the active STAN server
// is killed (the standby takes over) and then the stream's leader is shut
// down (another node takes over): verify keeps running, moves the
// verified prefix over what migrate copied after each fault, and finishes
// clean with the whole channel accounted for.
func TestFollowRidesOutAnFTFailoverAndAStreamLeaderChange(t *testing.T) {
	const channel, seeded, more = "ride.ha", 3000, 500
	h := startHAPair(t, channel, seeded, nil)
	stream := naming.StreamName(channel)
	followThroughFaults(t, followRig{
		ctx: h.ctx, channel: channel, seeded: seeded, more: more,
		verify: func(o verify.Options) (*verify.Report, error) {
			o.Target = h.target
			return verify.Run(h.ctx, h.src, h.plan, o)
		},
		publish: func(from, n int) { publishTo(t, h.ft.URLs(), h.ft.ClusterID(), channel, from, n) },
		migrate: func() error { _, err := migrate.Run(h.ctx, h.src, h.plan, h.mo); return err },
	}, []fault{
		{"the active STAN server killed", func() error { return h.failOver(t) }},
		{"the stream leader shut down", func() error {
			i := h.cl.StreamLeader(stream)
			if i < 0 {
				return fmt.Errorf("stream %q has no leader", stream)
			}
			h.cl.Node(i).Shutdown()
			to, err := h.cl.WaitStreamLeader(stream, i, time.Minute)
			if err != nil {
				return fmt.Errorf("no new leader: %w", err)
			}
			t.Logf("leader of stream %q moved from node %d to node %d", stream, i, to)
			return h.cl.Node(i).Restart()
		}},
	})
}

// TestVerifyRidesOutAnFTFailoverMidRead kills the active STAN server
// while verify is reading the channel (its first progress report), with
// the source connected to that server alone: the read ends with the
// connection, verify reads again from where it stopped once the standby
// took over, and the channel is verified identical, every message counted
// once. Before verify read again, this run failed with "STAN connection
// lost"; a failover that left a window unfinished instead made it report
// the rest of the stream as extra.
func TestVerifyRidesOutAnFTFailoverMidRead(t *testing.T) {
	const channel, seeded = "ride.read", 20000
	h := startHAPair(t, channel, seeded, func(ft *embedded.STANFT) string { return ft.URLList()[ft.Active()] })
	defer verify.SetProgressInterval(verify.SetProgressInterval(0))
	rep := &faultAtProgress{fault: func() error { return h.failOver(t) }}
	vr, err := verify.Run(h.ctx, h.src, h.plan, verify.Options{Target: h.target, Reporter: rep})
	if !rep.fired.Load() {
		t.Fatal("the fault never ran: verify reported no progress mid-read")
	}
	if rep.err != nil {
		t.Fatalf("fail over: %v", rep.err)
	}
	if err != nil {
		for _, c := range vr.Channels {
			t.Logf("%s: %s", c.Channel, c.Problem)
		}
		t.Fatalf("verify through the failover: %v", err)
	}
	if c := vr.Channels[0]; !c.OK || c.Read != seeded || c.Source.Msgs != seeded || c.Target.Msgs != seeded {
		t.Fatalf("channel %s: ok=%v, read %d, source %d, stream %d; want all %d, identical", c.Channel, c.OK, c.Read, c.Source.Msgs, c.Target.Msgs, seeded)
	}
	if rep.checked.Load() != seeded {
		t.Errorf("verify reported %d message(s) checked; the channel holds %d", rep.checked.Load(), seeded)
	}
}

// faultAtProgress runs fault inside the first progress report, on the
// goroutine that merges the channel, so the read is surely mid-way.
type faultAtProgress struct {
	fault   func() error
	fired   atomic.Bool
	err     error
	checked atomic.Uint64
}

func (r *faultAtProgress) Begin(uint64, uint64) {}

func (r *faultAtProgress) Progress(_ string, n uint64) {
	r.checked.Add(n)
	if r.fired.CompareAndSwap(false, true) {
		r.err = r.fault()
	}
}

// publishTo publishes n more messages to channel, numbered from from,
// through any of the servers in urls.
func publishTo(t *testing.T, urls, clusterID, channel string, from, n int) {
	t.Helper()
	sc, err := stan.Connect(clusterID, "more-producer", stan.NatsURL(urls))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	for i := from; i < from+n; i++ {
		if err := sc.Publish(channel, fmt.Appendf(nil, "more-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
}
