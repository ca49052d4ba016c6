package fastingest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"

	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
)

// cluster is three JetStream servers routed on loopback, in-process.
type cluster struct {
	servers []*natsd.Server
	urls    []string
}

func (c *cluster) url() string { return strings.Join(c.urls, ",") }

func startCluster(t testing.TB, dir string) *cluster {
	t.Helper()
	const n = 3
	ports, routes := make([]int, n), make([]int, n)
	for i := range n {
		var err error
		if ports[i], err = embedded.FreePort(); err != nil {
			t.Fatal(err)
		}
		if routes[i], err = embedded.FreePort(); err != nil {
			t.Fatal(err)
		}
	}
	c := &cluster{}
	t.Cleanup(func() {
		for _, s := range c.servers {
			s.Shutdown()
			s.WaitForShutdown()
		}
	})
	for i := range n {
		var rurls []string
		for j := range n {
			if j != i {
				rurls = append(rurls, fmt.Sprintf("nats-route://127.0.0.1:%d", routes[j]))
			}
		}
		opts := &natsd.Options{
			ServerName: fmt.Sprintf("n%d", i),
			Host:       "127.0.0.1",
			Port:       ports[i],
			NoSigs:     true,
			NoLog:      true,
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprintf("n%d", i)),
			Cluster:    natsd.ClusterOpts{Name: "fastingest", Host: "127.0.0.1", Port: routes[i]},
			Routes:     natsd.RoutesFromStr(strings.Join(rurls, ",")),
		}
		s, err := natsd.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		c.servers = append(c.servers, s)
		c.urls = append(c.urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	for _, s := range c.servers {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("cluster node not ready")
		}
	}
	// Wait for a JetStream meta leader.
	_, js := connect(t, c.url())
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("no JetStream meta leader: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReplicatedSequencesMatch: on an R3 stream the acknowledgements
// come after the quorum applied the messages, and sequences match.
func TestReplicatedSequencesMatch(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster")
	}
	c := startCluster(t, t.TempDir())
	nc, js := connect(t, c.url())
	createStream(t, js, "r3", true, 3)
	const window = 1024
	p, err := New(nc, Options{Window: window})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	acked, _, err := publishRange(t, p, "r3", 1, 20_000, window)
	if err != nil || acked != 20_000 {
		t.Fatalf("confirmed up to %d, error %v", acked, err)
	}
	checkStream(t, js, "r3", 1, 20_000)
}
