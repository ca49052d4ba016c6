package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/naming"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/migrate"
)

// TestFollowCopiesMessagesPublishedDuringTheRunExactlyOnce is the
// cutover path: producers keep writing while history is copied; after
// they stop and the run is told to finish, every message is in JetStream
// exactly once and the consumers exist. The history (600 messages) is
// copied as a bounded copy and only then followed: the start line says so,
// and the messages published once the stream holds it arrive by following.
func TestFollowCopiesMessagesPublishedDuringTheRunExactlyOnce(t *testing.T) {
	env, ctx, p := planned(t, "core.yaml")
	finish := make(chan struct{})
	opts := env.MigrateOptions()
	log := &eventLog{}
	opts.Follow, opts.Finish, opts.Reporter = true, finish, log
	done := make(chan error, 1)
	go func() { _, err := migrate.Run(ctx, env.Src(t), p, opts); done <- err }()

	js := jsConn(t, env)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s, err := js.Stream(ctx, naming.StreamName("orders.eu"))
		if err == nil && s.CachedInfo().State.LastSeq >= 600 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the history of orders.eu was not copied within 30s (%v)", err)
		}
	}
	sc, err := stan.Connect(env.Pair.STAN.ClusterID(), "late-producer", stan.NatsURL(env.Pair.STAN.URL()))
	if err != nil {
		t.Fatal(err)
	}
	const extra = 3000
	for i := 0; i < extra; i++ {
		if err := sc.Publish("orders.eu", []byte(fmt.Sprintf("late-%d", i))); err != nil {
			t.Fatal(err)
		}
		if i%500 == 0 {
			time.Sleep(50 * time.Millisecond) // keep writing while the migrator tails
		}
	}
	sc.Close()
	close(finish)
	if err := <-done; err != nil {
		t.Fatalf("migrate --follow: %v", err)
	}
	s, err := js.Stream(ctx, naming.StreamName("orders.eu"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := log.kinds(migrate.EventStarted), "orders.eu: sequences 1..600, then following"; !slices.Contains(got, want) {
		t.Errorf("start lines %q; want %q", got, want)
	}
	if got, want := log.kinds(migrate.EventCaughtUp), fmt.Sprintf("orders.eu: through sequence %d", 600+extra); !slices.Contains(got, want) {
		t.Errorf("caught-up lines %q; want %q", got, want)
	}
	st := s.CachedInfo().State
	if st.Msgs != 600+extra || st.LastSeq != 600+extra {
		t.Fatalf("orders.eu stream: %d msgs, last %d; want %d", st.Msgs, st.LastSeq, 600+extra)
	}
	if _, err := js.Consumer(ctx, naming.StreamName("orders.eu"), "billing_invoicer"); err != nil {
		t.Fatalf("consumer not created after finishing: %v", err)
	}
	verifyClean(t, ctx, env, func() error { return nil })
}

// TestFullTargetStopsWithClearErrorThenResumesAfterRaise fills a target
// whose JetStream storage is too small: the run stops naming the stream,
// and once the limit is raised a re-run completes and verifies.
func TestFullTargetStopsWithClearErrorThenResumesAfterRaise(t *testing.T) {
	env := startLarge(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "small-js")
	small, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: dir, MaxStore: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Stop()
	env.Pair.JetStream.Stop()
	env.Pair.JetStream = small
	p, err := env.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = migrate.Run(ctx, env.Src(t), p, env.MigrateOptions())
	if !errors.Is(err, migrate.ErrStorage) {
		t.Fatalf("want ErrStorage from a full target, got %v", err)
	}
	t.Logf("full target: %v", err)
	small.Stop()
	bigger, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: dir, MaxStore: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer bigger.Stop()
	env.Pair.JetStream = bigger
	verifyClean(t, ctx, env, func() error { _, err := migrate.Run(ctx, env.Src(t), p, env.MigrateOptions()); return err })
}
