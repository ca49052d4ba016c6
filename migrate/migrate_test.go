package migrate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/monitor"
	"github.com/stanmigrate/stanmigrate/internal/naming"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/plan"
	"github.com/stanmigrate/stanmigrate/verify"
)

func startCore(t *testing.T) *testenv.Env {
	return testenv.StartFixture(t, "../testdata/fixtures/core.yaml")
}

// planned seeds a fixture from testdata/fixtures and plans it with
// defaults; the context ends with the test or after two minutes.
func planned(t *testing.T, fixture string) (*testenv.Env, context.Context, *plan.Plan) {
	t.Helper()
	env := testenv.StartFixture(t, "../testdata/fixtures/"+fixture)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	p, err := env.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return env, ctx, p
}

func jsConn(t *testing.T, env *testenv.Env) jetstream.JetStream { return env.JS(t) }

type durableState struct {
	lastSent    uint64
	pending     int
	offline     bool
	maxInflight int
	ackWait     int
}

func durables(t *testing.T, mon *monitor.Client) map[string]durableState {
	t.Helper()
	chans, err := mon.Channels(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]durableState{}
	for _, c := range chans {
		for _, s := range c.Subscriptions {
			if !s.IsDurable {
				continue
			}
			k := c.Name + "|" + s.ClientID + "|" + s.DurableName + "|" + s.QueueName
			if s.QueueName != "" {
				k = c.Name + "|queue|" + s.QueueName
			}
			out[k] = durableState{s.LastSent, s.PendingCount, s.IsOffline, s.MaxInflight, s.AckWait}
		}
	}
	return out
}

// TestMigrateCoreFixtureReproducesChannelsAndPositions is the core
// promise: every stream holds exactly its channel's messages at the same
// sequences with the migration headers, every durable becomes a durable
// consumer that first delivers the durable's lowest unacknowledged
// sequence, STAN's durables stay usable for a rollback, and a second run
// changes nothing.
func TestMigrateCoreFixtureReproducesChannelsAndPositions(t *testing.T) {
	env := startCore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mon := env.Monitor()
	before := durables(t, mon)

	p, err := env.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Blockers()) != 0 {
		t.Fatalf("core fixture must be migratable, blockers: %+v", p.Blockers())
	}
	if len(p.NonDurables) != 1 || p.NonDurables[0].ClientID != "dashboard" {
		t.Fatalf("the non-durable must be reported, got %+v", p.NonDurables)
	}
	sum, err := migrate.Run(ctx, env.Src(t), p, env.MigrateOptions())
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if sum.NothingToDo {
		t.Fatal("first run reported nothing to do")
	}
	js := jsConn(t, env)
	expect := env.Spec.Expect()
	sizes := map[string]int{}
	for _, c := range env.Spec.Channels {
		sizes[c.Name] = c.Size
	}
	lastSeqs := map[string]uint64{}
	for name, ce := range expect {
		stream, err := js.Stream(ctx, naming.StreamName(name))
		if err != nil {
			t.Fatalf("channel %q: stream: %v", name, err)
		}
		if !stream.CachedInfo().Config.AllowBatchPublish {
			t.Errorf("channel %q: the stream takes no fast-ingest batches on a server that offers them", name)
		}
		st := stream.CachedInfo().State
		if st.Msgs != ce.Msgs || st.FirstSeq != ce.FirstSeq || st.LastSeq != ce.LastSeq {
			t.Errorf("channel %q: stream has %d msgs %d..%d, channel %d msgs %d..%d", name, st.Msgs, st.FirstSeq, st.LastSeq, ce.Msgs, ce.FirstSeq, ce.LastSeq)
		}
		lastSeqs[name] = st.LastSeq
		for seq := ce.FirstSeq; seq <= ce.LastSeq; seq++ {
			m, err := stream.GetMsg(ctx, seq)
			if err != nil {
				t.Fatalf("channel %q seq %d: %v", name, seq, err)
			}
			if !bytes.Equal(m.Data, fixture.Payload(name, seq, sizes[name])) || m.Subject != name {
				t.Fatalf("channel %q seq %d: wrong content or subject %q", name, seq, m.Subject)
			}
			h := m.Header
			// The default set is stan2js's; the Msg-Id is opt-in.
			if h.Get("Nats-Msg-Id") != "" ||
				h.Get(jsformat.HdrChannel) != name || h.Get(jsformat.HdrSequence) != strconv.FormatUint(seq, 10) {
				t.Fatalf("channel %q seq %d: headers %v", name, seq, h)
			}
			if _, err := time.Parse(time.RFC3339Nano, h.Get(jsformat.HdrTimestamp)); err != nil {
				t.Fatalf("channel %q seq %d: timestamp header: %v", name, seq, err)
			}
		}
		for key, de := range ce.Durables {
			cons := naming.ConsumerName(key.ClientID, key.Durable, key.Queue)
			c, err := js.Consumer(ctx, naming.StreamName(name), cons)
			if err != nil {
				t.Fatalf("%s: consumer %q: %v", key, cons, err)
			}
			cfg := c.CachedInfo().Config
			if cfg.Durable != cons || cfg.AckPolicy != jetstream.AckExplicitPolicy {
				t.Errorf("%s: consumer not durable with explicit acks: %+v", key, cfg)
			}
			if cfg.OptStartSeq != de.Start {
				t.Errorf("%s: consumer starts at %d, durable's lowest unacknowledged is %d", key, cfg.OptStartSeq, de.Start)
			}
			if cfg.MaxAckPending != de.MaxInflight || cfg.AckWait != de.AckWait {
				t.Errorf("%s: MaxAckPending %d AckWait %v, durable had %d and %v", key, cfg.MaxAckPending, cfg.AckWait, de.MaxInflight, de.AckWait)
			}
			if de.Start > ce.LastSeq {
				continue // caught up: nothing to deliver yet
			}
			batch, err := c.FetchNoWait(1)
			if err != nil {
				t.Fatal(err)
			}
			var first uint64
			for m := range batch.Messages() {
				md, _ := m.Metadata()
				first = md.Sequence.Stream
				_ = m.Nak()
			}
			if first != de.Start {
				t.Errorf("%s: consumer delivered %d first, want %d", key, first, de.Start)
			}
		}
	}
	// One consumer for the queue group, shared by its members.
	ps, err := js.Stream(ctx, naming.StreamName("payments"))
	if err != nil {
		t.Fatal(err)
	}
	names := ps.ConsumerNames(ctx)
	var n int
	for range names.Name() {
		n++
	}
	if n != 1 {
		t.Errorf("payments: %d consumers, want one for the queue group", n)
	}

	after := durables(t, mon)
	for k, b := range before {
		a, ok := after[k]
		if !ok {
			t.Errorf("durable %s disappeared from STAN", k)
			continue
		}
		if !a.offline || a.maxInflight != b.maxInflight || a.ackWait != b.ackWait {
			t.Errorf("durable %s changed: before %+v after %+v", k, b, a)
		}
		if a.pending < b.pending && a.lastSent == b.lastSent {
			t.Errorf("durable %s: pending dropped from %d to %d: the tool acknowledged messages", k, b.pending, a.pending)
		}
	}

	// A second run adds nothing and says so.
	sum2, err := migrate.Run(ctx, env.Src(t), p, env.MigrateOptions())
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if !sum2.NothingToDo || sum2.Copied != 0 {
		for _, c := range sum2.Channels {
			t.Logf("%+v", *c)
		}
		t.Fatalf("second run: nothing_to_do=%v copied=%d", sum2.NothingToDo, sum2.Copied)
	}
	for name, last := range lastSeqs {
		s, _ := js.Stream(ctx, naming.StreamName(name))
		if got := s.CachedInfo().State.LastSeq; got != last {
			t.Errorf("channel %q: second run moved last sequence %d -> %d", name, last, got)
		}
	}
}

func TestMigrateRefusesPlanWithBlockers(t *testing.T) {
	p := &plan.Plan{Version: 1, Source: plan.Source{ClusterID: "c"},
		Findings: []plan.Finding{{Severity: plan.Blocker, Object: "stream x", Message: "collides"}}}
	_, err := migrate.Run(context.Background(), nil, p, migrate.Options{})
	if !errors.Is(err, migrate.ErrBlocked) {
		t.Fatalf("want ErrBlocked, got %v", err)
	}
}

// TestFrontDroppedAfterPlanningRepositionsTheStream: between plan and
// migrate, STAN's max_msgs drops the front of "payments" (201..500 becomes
// 601..900). The stream must start where STAN now does, hold exactly its
// messages, and a re-run, even without checkpoints, must not mistake the
// missing front for lost data.
func TestFrontDroppedAfterPlanningRepositionsTheStream(t *testing.T) {
	env, ctx, p := planned(t, "core.yaml")
	sc, err := stan.Connect(env.Pair.STAN.ClusterID(), "late-producer", stan.NatsURL(env.Pair.STAN.URL()))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 400; i++ {
		if err := sc.Publish("payments", []byte(fmt.Sprintf("late-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	sc.Close()
	opts := env.MigrateOptions()
	first, err := migrate.Run(ctx, env.Src(t), p, opts)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	js := jsConn(t, env)
	s, err := js.Stream(ctx, "payments")
	if err != nil {
		t.Fatal(err)
	}
	if st := s.CachedInfo().State; st.FirstSeq != 601 || st.LastSeq != 900 || st.Msgs != 300 || st.NumDeleted != 0 {
		t.Fatalf("payments stream: %d msgs %d..%d (%d deleted), want 300 msgs 601..900", st.Msgs, st.FirstSeq, st.LastSeq, st.NumDeleted)
	}
	verifyClean(t, ctx, env, func() error { return nil })
	if err := opts.State.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	sum, err := migrate.Run(ctx, env.Src(t), p, opts)
	if err != nil || !sum.NothingToDo {
		t.Fatalf("re-run without checkpoints: err=%v nothing_to_do=%v", err, sum != nil && sum.NothingToDo)
	}
	// The running hash, kept while replaying and rebuilt from the stream
	// when checkpoints are gone, is the content hash verify computes.
	rep, err := verify.Run(ctx, env.Src(t), p, env.VerifyOptions())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, c := range rep.Channels {
		want[c.Channel] = c.Target.SHA256
	}
	for i, c := range sum.Channels {
		if c.Sum != want[c.Channel] || first.Channels[i].Sum != want[c.Channel] {
			t.Errorf("channel %q: migrate hashed %s, rebuilt %s; verify hashed the stream as %s", c.Channel, first.Channels[i].Sum, c.Sum, want[c.Channel])
		}
	}
}

// TestHeaderSetsAndMsgID migrates with each header choice into a fresh
// target and reads a message back: minimal keeps the original timestamp
// only, full adds stan2js's channel and sequence, and --msg-id adds the
// Msg-Id to either.
func TestHeaderSetsAndMsgID(t *testing.T) {
	env := startCore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, tc := range []struct {
		headers string
		msgID   bool
		want    []string
	}{
		{jsformat.HeadersMinimal, false, []string{jsformat.HdrTimestamp}},
		{jsformat.HeadersMinimal, true, []string{jsformat.HdrTimestamp, jsformat.HdrMsgID}},
		{jsformat.HeadersFull, true, []string{jsformat.HdrTimestamp, jsformat.HdrChannel, jsformat.HdrSequence, jsformat.HdrMsgID}},
	} {
		t.Run(fmt.Sprintf("%s,msg-id=%v", tc.headers, tc.msgID), func(t *testing.T) {
			js, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer js.Stop()
			p, err := env.Plan(ctx)
			if err != nil {
				t.Fatal(err)
			}
			p.Headers, p.MsgID = tc.headers, tc.msgID
			o := env.MigrateOptions()
			o.Target.URL, o.State = js.URL(), state.NewDir(t.TempDir())
			if _, err := migrate.Run(ctx, env.Src(t), p, o); err != nil {
				t.Fatal(err)
			}
			nc, err := nats.Connect(js.URL())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			jsc, _ := jetstream.New(nc)
			s, err := jsc.Stream(ctx, "payments")
			if err != nil {
				t.Fatal(err)
			}
			m, err := s.GetMsg(ctx, 300)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, k := range []string{jsformat.HdrTimestamp, jsformat.HdrChannel, jsformat.HdrSequence, jsformat.HdrMsgID, jsformat.HdrGap} {
				if m.Header.Get(k) != "" {
					got = append(got, k)
				}
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(got, want) {
				t.Errorf("message 300 carries %v, want %v (all headers: %v)", got, want, m.Header)
			}
			if tc.msgID && m.Header.Get(jsformat.HdrMsgID) != jsformat.MsgID("test-cluster", "payments", 300) {
				t.Errorf("Msg-Id %q", m.Header.Get(jsformat.HdrMsgID))
			}
		})
	}
}

// eventLog is a Reporter that keeps every event, and can cancel the run
// after some progress.
type eventLog struct {
	mu     sync.Mutex
	events []migrate.Event
	copied uint64
	cancel func()
	after  uint64
}

func (l *eventLog) Begin(uint64, uint64) {}
func (l *eventLog) Progress(m, _ uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.copied += m
	if l.cancel != nil && l.copied >= l.after {
		l.cancel()
	}
}
func (l *eventLog) Event(e migrate.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) kinds(kind migrate.EventKind) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.events {
		if e.Kind == kind {
			out = append(out, e.Channel+": "+e.Message)
		}
	}
	return out
}

// TestStreamsWithoutBatchesArePublishedOneByOne interrupts a run made
// with --publish async, whose streams take no fast-ingest batches, and
// resumes it with the default: the resumed channels say they publish each
// message asynchronously, the run ends exact, and streams made by the
// default path take batches.
func TestStreamsWithoutBatchesArePublishedOneByOne(t *testing.T) {
	env := startLarge(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p, err := env.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	log := &eventLog{cancel: stop, after: p.Totals.Msgs / 4}
	o := env.MigrateOptions()
	o.Publish, o.Reporter = migrate.PublishAsync, log
	if _, err := migrate.Run(runCtx, env.Src(t), p, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("the interrupted run: %v", err)
	}
	js := jsConn(t, env)
	batchedStreams := func() map[string]bool {
		out := map[string]bool{}
		for _, c := range p.Channels {
			if s, err := js.Stream(ctx, c.Stream); err == nil {
				out[c.Stream] = s.CachedInfo().Config.AllowBatchPublish
			}
		}
		return out
	}
	before := batchedStreams()
	if len(before) == 0 {
		t.Fatal("the interrupted run made no stream")
	}
	for name, b := range before {
		if b {
			t.Errorf("stream %q made with --publish async takes batches", name)
		}
	}

	resumed := &eventLog{}
	o.Publish, o.Reporter = migrate.PublishAuto, resumed
	verifyClean(t, ctx, env, func() error { _, err := migrate.Run(ctx, env.Src(t), p, o); return err })
	said := strings.Join(resumed.kinds("publishing"), "\n")
	for name := range before {
		if !strings.Contains(said, fmt.Sprintf("stream %q was not made with allow_batched", name)) {
			t.Errorf("resuming stream %q does not say it publishes each message asynchronously; it said:\n%s", name, said)
		}
	}
	// (Streams the default path makes take batches: see
	// TestMigrateCoreFixtureReproducesChannelsAndPositions; here every
	// stream exists before the resume.)
}
