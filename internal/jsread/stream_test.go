package jsread_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/jsread"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/topotest"
)

// TestNextStoredSkipsDeletedMessages: settle and verify ask whether a
// stream holds anything past a point; deleted sequences in between must
// be skipped in one answer, on any of the stream's subjects.
func TestNextStoredSkipsDeletedMessages(t *testing.T) {
	srv, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	_, js := topotest.JetStream(t, srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "orders", Subjects: []string{"orders", "orders.>"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, subj := range []string{"orders", "orders.a", "orders", "orders.b", "orders"} {
		if _, err := js.Publish(ctx, subj, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, seq := range []uint64{2, 3, 4} {
		if err := s.DeleteMsg(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ from, want uint64 }{{1, 1}, {2, 5}, {5, 5}, {6, 0}} {
		got, err := jsread.NextStored(ctx, s, c.from)
		if err != nil || got != c.want {
			t.Errorf("NextStored from %d = %d, %v; want %d", c.from, got, err, c.want)
		}
	}
}
