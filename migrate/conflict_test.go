package migrate_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/migrate"
)

// TestForeignMessagesBelowTheFirstSequenceStopMigrate: the plan was
// clean, then someone created the stream with their own message before
// migrate ran, all of it below the channel's first sequence. Migrate stops
// with a conflict naming the stream (rather than retrying on "wrong last
// sequence") and leaves the foreign stream as it was.
func TestForeignMessagesBelowTheFirstSequenceStopMigrate(t *testing.T) {
	env, ctx, p := planned(t, "core.yaml")
	js := jsConn(t, env)
	// payments starts at 201 on STAN.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "payments", Subjects: []string{"payments"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "payments", []byte("not from STAN")); err != nil {
		t.Fatal(err)
	}
	_, err := migrate.Run(ctx, env.Src(t), p, env.MigrateOptions())
	if !errors.Is(err, migrate.ErrConflict) {
		t.Fatalf("migrate: %v, want a conflict", err)
	}
	s, err := js.Stream(ctx, "payments")
	if err != nil {
		t.Fatal(err)
	}
	if st := s.CachedInfo().State; st.Msgs != 1 || st.LastSeq != 1 {
		t.Errorf("the foreign stream changed: %d msgs, last %d", st.Msgs, st.LastSeq)
	}
}

// TestConsumerChangedAfterMigrationIsAConflictOnReRun: a consumer migrate
// made whose ack wait was changed afterwards is not silently kept by a
// re-run: the re-run names it and the difference.
func TestConsumerChangedAfterMigrationIsAConflictOnReRun(t *testing.T) {
	env, ctx, p := planned(t, "core.yaml")
	if _, err := migrate.Run(ctx, env.Src(t), p, env.MigrateOptions()); err != nil {
		t.Fatal(err)
	}
	js := jsConn(t, env)
	c, err := js.Consumer(ctx, "orders_eu", "reports_daily")
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.CachedInfo().Config
	cfg.AckWait = 5 * time.Second
	if _, err := js.UpdateConsumer(ctx, "orders_eu", cfg); err != nil {
		t.Fatal(err)
	}
	_, err = migrate.Run(ctx, env.Src(t), p, env.MigrateOptions())
	if !errors.Is(err, migrate.ErrConflict) {
		t.Fatalf("re-run: %v, want a conflict on the changed consumer", err)
	}
	for _, want := range []string{`"reports_daily"`, "ack wait 5s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
