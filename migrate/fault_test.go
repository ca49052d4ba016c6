package migrate_test

import (
	"context"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/verify"
)

func startLarge(t *testing.T) *testenv.Env {
	t.Helper()
	if testing.Short() {
		t.Skip("fault tests move 200,000 messages")
	}
	return testenv.StartFixture(t, "../testdata/fixtures/large.yaml")
}

// countingReporter lets a test act once a run has made progress.
type countingReporter struct {
	msgs chan uint64
}

func (c *countingReporter) Begin(uint64, uint64) {}
func (c *countingReporter) Progress(m, _ uint64) {
	select {
	case c.msgs <- m:
	default:
	}
}
func (c *countingReporter) Event(migrate.Event) {}

func waitProgress(t *testing.T, r *countingReporter, atLeast uint64) {
	t.Helper()
	var seen uint64
	deadline := time.After(time.Minute)
	for seen < atLeast {
		select {
		case m := <-r.msgs:
			seen += m
		case <-deadline:
			t.Fatalf("no progress: saw %d messages", seen)
		}
	}
}

func verifyClean(t *testing.T, ctx context.Context, env *testenv.Env, run func() error) *verify.Report {
	t.Helper()
	if err := run(); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	p, err := env.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Run(ctx, env.Src(t), p, env.VerifyOptions())
	if err != nil {
		for _, c := range rep.Channels {
			if !c.OK {
				t.Errorf("channel %s: %s", c.Channel, c.Problem)
			}
		}
		for _, c := range rep.Consumers {
			if !c.OK {
				t.Errorf("consumer %s: %s", c.Consumer, c.Problem)
			}
		}
		t.Fatalf("verify: %v", err)
	}
	return rep
}

// restartMidRun restarts a server once a migration has made progress;
// the run must recover by itself and verify clean.
func restartMidRun(t *testing.T, restart func(env *testenv.Env) error) {
	env := startLarge(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p, err := env.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep := &countingReporter{msgs: make(chan uint64, 1)}
	opts := env.MigrateOptions()
	opts.Reporter = rep
	done := make(chan error, 1)
	var sum *migrate.Summary
	go func() {
		var err error
		sum, err = migrate.Run(ctx, env.Src(t), p, opts)
		done <- err
	}()
	waitProgress(t, rep, 5000)
	if err := restart(env); err != nil {
		t.Fatal(err)
	}
	vr := verifyClean(t, ctx, env, func() error { return <-done })
	// The restart landed on the fast-ingest path: every stream takes
	// batches (the per-message path would have said so and made none).
	js := jsConn(t, env)
	for _, c := range p.Channels {
		s, err := js.Stream(ctx, c.Stream)
		if err != nil || !s.CachedInfo().Config.AllowBatchPublish {
			t.Errorf("stream %q (%v) does not take fast-ingest batches: the restart was not made mid-batch", c.Stream, err)
		}
	}
	// Attempts cut short by the restart had hashed messages that were
	// never stored; the hash migrate reports must not include them.
	want := map[string]string{}
	for _, c := range vr.Channels {
		want[c.Channel] = c.Target.SHA256
	}
	for _, c := range sum.Channels {
		if c.Copied > 0 && c.Sum != want[c.Channel] {
			t.Errorf("channel %q: migrate reports content hash %s, verify hashed the stream as %s", c.Channel, c.Sum, want[c.Channel])
		}
	}
}

func TestMigrateRecoversFromJetStreamRestartMidRun(t *testing.T) {
	restartMidRun(t, func(env *testenv.Env) error { return env.Pair.JetStream.Restart() })
}

func TestMigrateRecoversFromSTANRestartMidRun(t *testing.T) {
	restartMidRun(t, func(env *testenv.Env) error { return env.Pair.STAN.Restart() })
}

// TestVerifyPassesAfterJetStreamRestartOnMigratedStreams guards the
// first-sequence hazard: streams positioned past sequence 1 must keep every
// message across a server restart.
func TestVerifyPassesAfterJetStreamRestartOnMigratedStreams(t *testing.T) {
	env, ctx, p := planned(t, "core.yaml")
	verifyClean(t, ctx, env, func() error { _, err := migrate.Run(ctx, env.Src(t), p, env.MigrateOptions()); return err })
	if err := env.Pair.JetStream.Restart(); err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Run(ctx, env.Src(t), p, env.VerifyOptions())
	if err != nil {
		t.Fatalf("verify after restart: %v (%+v)", err, rep)
	}
	// And a re-run after the restart still has nothing to do.
	sum, err := migrate.Run(ctx, env.Src(t), p, env.MigrateOptions())
	if err != nil || !sum.NothingToDo {
		t.Fatalf("re-run after restart: err=%v nothing_to_do=%v", err, sum != nil && sum.NothingToDo)
	}
}
