package embedded_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/topotest"
)

func startJSCluster(t *testing.T, cfg embedded.JetStreamClusterConfig) *embedded.JetStreamCluster {
	t.Helper()
	start := time.Now()
	cfg.Dir = t.TempDir()
	c, err := embedded.StartJetStreamCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	t.Logf("cluster of %d ready in %v (meta leader node %d)", c.Size(), time.Since(start).Round(time.Millisecond), c.MetaLeader())
	return c
}

// jsClient connects to every node; failover happens on the client side.
func jsClient(t *testing.T, c *embedded.JetStreamCluster) jetstream.JetStream {
	t.Helper()
	_, js := topotest.JetStream(t, c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	return js
}

// publishUntil publishes msg, retrying until it is acknowledged or the
// deadline passes; it returns the ack and how long it took.
func publishUntil(ctx context.Context, js jetstream.JetStream, subj, msg string, deadline time.Duration) (*jetstream.PubAck, time.Duration, error) {
	start := time.Now()
	var last error
	for time.Since(start) < deadline {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		ack, err := js.Publish(pctx, subj, []byte(msg), jetstream.WithMsgID(msg), jetstream.WithRetryAttempts(0))
		cancel()
		if err == nil {
			return ack, time.Since(start), nil
		}
		last = err
		time.Sleep(10 * time.Millisecond)
	}
	return nil, time.Since(start), fmt.Errorf("publish %s: %w", msg, last)
}

func createR3(t *testing.T, ctx context.Context, c *embedded.JetStreamCluster, js jetstream.JetStream, name string) {
	t.Helper()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       name,
		Subjects:   []string{name + ".>"},
		Storage:    jetstream.FileStorage,
		Replicas:   3,
		Duplicates: time.Minute,
		Placement:  &jetstream.Placement{Cluster: c.Name(), Tags: []string{embedded.ClusterTag}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitStreamLeader(name, -1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestJetStreamClusterStreamLeaderFailover(t *testing.T) {
	c := startJSCluster(t, embedded.JetStreamClusterConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js := jsClient(t, c)
	createR3(t, ctx, c, js, "ORDERS")

	n := 0
	pub := func() time.Duration {
		t.Helper()
		n++
		ack, took, err := publishUntil(ctx, js, "ORDERS.x", fmt.Sprintf("m%d", n), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if ack.Duplicate || ack.Sequence != uint64(n) {
			t.Fatalf("message %d: ack %+v", n, ack)
		}
		return took
	}
	for range 10 {
		pub()
	}
	old := c.StreamLeader("ORDERS")
	start := time.Now()
	c.Node(old).Shutdown()
	down := time.Since(start)
	leader, err := c.WaitStreamLeader("ORDERS", old, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	elected := time.Since(start)
	took := pub()
	t.Logf("stream leader node %d shut down in %v; node %d elected %v after the shutdown began; first publish after election took %v",
		old, down.Round(time.Millisecond), leader, elected.Round(time.Millisecond), took.Round(time.Millisecond))
	for range 10 {
		pub()
	}
	if err := c.Node(old).Start(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := c.WaitStreamCurrent(old, "ORDERS", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted node %d caught up in %v", old, time.Since(start).Round(time.Millisecond))
	for i := range c.Size() {
		if st, ok := c.StreamState(i, "ORDERS"); !ok || st.Msgs != uint64(n) {
			t.Fatalf("node %d: %+v %v, want %d msgs", i, st, ok, n)
		}
	}
}

func TestJetStreamClusterMetaLeaderFailover(t *testing.T) {
	c := startJSCluster(t, embedded.JetStreamClusterConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js := jsClient(t, c)
	createR3(t, ctx, c, js, "A")

	meta := c.MetaLeader()
	start := time.Now()
	c.Node(meta).Shutdown()
	leader, err := c.WaitMetaLeader(meta, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	elected := time.Since(start)
	// Publishing into an existing stream does not need the meta group.
	if _, _, err := publishUntil(ctx, js, "A.x", "a1", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// Creating a stream does; two nodes of three are a quorum.
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "B", Subjects: []string{"B.>"}, Replicas: 3})
	if err == nil {
		t.Log("R3 stream created with a node down (placement accepted an offline peer)")
	} else {
		t.Logf("R3 stream with a node down: %v", err)
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "B", Subjects: []string{"B.>"}, Replicas: 1}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("meta leader node %d shut down; node %d elected %v after", meta, leader, elected.Round(time.Millisecond))
	if err := c.Node(meta).Start(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := c.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted node %d current with the meta group in %v", meta, time.Since(start).Round(time.Millisecond))
	if err := c.WaitStreamCurrent(meta, "A", 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestJetStreamClusterKill kills (isolates, then shuts down) the stream
// leader and then the meta leader: no leader hand-over, so the survivors
// elect when their timers run out.
func TestJetStreamClusterKill(t *testing.T) {
	timings(t)
	if testing.Short() {
		t.Skip("two elections on timers run out: about 20s")
	}
	c := startJSCluster(t, embedded.JetStreamClusterConfig{Partitionable: true})
	// Every route runs through the rig's pipes: no route connects to a
	// node's own cluster port.
	for i := range c.Size() {
		rz, err := c.Node(i).Server().Routez(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rz.Routes {
			for j := range c.Size() {
				if r.DidSolicit && r.Port == c.Node(j).ClusterPort() {
					t.Fatalf("node %d routes to node %d directly, bypassing the pipes", i, j)
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	js := jsClient(t, c)
	createR3(t, ctx, c, js, "K")
	n := 0
	pub := func() time.Duration {
		t.Helper()
		n++
		ack, took, err := publishUntil(ctx, js, "K.x", fmt.Sprintf("k%d", n), 60*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if ack.Duplicate || ack.Sequence != uint64(n) {
			t.Fatalf("message %d: ack %+v", n, ack)
		}
		return took
	}
	for range 10 {
		pub()
	}

	old := c.StreamLeader("K")
	start := time.Now()
	if err := c.Node(old).Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("kill took %v", time.Since(start).Round(time.Millisecond))
	elected := make(chan string, 1)
	go func() {
		l, err := c.WaitStreamLeader("K", old, time.Minute)
		elected <- fmt.Sprintf("stream leader node %d killed: node %d elected %v later (%v)", old, l, time.Since(start).Round(time.Millisecond), err)
	}()
	took := pub()
	t.Log(<-elected)
	t.Logf("first publish acknowledged %v after the kill (500ms publish timeout, retried)", took.Round(time.Millisecond))
	start = time.Now()
	if err := c.Node(old).Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted node %d current with the meta group in %v", old, time.Since(start).Round(time.Millisecond))
	if err := c.WaitStreamCurrent(old, "K", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted node %d caught up on K in %v", old, time.Since(start).Round(time.Millisecond))

	meta := c.MetaLeader()
	start = time.Now()
	if err := c.Node(meta).Kill(); err != nil {
		t.Fatal(err)
	}
	l, err := c.WaitMetaLeader(meta, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("meta leader node %d killed: node %d elected %v later", meta, l, time.Since(start).Round(time.Millisecond))
	pub()
	if err := c.Node(meta).Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitStreamCurrent(meta, "K", 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestJetStreamClusterPlacementTags places R1 streams by each node's own
// tag and an R3 stream by cluster name and the common tag.
func TestJetStreamClusterPlacementTags(t *testing.T) {
	c := startJSCluster(t, embedded.JetStreamClusterConfig{Name: "east"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js := jsClient(t, c)
	for i := range c.Size() {
		tags := c.Node(i).Tags()
		name := fmt.Sprintf("P%d", i)
		st, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name: name, Subjects: []string{name}, Replicas: 1,
			Placement: &jetstream.Placement{Cluster: "east", Tags: tags[:1]},
		})
		if err != nil {
			t.Fatal(err)
		}
		info := st.CachedInfo()
		if info.Cluster == nil || info.Cluster.Leader != c.Node(i).Name() || info.Cluster.Name != "east" {
			t.Fatalf("stream %s placed by tags %v: cluster %+v, want leader %s", name, tags[:1], info.Cluster, c.Node(i).Name())
		}
		if l, err := c.WaitStreamLeader(name, -1, 5*time.Second); err != nil || l != i {
			t.Fatalf("stream %s leader %d (%v), want %d", name, l, err, i)
		}
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "NOWHERE", Subjects: []string{"nowhere"}, Replicas: 1,
		Placement: &jetstream.Placement{Tags: []string{"az:9"}},
	}); err == nil {
		t.Fatal("a stream placed on a tag no node has was created")
	} else {
		t.Logf("placement on an unknown tag: %v", err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "WRONG", Subjects: []string{"wrong"}, Replicas: 3,
		Placement: &jetstream.Placement{Cluster: "west"},
	}); err == nil {
		t.Fatal("a stream placed in an unknown cluster was created")
	} else {
		t.Logf("placement in an unknown cluster: %v", err)
	}
}

// TestJetStreamClusterFullRestart stops every node and starts them again:
// the stream and its messages come back.
func TestJetStreamClusterFullRestart(t *testing.T) {
	timings(t)
	c := startJSCluster(t, embedded.JetStreamClusterConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js := jsClient(t, c)
	createR3(t, ctx, c, js, "F")
	for i := range 5 {
		if _, _, err := publishUntil(ctx, js, "F.x", fmt.Sprintf("f%d", i), 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	c.Stop()
	start := time.Now()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	l, err := c.WaitStreamLeader("F", -1, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("whole cluster restarted: ready and stream leader node %d in %v", l, time.Since(start).Round(time.Millisecond))
	if st, ok := c.StreamState(l, "F"); !ok || st.Msgs != 5 {
		t.Fatalf("after restart: %+v %v", st, ok)
	}
	ack, _, err := publishUntil(ctx, js, "F.x", "f5", 30*time.Second)
	if err != nil || ack.Sequence != 6 {
		t.Fatalf("publish after restart: %+v %v", ack, err)
	}
}

// timings skips a test that measures how the rigs behave (election
// times, whole-topology restarts) unless STANMIGRATE_RIG_TIMINGS is set:
// they take a minute, and the product's own topology tests
// (migrate/topology_test.go, migrate/jscluster_test.go) run the rigs in
// every CI run.
func timings(t *testing.T) {
	t.Helper()
	if os.Getenv("STANMIGRATE_RIG_TIMINGS") == "" {
		t.Skip("measures the rig's timings: set STANMIGRATE_RIG_TIMINGS=1 to run")
	}
}
