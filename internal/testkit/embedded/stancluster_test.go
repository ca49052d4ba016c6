package embedded_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	stand "github.com/nats-io/nats-streaming-server/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
)

// stanClient connects through urls in that order (the first is the node
// the test will shut down), with reconnects to the others.
func stanClient(t *testing.T, clusterID, clientID string, urls []string, lost chan<- time.Time) (stan.Conn, *nats.Conn) {
	t.Helper()
	reconnected := make(chan string, 16)
	nc, err := nats.Connect(strings.Join(urls, ","), nats.DontRandomize(), nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond), nats.ReconnectJitter(0, 0),
		nats.ReconnectHandler(func(nc *nats.Conn) { reconnected <- nc.ConnectedUrl() }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sc, err := stan.Connect(clusterID, clientID, stan.NatsConn(nc), stan.PubAckWait(pubAckWait),
		stan.Pings(1, 30),
		stan.SetConnectionLostHandler(func(_ stan.Conn, err error) {
			t.Logf("STAN connection lost: %v", err)
			if lost != nil {
				lost <- time.Now()
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	go func() {
		for u := range reconnected {
			t.Logf("NATS reconnected to %s", u)
		}
	}()
	return sc, nc
}

// pubAckWait is short so that the retries measure the outage finely.
const pubAckWait = 500 * time.Millisecond

// stanPublishUntil retries a publish until it is acknowledged.
func stanPublishUntil(sc stan.Conn, subj string, data []byte, deadline time.Duration) (time.Duration, int, error) {
	start := time.Now()
	tries := 0
	var last error
	for time.Since(start) < deadline {
		tries++
		if last = sc.Publish(subj, data); last == nil {
			return time.Since(start), tries, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start), tries, last
}

// collector records the sequences a subscription delivers.
type collector struct {
	mu   sync.Mutex
	seqs map[uint64]int
}

func (c *collector) handle(m *stan.Msg) {
	c.mu.Lock()
	c.seqs[m.Sequence]++
	c.mu.Unlock()
	m.Ack()
}

func (c *collector) waitAll(t *testing.T, n uint64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		missing := uint64(0)
		for s := uint64(1); s <= n; s++ {
			if c.seqs[s] == 0 {
				missing++
			}
		}
		c.mu.Unlock()
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscription missing %d of %d messages", missing, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func channelz(t *testing.T, monitorURL, channel string) *stand.Channelz {
	t.Helper()
	resp, err := http.Get(monitorURL + stand.ChannelsPath + "?channel=" + channel)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var z stand.Channelz
	if err := json.NewDecoder(resp.Body).Decode(&z); err != nil {
		t.Fatal(err)
	}
	return &z
}

// TestSTANClusterLeaderRestart restarts the leader of a three-node STAN
// cluster under a client publishing and subscribing through it, with
// shortened Raft timings and (unless -short) the server's defaults.
func TestSTANClusterLeaderRestart(t *testing.T) {
	t.Run("fast", func(t *testing.T) {
		stanClusterLeaderRestart(t, embedded.STANClusterConfig{}.FastRaft())
	})
	t.Run("defaults", func(t *testing.T) {
		timings(t)
		if testing.Short() {
			t.Skip("server-default Raft timings take about 10s")
		}
		stanClusterLeaderRestart(t, embedded.STANClusterConfig{})
	})
}

func stanClusterLeaderRestart(t *testing.T, cfg embedded.STANClusterConfig) {
	cfg.Dir = t.TempDir()
	start := time.Now()
	c, err := embedded.StartSTANCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	leader := c.Leader()
	t.Logf("STAN cluster of %d: leader node %d after %v", c.Size(), leader, time.Since(start).Round(time.Millisecond))
	for i := range c.Size() {
		z, err := c.Node(i).Serverz()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("node %d serverz: state=%q role=%q node_id=%q", i, z.State, z.Role, z.NodeID)
		if z.State != "CLUSTERED" || (i == leader) != (z.Role == "Leader") || (i != leader && z.Role != "Follower") {
			t.Fatalf("node %d: state %q role %q", i, z.State, z.Role)
		}
		if ft, err := embedded.IsFTActive(c.Node(i).MonitorURL()); err != nil || ft {
			t.Fatalf("node %d isFTActive: %v %v", i, ft, err)
		}
	}

	// Connect through the leader's NATS server first.
	urls := append([]string{c.Node(leader).URL()}, c.URLList()...)
	lost := make(chan time.Time, 1)
	sc, _ := stanClient(t, c.ClusterID(), "pub", urls, lost)
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
		took, tries, err := stanPublishUntil(sc, "orders", fmt.Appendf(nil, "m%d", total), 60*time.Second)
		if err != nil {
			t.Fatalf("publish %d: %v", total, err)
		}
		return took, tries
	}
	for range 20 {
		pub()
	}
	got.waitAll(t, total, 10*time.Second)

	down := time.Now()
	c.Shutdown(leader)
	elected := make(chan string, 1)
	go func() {
		l, err := c.WaitLeader(leader, 30*time.Second)
		elected <- fmt.Sprintf("node %d leads %v after the shutdown (%v)", l, time.Since(down).Round(time.Millisecond), err)
	}()
	took, tries := pub()
	t.Log(<-elected)
	t.Logf("leader node %d shut down: first publish acknowledged %v later (%d tries, PubAckWait %v)", leader, took.Round(time.Millisecond), tries, pubAckWait)
	for range 20 {
		pub()
	}
	got.waitAll(t, total, 30*time.Second)
	t.Logf("subscription received all %d messages %v after the shutdown", total, time.Since(down).Round(time.Millisecond))

	if err := c.Restart(leader); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		pub()
	}
	got.waitAll(t, total, 30*time.Second)
	// Every node, followers included, reports the channel once caught up.
	for i, u := range c.MonitorURLs() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			z := channelz(t, u, "orders")
			if z.LastSeq == total && z.Msgs == int(total) {
				t.Logf("node %d channelsz orders: msgs=%d last_seq=%d subs=%d", i, z.Msgs, z.LastSeq, z.SubsCount)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d channelsz orders: %+v, want %d msgs", i, z, total)
			}
			time.Sleep(50 * time.Millisecond)
		}
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

// TestSTANClusterFullRestart stops every node and starts them again: the
// channel and the durable come back.
func TestSTANClusterFullRestart(t *testing.T) {
	timings(t)
	c, err := embedded.StartSTANCluster(embedded.STANClusterConfig{Dir: t.TempDir()}.FastRaft())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	sc, _ := stanClient(t, c.ClusterID(), "c1", c.URLList(), nil)
	for i := range 5 {
		if _, _, err := stanPublishUntil(sc, "ch", fmt.Appendf(nil, "m%d", i), 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	sc.Close()
	c.Stop()
	start := time.Now()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("whole STAN cluster restarted, leader node %d in %v", c.Leader(), time.Since(start).Round(time.Millisecond))
	// Settled means serving: a new client connects and publishes at once.
	sc2, _ := stanClient(t, c.ClusterID(), "c2", c.URLList(), nil)
	if err := sc2.Publish("ch", []byte("m5")); err != nil {
		t.Fatal(err)
	}
	for i, u := range c.MonitorURLs() {
		deadline := time.Now().Add(10 * time.Second)
		for z := channelz(t, u, "ch"); z.LastSeq != 6; z = channelz(t, u, "ch") {
			if time.Now().After(deadline) {
				t.Fatalf("node %d after restart: %+v", i, z)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
