package apilevel_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/apilevel"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/serverbin"
	"github.com/stanmigrate/stanmigrate/internal/testkit/topotest"
)

// TestLevelsOfSettings: the level each setting needs, as nats-server's
// jetstream_versioning.go assigns them, and what each level offers.
func TestLevelsOfSettings(t *testing.T) {
	streams := []struct {
		name string
		cfg  jetstream.StreamConfig
		want apilevel.Level
	}{
		{"limits, metadata, dedup window (2.10)", jetstream.StreamConfig{Name: "s", MaxAge: time.Hour, Metadata: map[string]string{"k": "v"}, Duplicates: time.Second}, 0},
		{"per-message TTL", jetstream.StreamConfig{Name: "s", AllowMsgTTL: true}, 1},
		{"subject delete markers", jetstream.StreamConfig{Name: "s", SubjectDeleteMarkerTTL: time.Minute}, 1},
		{"atomic batches", jetstream.StreamConfig{Name: "s", AllowAtomicPublish: true}, 2},
		{"fast-ingest batches", jetstream.StreamConfig{Name: "s", AllowBatchPublish: true}, 4},
		{"fast-ingest batches and TTL", jetstream.StreamConfig{Name: "s", AllowBatchPublish: true, AllowMsgTTL: true}, 4},
	}
	for _, c := range streams {
		if got := apilevel.ForStream(c.cfg); got != c.want {
			t.Errorf("stream with %s: level %d, want %d", c.name, got, c.want)
		}
	}
	// What migrate creates for a durable: nothing past 2.10.
	durable := jetstream.ConsumerConfig{Durable: "d", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 5, MaxAckPending: 10, Metadata: map[string]string{"k": "v"}}
	if got := apilevel.ForConsumer(durable); got != 0 {
		t.Errorf("a durable's consumer: level %d, want 0", got)
	}
	durable.PriorityPolicy, durable.PriorityGroups = jetstream.PriorityPolicyPinned, []string{"g"}
	if got := apilevel.ForConsumer(durable); got != 1 {
		t.Errorf("a consumer with priority groups: level %d, want 1", got)
	}
	for _, c := range []struct {
		level                apilevel.Level
		batches, ttl, checks bool
		release              string
	}{
		{0, false, false, false, "any nats-server"},
		{1, false, true, false, "nats-server 2.11"},
		{2, false, true, true, "nats-server 2.12"},
		{4, true, true, true, "nats-server 2.14"},
		{5, true, true, true, "a nats-server of JetStream API level 5"},
	} {
		if c.level.FastIngest() != c.batches || c.level.PerMessageTTL() != c.ttl || c.level.ChecksRequired() != c.checks || c.level.Release() != c.release {
			t.Errorf("level %d: batches %v, TTL %v, checks %v, %q", c.level, c.level.FastIngest(), c.level.PerMessageTTL(), c.level.ChecksRequired(), c.level.Release())
		}
	}
}

// TestCreateStreamOnTheCurrentServer: a stream created with its level is
// made with every setting, and the level the server computed for it is
// the one we sent.
func TestCreateStreamOnTheCurrentServer(t *testing.T) {
	j, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(j.Stop)
	_, js := topotest.JetStream(t, j.URL())
	ctx := context.Background()
	cfg := jetstream.StreamConfig{Name: "fast", Subjects: []string{"fast"}, AllowBatchPublish: true}
	s, err := apilevel.CreateStream(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := s.CachedInfo().Config
	if !got.AllowBatchPublish || got.Metadata["_nats.req.level"] != "4" {
		t.Fatalf("created with allow_batched %v, required level %q; want true and 4", got.AllowBatchPublish, got.Metadata["_nats.req.level"])
	}
	got.MaxAge = time.Hour
	if err := apilevel.UpdateStream(ctx, js, got); err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(ctx); err != nil || info.Config.MaxAge != time.Hour {
		t.Fatalf("update: %v, max_age %v", err, info.Config.MaxAge)
	}
	cfg.Subjects = []string{"other"}
	if _, err := apilevel.CreateStream(ctx, js, cfg); !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		t.Fatalf("a second stream of the same name: %v, want ErrStreamNameAlreadyInUse", err)
	}
	if err := apilevel.UpdateStream(ctx, js, jetstream.StreamConfig{Name: "nosuch", Subjects: []string{"x"}}); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("update of a missing stream: %v, want ErrStreamNotFound", err)
	}
}

// TestOlderServersCannotDropWhatWeAskFor: a 2.12 server (API level 2 or
// 3) refuses a stream asked for fast-ingest batches when the create
// carries its level, naming the release it needs; with JetStream's strict
// mode off, a create without the header is answered with a stream that
// silently lacks them. A 2.11 server predates the header and ignores it,
// so there the created stream's config is what tells (as migrate checks).
func TestOlderServersCannotDropWhatWeAskFor(t *testing.T) {
	ctx := context.Background()
	cfg := jetstream.StreamConfig{Name: "fast", Subjects: []string{"fast"}, AllowBatchPublish: true}
	t.Run("2.12 refuses", func(t *testing.T) {
		srv := serverbin.Start(t, serverbin.Line2_12, serverbin.Options{JetStream: "strict: false"})
		_, js := topotest.JetStream(t, srv.URL())
		ai, err := js.AccountInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// 2.12.0 answers 2, later 2.12 patches 3.
		if l := apilevel.Of(ai); !l.ChecksRequired() || l.FastIngest() {
			t.Fatalf("nats-server %s answers API level %d", srv.Version(), l)
		}
		_, err = apilevel.CreateStream(ctx, js, cfg)
		if !errors.Is(err, apilevel.ErrLevel) || !strings.Contains(err.Error(), "level 4 (nats-server 2.14)") {
			t.Fatalf("create with level 4 on %s: %v, want ErrLevel naming level 4 and 2.14", srv.Version(), err)
		}
		if _, err := js.Stream(ctx, "fast"); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Fatalf("the refused stream exists: %v", err)
		}
		// The same request without the header: created, without batches.
		s, err := js.CreateStream(ctx, cfg)
		if err != nil {
			t.Fatalf("plain create on %s: %v", srv.Version(), err)
		}
		if s.CachedInfo().Config.AllowBatchPublish {
			t.Fatalf("nats-server %s kept allow_batched", srv.Version())
		}
	})
	t.Run("2.11 ignores the header", func(t *testing.T) {
		srv := serverbin.Start(t, serverbin.Line2_11, serverbin.Options{})
		_, js := topotest.JetStream(t, srv.URL())
		s, err := apilevel.CreateStream(ctx, js, cfg)
		if err != nil {
			t.Fatalf("create on %s: %v", srv.Version(), err)
		}
		if s.CachedInfo().Config.AllowBatchPublish {
			t.Fatalf("nats-server %s reports allow_batched", srv.Version())
		}
	})
}
