package embedded_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
)

// checkFTRoles checks serverz state and isFTActive on every running node.
func checkFTRoles(t *testing.T, f *embedded.STANFT, active int) {
	t.Helper()
	for i := range f.Size() {
		n := f.Node(i)
		if !n.Running() {
			continue
		}
		z, err := n.Serverz()
		if err != nil {
			t.Fatal(err)
		}
		ft, err := embedded.IsFTActive(n.MonitorURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("node %d serverz: state=%q role=%q node_id=%q channels=%d; isFTActive=%v", i, z.State, z.Role, z.NodeID, z.Channels, ft)
		want := "FT_STANDBY"
		if i == active {
			want = "FT_ACTIVE"
		}
		if z.State != want || ft != (i == active) || z.Role != "" {
			t.Fatalf("node %d: state %q isFTActive %v, want %s", i, z.State, ft, want)
		}
	}
}

func TestSTANFTFailover(t *testing.T) {
	start := time.Now()
	f, err := embedded.StartSTANFT(embedded.STANFTConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	active := f.Active()
	t.Logf("FT pair started in %v, node %d active", time.Since(start).Round(time.Millisecond), active)
	checkFTRoles(t, f, active)

	urls := append([]string{f.Node(active).URL()}, f.URLList()...)
	lost := make(chan time.Time, 1)
	sc, _ := stanClient(t, f.ClusterID(), "pub", urls, lost)
	var got collector
	got.seqs = map[uint64]int{}
	sub, err := sc.Subscribe("orders", got.handle, stan.DurableName("d"), stan.DeliverAllAvailable(),
		stan.SetManualAckMode(), stan.AckWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	total := uint64(0)
	pub := func() (time.Duration, int) {
		t.Helper()
		total++
		took, tries, err := stanPublishUntil(sc, "orders", fmt.Appendf(nil, "m%d", total), 30*time.Second)
		if err != nil {
			t.Fatalf("publish %d: %v", total, err)
		}
		return took, tries
	}
	for range 20 {
		pub()
	}
	got.waitAll(t, total, 10*time.Second)

	for round := range 2 {
		down := time.Now()
		old, err := f.KillActive()
		if err != nil {
			t.Fatal(err)
		}
		type activation struct {
			node int
			err  error
			took time.Duration
		}
		activated := make(chan activation, 1)
		go func() {
			a, err := f.WaitActive(old, 30*time.Second)
			activated <- activation{a, err, time.Since(down)}
		}()
		took, tries := pub()
		act := <-activated
		if act.err != nil || act.node < 0 {
			t.Fatalf("round %d: no standby took over from node %d: %v", round, old, act.err)
		}
		t.Logf("node %d active %v after the shutdown", act.node, act.took.Round(time.Millisecond))
		t.Logf("round %d: active node %d shut down: first publish acknowledged %v later (%d tries, PubAckWait %v)", round, old, took.Round(time.Millisecond), tries, pubAckWait)
		for range 10 {
			pub()
		}
		got.waitAll(t, total, 10*time.Second)
		if err := f.Restart(old); err != nil {
			t.Fatal(err)
		}
		if err := f.WaitServing(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		// The restarted node stays in standby.
		time.Sleep(embedded.FTMissedHeartbeatInterval * 3 / 2)
		checkFTRoles(t, f, act.node)
	}
	select {
	case at := <-lost:
		t.Fatalf("STAN connection reported lost at %v", at)
	default:
	}
	got.mu.Lock()
	redelivered := 0
	for _, n := range got.seqs {
		redelivered += n - 1
	}
	got.mu.Unlock()
	t.Logf("%d messages, %d redeliveries", total, redelivered)
}
