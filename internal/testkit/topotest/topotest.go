// Package topotest starts the embedded topologies of package embedded
// (JetStream cluster, clustered STAN, FT STAN) for a test: stores under
// the test's temporary directory, servers stopped when it ends.
package topotest

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
)

// JetStreamCluster starts a JetStream cluster (three nodes unless cfg says
// otherwise), ready for streams.
func JetStreamCluster(tb testing.TB, cfg embedded.JetStreamClusterConfig) *embedded.JetStreamCluster {
	tb.Helper()
	if cfg.Dir == "" {
		cfg.Dir = tb.TempDir()
	}
	c, err := embedded.StartJetStreamCluster(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Stop)
	return c
}

// STANCluster starts a clustered STAN server (three nodes unless cfg says
// otherwise) with a settled leader.
func STANCluster(tb testing.TB, cfg embedded.STANClusterConfig) *embedded.STANCluster {
	tb.Helper()
	if cfg.Dir == "" {
		cfg.Dir = tb.TempDir()
	}
	c, err := embedded.StartSTANCluster(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Stop)
	return c
}

// STANFT starts a fault-tolerant STAN pair (unless cfg says otherwise)
// with one server active and the others standing by.
func STANFT(tb testing.TB, cfg embedded.STANFTConfig) *embedded.STANFT {
	tb.Helper()
	if cfg.Dir == "" {
		cfg.Dir = tb.TempDir()
	}
	f, err := embedded.StartSTANFT(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(f.Stop)
	return f
}

// JetStream is a JetStream client on url for a test, its connection
// closed when the test ends; opts add to nats.Connect's (reconnects, an
// error handler).
func JetStream(tb testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return nc, js
}
