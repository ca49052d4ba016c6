package monitor

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
)

// TestNodesDoNotTrustAStandbyOnTheLeadersPort kills an FT pair's active
// server and restarts it at once as a standby, on the ports Nodes had
// chosen as the leader's: the standby answers every endpoint with an empty
// state, not an error, and Nodes must read the new active server instead
// of reporting the channel gone.
func TestNodesDoNotTrustAStandbyOnTheLeadersPort(t *testing.T) {
	f, err := embedded.StartSTANFT(embedded.STANFTConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	sc, err := stan.Connect(f.ClusterID(), "pub", stan.NatsURL(f.URLs()))
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, sc, 5, "orders")
	_ = sc.Close()

	ctx := ctxT(t)
	n := Open(strings.Join(f.MonitorURLs(), ","), nil)
	if cz, err := n.Channel(ctx, "orders"); err != nil || cz.Msgs != 5 {
		t.Fatalf("before the failover: channel orders = %+v, %v", cz, err)
	}
	old, err := f.KillActive()
	if err != nil {
		t.Fatal(err)
	}
	now, err := f.WaitActive(old, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Restart(old); err != nil {
		t.Fatal(err)
	}
	t.Logf("active moved from node %d to node %d; node %d back as a standby", old, now, old)

	cz, err := n.Channel(ctx, "orders")
	if err != nil || cz.Msgs != 5 {
		t.Errorf("after the failover: channel orders = %+v, %v; want its 5 messages from the new active server", cz, err)
	}
	sz, err := n.Serverz(ctx)
	if err != nil || sz.ClusterID != f.ClusterID() || sz.State != "FT_ACTIVE" {
		t.Errorf("after the failover: serverz = %+v, %v; want the active server of cluster %q", sz, err, f.ClusterID())
	}
	if n.URL() != f.Node(now).MonitorURL() {
		t.Errorf("reads go to %s, not the active node %d (%s)", n.URL(), now, f.Node(now).MonitorURL())
	}
	all, err := n.Channels(ctx, 0)
	if err != nil || len(all) != 1 {
		t.Errorf("after the failover: %d channel(s), %v; want orders", len(all), err)
	}
}
