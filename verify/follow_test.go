package verify_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/naming"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/plan"
	"github.com/stanmigrate/stanmigrate/verify"
)

// TestFollowRidesOutRestartsOfBothServers restarts the JetStream server,
// then the STAN server, under verify --follow: it keeps running, moves the
// verified prefix over what was migrated after each restart, and finishes
// clean.
func TestFollowRidesOutRestartsOfBothServers(t *testing.T) {
	const channel, seeded, more = "ride.0", 2000, 500
	ctx, env, p := migrateOne(t, channel, seeded, 64, 3*time.Minute)
	// Down for longer than verify's pause between rounds: at least one
	// round runs against a stopped server.
	const down = 2500 * time.Millisecond
	followThroughFaults(t, followRig{
		ctx: ctx, channel: channel, seeded: seeded, more: more,
		verify: func(o verify.Options) (*verify.Report, error) {
			o.Target = env.Target()
			return verify.Run(ctx, env.Src(t), p, o)
		},
		publish: func(from, n int) { publishMore(t, env, channel, from, n) },
		migrate: func() error { _, err := migrate.Run(ctx, env.Src(t), p, env.MigrateOptions()); return err },
	}, []fault{
		{"the JetStream server restarted", func() error {
			env.Pair.JetStream.Stop()
			time.Sleep(down)
			return env.Pair.JetStream.Start()
		}},
		{"the STAN server restarted", func() error { env.Pair.STAN.Stop(); time.Sleep(down); return env.Pair.STAN.Start() }},
	})
}

// followRig is a migrated channel of seeded messages, and how to verify
// it, publish more to it and migrate what arrived.
type followRig struct {
	ctx          context.Context
	channel      string
	seeded, more int
	verify       func(verify.Options) (*verify.Report, error)
	publish      func(from, n int)
	migrate      func() error
}

// fault is something done to the servers under verify --follow.
type fault struct {
	name string
	do   func() error
}

// followThroughFaults runs verify --follow on r's channel and, once the
// verified prefix covers the seeded messages, does each fault in turn:
// verify must still be running after it, and the prefix must follow
// what migrate copies of r.more messages published after it; finished,
// the last round must be clean and account for every message.
func followThroughFaults(t *testing.T, r followRig, faults []fault) {
	t.Helper()
	store := state.NewDir(filepath.Join(t.TempDir(), "verify-state"))
	finish := make(chan struct{})
	type outcome struct {
		rep *verify.Report
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		rep, err := r.verify(verify.Options{State: store, Follow: true, Finish: finish})
		done <- outcome{rep, err}
	}()
	stream := naming.StreamName(r.channel)
	waitVerified(t, r.ctx, store, stream, uint64(r.seeded))
	total := r.seeded
	for _, f := range faults {
		if err := f.do(); err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		select {
		case out := <-done:
			t.Fatalf("verify --follow ended after %s: %v", f.name, out.err)
		default:
		}
		// migrate copies what arrived meanwhile; the prefix follows.
		r.publish(total, r.more)
		total += r.more
		if err := r.migrate(); err != nil {
			t.Fatalf("migrate after %s: %v", f.name, err)
		}
		waitVerified(t, r.ctx, store, stream, uint64(total))
	}
	close(finish)
	out := <-done
	if out.err != nil {
		t.Fatalf("verify --follow after the faults: %v", out.err)
	}
	if c := out.rep.Channels[0]; !c.OK || c.Earlier+c.Read != uint64(total) {
		t.Fatalf("verify --follow's last round: ok=%v, %d earlier + %d now, want %d in all", c.OK, c.Earlier, c.Read, total)
	}
}

func publishMore(t *testing.T, env *testenv.Env, channel string, from, n int) {
	t.Helper()
	publishTo(t, env.Pair.STAN.URL(), env.Pair.STAN.ClusterID(), channel, from, n)
}

// waitVerified waits until stream's verified prefix reaches seq.
func waitVerified(t *testing.T, ctx context.Context, store state.Store, stream string, seq uint64) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		v, _, err := state.LoadVerified(ctx, store, stream)
		if err != nil {
			t.Fatal(err)
		}
		if v != nil && v.Seq >= seq {
			return
		}
	}
	t.Fatalf("the verified prefix of stream %q never reached sequence %d", stream, seq)
}

// TestPurgedStreamBreaksThePrefix purges a verified stream's first
// messages: the next verify drops the prefix, says why, reads the channel
// in full and names the purged sequences as missing; a verify after new
// messages with the prefix intact reads only those.
func TestPurgedStreamBreaksThePrefix(t *testing.T) {
	const channel, seeded, more = "purge.0", 300, 40
	ctx, env, p := migrateOne(t, channel, seeded, 32, 2*time.Minute)
	o := env.VerifyOptions()
	o.State = state.NewDir(filepath.Join(t.TempDir(), "state"))
	verifyOnce := func() (verify.ChannelReport, error) {
		t.Helper()
		rep, err := verify.Run(ctx, env.Src(t), p, o)
		if rep == nil || len(rep.Channels) != 1 {
			t.Fatalf("verify: %v", err)
		}
		return rep.Channels[0], err
	}
	if c, err := verifyOnce(); err != nil || c.Read != seeded || c.Earlier != 0 {
		t.Fatalf("first verify: %v; read %d, earlier %d", err, c.Read, c.Earlier)
	}
	publishMore(t, env, channel, seeded, more)
	if _, err := migrate.Run(ctx, env.Src(t), p, env.MigrateOptions()); err != nil {
		t.Fatal(err)
	}
	if c, err := verifyOnce(); err != nil || c.Read != more || c.Earlier != seeded {
		t.Fatalf("verify after %d more: %v; read %d past %d", more, err, c.Read, c.Earlier)
	}

	s, err := env.JS(t).Stream(ctx, naming.StreamName(channel))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSequence(51)); err != nil {
		t.Fatal(err)
	}
	c, err := verifyOnce()
	if !errors.Is(err, verify.ErrDifferences) || c.OK {
		t.Fatalf("verify after a purge: %v, ok=%v; want differences", err, c.OK)
	}
	if c.Earlier != 0 || c.Read != seeded+more || !strings.Contains(c.PrefixNote, "first sequence is 51, it was 1") {
		t.Errorf("verify after a purge: %d earlier, %d read, note %q; want the prefix dropped and every message read", c.Earlier, c.Read, c.PrefixNote)
	}
	if c.MissingCount != 50 || len(c.Missing) == 0 || c.Missing[0] != 1 || !strings.Contains(c.Problem, "50 sequences missing from the stream: 1, 2") {
		t.Errorf("verify after a purge: %d missing %v, problem %q; want 1..50 missing", c.MissingCount, c.Missing, c.Problem)
	}
}

// TestPrefixInAKeyValueBucket keeps the verified prefix in a bucket on
// the target (--state kv:NAME): a second verify reads nothing, and the
// prefix is a key of kind "verified" in the bucket.
func TestPrefixInAKeyValueBucket(t *testing.T) {
	const channel, seeded = "kv.0", 150
	ctx, env, p := migrateOne(t, channel, seeded, 32, 2*time.Minute)
	kv, err := state.OpenKV(ctx, env.JS(t), "verify-prefix", state.KVOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	o := env.VerifyOptions()
	o.State = kv
	for i, want := range []struct{ earlier, read uint64 }{{0, seeded}, {seeded, 0}} {
		rep, err := verify.Run(ctx, env.Src(t), p, o)
		if err != nil {
			t.Fatalf("verify %d: %v", i+1, err)
		}
		if c := rep.Channels[0]; c.Earlier != want.earlier || c.Read != want.read {
			t.Errorf("verify %d: %d earlier, %d read; want %d and %d", i+1, c.Earlier, c.Read, want.earlier, want.read)
		}
	}
	keys, err := kv.Keys(ctx, state.KindVerified)
	if err != nil {
		t.Fatal(err)
	}
	if want := state.Key(state.KindVerified, naming.StreamName(channel)); !slices.Contains(keys, want) {
		t.Errorf("bucket keys of kind %q: %v, want %q among them", state.KindVerified, keys, want)
	}
}

// TestFollowFinishesWhenIdle: with IdleFinish (--until-idle) and nothing
// new arriving, verify --follow ends on its own with a clean report.
func TestFollowFinishesWhenIdle(t *testing.T) {
	const channel, seeded = "idle.0", 200
	ctx, env, p := migrateOne(t, channel, seeded, 32, 2*time.Minute)
	o := env.VerifyOptions()
	o.State, o.Follow, o.IdleFinish = state.NewDir(filepath.Join(t.TempDir(), "state")), true, time.Second
	rep, err := verify.Run(ctx, env.Src(t), p, o)
	if err != nil {
		t.Fatalf("verify --follow --until-idle 1s: %v", err)
	}
	if c := rep.Channels[0]; !c.OK || c.Earlier != seeded || c.Read != 0 {
		t.Errorf("verify --follow's last round: ok=%v, %d earlier, %d now; want the %d messages verified by the rounds before it", c.OK, c.Earlier, c.Read, seeded)
	}
}

// migrateOne seeds one channel of seeded messages of size bytes, plans it
// and migrates it; the servers stop and ctx ends with the test (or after
// timeout).
func migrateOne(t *testing.T, channel string, seeded, size int, timeout time.Duration) (context.Context, *testenv.Env, *plan.Plan) {
	t.Helper()
	spec := &fixture.Spec{Channels: []fixture.Channel{{Name: channel, Messages: seeded, Size: size}}}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	env, err := testenv.Start(ctx, t.TempDir(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	p, err := env.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Run(ctx, env.Src(t), p, env.MigrateOptions()); err != nil {
		t.Fatal(err)
	}
	return ctx, env, p
}
