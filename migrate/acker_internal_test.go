package migrate

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
)

// TestWrongLastSequenceNamesTheStreamsLast reads the stream's last
// sequence from the answer a real server gives a resend, which is how a
// resend of a stored message is told apart from a gap.
func TestWrongLastSequenceNamesTheStreamsLast(t *testing.T) {
	srv, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := js.Publish(ctx, "s", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	_, err = js.Publish(ctx, "s", []byte("x"), jetstream.WithExpectLastSequence(1))
	if last, ok := wrongLastSeq(err); !ok || last != 3 {
		t.Fatalf("wrongLastSeq(%v) = %d, %v; want 3, true", err, last, ok)
	}
	if _, ok := wrongLastSeq(jetstream.ErrStreamNotFound); ok {
		t.Error("another error read as a wrong last sequence")
	}
}
