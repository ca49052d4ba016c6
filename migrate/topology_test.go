package migrate_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/monitor"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/internal/testkit/topotest"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/plan"
	"github.com/stanmigrate/stanmigrate/verify"
)

// topologySpec is what the topology tests migrate: three channels, enough
// messages that a failover lands mid-copy, and durables with pending
// messages (probed, then settled exactly) and without.
const topologySpec = `
channels:
  - name: orders
    messages: 12000
    size: 256
    subscriptions:
      - client_id: billing
        durable: invoicer
        at: 12000
        ack: all
      - client_id: audit
        durable: trail
        at: 300
        max_inflight: 400
        ack: "1-40,42,45-290"
  - name: payments
    messages: 12000
    size: 256
    subscriptions:
      - queue: settlers
        durable: settle
        members: [settler-1, settler-2]
        at: 900
        max_inflight: 500
        ack: "1-169,171-899"
  - name: audit.log
    messages: 12000
    size: 512
`

// failoverReporter records when messages were copied and which events a
// run reported, so a test can tell what a fault cost and how the run
// noticed it.
type failoverReporter struct {
	mu      sync.Mutex
	copied  uint64
	lastAt  time.Time
	faultAt time.Time
	// stalled is the longest time without progress since the fault.
	stalled time.Duration
	events  []string
	trigger uint64
	fault   func()
	once    sync.Once
	// faultDone is closed when fault returned.
	faultDone chan struct{}
}

func newFailoverReporter(trigger uint64, fault func()) *failoverReporter {
	return &failoverReporter{trigger: trigger, fault: fault, faultDone: make(chan struct{})}
}

// faultLanded waits for the fault to finish (a restart still running would
// outlive the test) and fails unless it began before the run ended.
func (r *failoverReporter) faultLanded(t *testing.T, runEnded time.Time) {
	t.Helper()
	r.mu.Lock()
	at := r.faultAt
	r.mu.Unlock()
	if at.IsZero() || !at.Before(runEnded) {
		t.Fatal("the fault never ran during the migration: it finished first")
	}
	select {
	case <-r.faultDone:
	case <-time.After(2 * time.Minute):
		t.Fatal("the fault is still running two minutes after the migration ended")
	}
}

func (r *failoverReporter) Begin(uint64, uint64) {}

func (r *failoverReporter) Progress(m, _ uint64) {
	r.mu.Lock()
	r.copied += m
	now := time.Now()
	if !r.faultAt.IsZero() {
		since := r.lastAt
		if since.Before(r.faultAt) {
			since = r.faultAt
		}
		r.stalled = max(r.stalled, now.Sub(since))
	}
	r.lastAt = now
	fire := r.copied >= r.trigger
	r.mu.Unlock()
	if fire {
		r.once.Do(func() {
			go func() {
				defer close(r.faultDone)
				r.mu.Lock()
				r.faultAt = time.Now()
				r.mu.Unlock()
				r.fault()
			}()
		})
	}
}

func (r *failoverReporter) Event(e migrate.Event) {
	r.mu.Lock()
	r.events = append(r.events, string(e.Kind)+" "+e.Channel+": "+e.Message)
	r.mu.Unlock()
}

// gap is the longest time the run copied nothing after the fault.
func (r *failoverReporter) gap() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stalled
}

// migrateThroughFault seeds spec on a STAN deployment (URLs and every
// node's monitoring), plans it through the leading node, migrates into a
// fresh JetStream server while fault runs once a third is copied, and
// verifies the result: streams identical, consumers at their durables'
// positions. It returns the reporter.
func migrateThroughFault(t *testing.T, clusterID string, urls string, monitors []string, fault func()) *failoverReporter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	spec, err := fixture.Parse("topology", []byte(topologySpec))
	if err != nil {
		t.Fatal(err)
	}
	mon := monitor.Open(strings.Join(monitors, ","), nil)
	seeded, err := fixture.Seed(ctx, urls, clusterID, spec, fixture.WithMonitorClient(mon))
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	seeded.Close()
	js, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(js.Stop)
	target := conn.Side{Name: "JetStream", URL: js.URL()}
	src := testenv.MonitoredNodes(t, clusterID, urls, monitors)
	d, err := plan.Discover(ctx, src, target)
	if err != nil {
		t.Fatal(err)
	}
	p := plan.Build(d, plan.Options{Now: time.Now()})
	if b := p.Blockers(); len(b) > 0 {
		t.Fatalf("blockers: %+v", b)
	}
	rep := newFailoverReporter(p.Totals.Msgs/3, fault)
	start := time.Now()
	sum, err := migrate.Run(ctx, src, p, migrate.Options{Target: target, State: state.NewDir(t.TempDir()), Reporter: rep})
	ended := time.Now()
	if err != nil {
		t.Fatalf("migrate through the fault: %v\nevents:\n%s", err, strings.Join(rep.events, "\n"))
	}
	t.Logf("migrated %d message(s) in %v; copying stopped for at most %v after the fault", sum.Copied, ended.Sub(start).Round(time.Millisecond), rep.gap().Round(time.Millisecond))
	rep.faultLanded(t, ended)
	if sum.Copied != p.Totals.Msgs {
		t.Errorf("the summary counts %d message(s) copied; %d were, each once", sum.Copied, p.Totals.Msgs)
	}
	vr, err := verify.Run(ctx, src, p, verify.Options{Target: target})
	if err != nil {
		for _, c := range vr.Channels {
			if !c.OK {
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
	verified := map[string]string{}
	for _, v := range vr.Channels {
		verified[v.Channel] = v.Target.SHA256
	}
	if len(sum.Channels) != len(p.Channels) {
		t.Errorf("migrate reports %d channel(s), the plan has %d", len(sum.Channels), len(p.Channels))
	}
	for _, c := range sum.Channels {
		if h, ok := verified[c.Channel]; !ok || h != c.Sum {
			t.Errorf("channel %q: migrate reports content hash %s, verify hashed the stream as %q", c.Channel, c.Sum, h)
		}
	}
	t.Logf("events:\n%s", strings.Join(rep.events, "\n"))
	for _, e := range rep.events {
		if strings.Contains(e, "no message from STAN") {
			t.Errorf("the run waited for the stall timer instead of reacting to the failover: %s", e)
		}
	}
	return rep
}

// TestClusteredSTANLeaderRestartMidMigrate migrates from a three-node
// clustered STAN (Raft) whose leader is restarted once a third of the
// messages are copied: the run reacts to the reconnect, re-reads from
// where the streams stand, and ends identical, with every consumer at its
// durable's position. --stan-monitor lists every node; discovery reads the
// leader's.
func TestClusteredSTANLeaderRestartMidMigrate(t *testing.T) {
	c := topotest.STANCluster(t, embedded.STANClusterConfig{}.FastRaft())
	migrateThroughFault(t, c.ClusterID(), c.URLs(), c.MonitorURLs(), func() {
		old, leader, err := c.RestartLeader(time.Minute)
		if err != nil {
			t.Errorf("restart the STAN leader: %v", err)
			return
		}
		t.Logf("STAN leader moved from node %d to node %d", old, leader)
	})
}

// TestFaultTolerantSTANFailoverMidMigrate migrates from an FT pair (active
// and standby on one store) whose active server is killed once a third is
// copied: the standby takes over, and the run ends identical.
func TestFaultTolerantSTANFailoverMidMigrate(t *testing.T) {
	f := topotest.STANFT(t, embedded.STANFTConfig{})
	migrateThroughFault(t, f.ClusterID(), f.URLs(), f.MonitorURLs(), func() {
		old, err := f.KillActive()
		if err != nil {
			t.Errorf("kill the active STAN server: %v", err)
			return
		}
		now, err := f.WaitActive(old, time.Minute)
		if err != nil {
			t.Errorf("no standby took over: %v", err)
			return
		}
		t.Logf("active STAN server moved from node %d to node %d", old, now)
		if err := f.Restart(old); err != nil {
			t.Errorf("restart the old active server as a standby: %v", err)
		}
	})
}

// TestPlanFromEveryNodeReadsTheLeader lists a follower's monitoring first
// in --stan-monitor: the plan still comes from the leader (whose last_sent
// and pending counts are current), and names its endpoint.
func TestPlanFromEveryNodeReadsTheLeader(t *testing.T) {
	c := topotest.STANCluster(t, embedded.STANClusterConfig{}.FastRaft())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spec, err := fixture.Parse("core", []byte(topologySpec))
	if err != nil {
		t.Fatal(err)
	}
	leader := c.Leader()
	monitors := c.MonitorURLs()
	// Followers first.
	ordered := append([]string{}, monitors[:leader]...)
	ordered = append(ordered, monitors[leader+1:]...)
	ordered = append(ordered, monitors[leader])
	mon := monitor.Open(strings.Join(ordered, ","), nil)
	seeded, err := fixture.Seed(ctx, c.URLs(), c.ClusterID(), spec, fixture.WithMonitorClient(mon))
	if err != nil {
		t.Fatal(err)
	}
	seeded.Close()
	js, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(js.Stop)
	src := testenv.MonitoredNodes(t, c.ClusterID(), c.URLs(), ordered)
	d, err := plan.Discover(ctx, src, conn.Side{Name: "JetStream", URL: js.URL()})
	if err != nil {
		t.Fatal(err)
	}
	p := plan.Build(d, plan.Options{Now: time.Now()})
	if p.Source.Monitor != monitor.New(monitors[leader], nil).URL() {
		t.Errorf("the plan names monitoring %q, the leader's is %q", p.Source.Monitor, monitors[leader])
	}
	exp := spec.Expect()
	if len(p.Channels) != len(exp) {
		t.Errorf("the plan has %d channel(s), STAN %d", len(p.Channels), len(exp))
	}
	compared := 0
	for _, pc := range p.Channels {
		e := exp[pc.Name]
		if pc.FirstSeq != e.FirstSeq || pc.LastSeq != e.LastSeq || pc.Msgs != e.Msgs {
			t.Errorf("channel %q planned %d..%d (%d), STAN holds %d..%d (%d)", pc.Name, pc.FirstSeq, pc.LastSeq, pc.Msgs, e.FirstSeq, e.LastSeq, e.Msgs)
		}
		for _, du := range pc.Durables {
			for k, de := range e.Durables {
				if k.Durable != du.Durable || k.Queue != du.QueueGroup || (k.Queue == "" && k.ClientID != du.ClientID) {
					continue
				}
				compared++
				if du.LastSent != de.LastSent {
					t.Errorf("%s: planned last_sent %d, the durable's is %d", du.Describe(pc.Name), du.LastSent, de.LastSent)
				}
			}
		}
	}
	wantDurables := 0
	for _, e := range exp {
		wantDurables += len(e.Durables)
	}
	if compared != wantDurables {
		t.Errorf("compared the last_sent of %d planned durable(s) with STAN's, want all %d", compared, wantDurables)
	}
}
