package fastingest

import (
	"testing"

	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
)

// startCluster starts three JetStream servers routed on loopback,
// in-process, and waits until every node has joined the meta group: a
// stream placed on three replicas before that finds "peer offline".
func startCluster(t testing.TB, dir string) *embedded.JetStreamCluster {
	t.Helper()
	c, err := embedded.StartJetStreamCluster(embedded.JetStreamClusterConfig{Dir: dir, Name: "fastingest"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// TestReplicatedSequencesMatch: on an R3 stream the acknowledgements
// come after the quorum applied the messages, and sequences match.
func TestReplicatedSequencesMatch(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster")
	}
	c := startCluster(t, t.TempDir())
	nc, js := connect(t, c.URLs())
	createStream(t, js, "r3", true, 3)
	const window = 1024
	p := newPublisher(t, nc, Options{Window: window})
	acked, _, err := publishRange(t, p, "r3", 1, 20_000, window)
	if err != nil || acked != 20_000 {
		t.Fatalf("confirmed up to %d, error %v", acked, err)
	}
	checkStream(t, js, "r3", 1, 20_000)
}
