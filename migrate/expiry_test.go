package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-streaming-server/stores"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/naming"
	"github.com/stanmigrate/stanmigrate/internal/source"
	sourcedir "github.com/stanmigrate/stanmigrate/internal/source/dir"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/serverbin"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/internal/testkit/topotest"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/plan"
	"github.com/stanmigrate/stanmigrate/verify"
)

// expiryMaxAge is short so the test watches every message expire; the
// two batches are published expiryStep apart, so the first is well aged
// when copied and the second barely.
const (
	expiryMaxAge  = 10 * time.Second
	expiryStep    = 6 * time.Second
	expiryBatch   = 40
	expiryChannel = "orders.expiring"
)

// ageingSTAN starts a STAN server whose channels keep messages for
// expiryMaxAge and publishes two batches expiryStep apart. It returns the
// STAN timestamp of every sequence.
func ageingSTAN(t *testing.T) (*embedded.STAN, map[uint64]int64) {
	t.Helper()
	lim := stores.DefaultStoreLimits
	lim.MaxAge = expiryMaxAge
	st, err := embedded.StartSTAN(embedded.STANConfig{Dir: filepath.Join(t.TempDir(), "stan"), Limits: &lim})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Stop)
	sc, err := stan.Connect(st.ClusterID(), "expiry-seeder", stan.NatsURL(st.URL()))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	for b := range 2 {
		if b > 0 {
			time.Sleep(expiryStep)
		}
		for i := range expiryBatch {
			if err := sc.Publish(expiryChannel, fmt.Appendf(nil, "batch %d message %d", b, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The timestamps STAN stamped, read back.
	stamps := map[uint64]int64{}
	done := make(chan struct{})
	sub, err := sc.Subscribe(expiryChannel, func(m *stan.Msg) {
		stamps[m.Sequence] = m.Timestamp
		if len(stamps) == 2*expiryBatch {
			close(done)
		}
	}, stan.DeliverAllAvailable())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("read back %d of %d timestamps", len(stamps), 2*expiryBatch)
	}
	_ = sub.Close()
	return st, stamps
}

// TestExpiryKeepsSTANDeadlines is the promise of expiry: original: on a
// target with per-message TTL, a channel with max_age whose messages are
// partly aged when copied ends with each message leaving the stream at
// its original deadline (STAN timestamp + max_age), never before it and at
// most a second after it plus the server's expiry timer, and verify
// passes before, during and after the expiry. It runs against
// nats-server 2.11 and 2.12 processes and the embedded current server.
func TestExpiryKeepsSTANDeadlines(t *testing.T) {
	for _, target := range []serverbin.Line{serverbin.Line2_11, serverbin.Line2_12, "embedded"} {
		t.Run(string(target), func(t *testing.T) {
			t.Parallel()
			var url string
			if target == "embedded" {
				js, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir()})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(js.Stop)
				url = js.URL()
			} else {
				url = serverbin.Start(t, target, serverbin.Options{}).URL()
			}
			expiryRun(t, url)
		})
	}
}

func expiryRun(t *testing.T, url string) {
	st, stamps := ageingSTAN(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	src := testenv.Monitored(t, st.ClusterID(), st.URL(), st.MonitorURL())
	side := conn.Side{Name: "JetStream", URL: url}
	d, err := plan.Discover(ctx, src, side)
	if err != nil {
		t.Fatal(err)
	}
	p := plan.Build(d, plan.Options{Now: time.Now()})
	c := p.Channel(expiryChannel)
	if c == nil || c.Expiry != plan.ExpiryOriginal {
		t.Fatalf("the plan gives channel %q expiry %+v, want %q", expiryChannel, c, plan.ExpiryOriginal)
	}
	copied := time.Now()
	if _, err := migrate.Run(ctx, src, p, migrate.Options{Target: side, State: state.NewDir(t.TempDir())}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	_, js := topotest.JetStream(t, url)
	stream, err := js.Stream(ctx, naming.StreamName(expiryChannel))
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	if !cfg.AllowMsgTTL || cfg.MaxAge != expiryMaxAge {
		t.Fatalf("stream config: allow_msg_ttl %v, max_age %v: want per-message TTL allowed and max_age %v kept for new messages", cfg.AllowMsgTTL, cfg.MaxAge, expiryMaxAge)
	}
	// Every message carries max_age minus its age when copied, in
	// whole seconds rounded up.
	for seq, ts := range stamps {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("sequence %d: %v", seq, err)
		}
		ttl, err := strconv.Atoi(m.Header.Get(jsformat.HdrTTL))
		left := time.Until(time.Unix(0, ts).Add(expiryMaxAge))
		if err != nil || time.Duration(ttl)*time.Second < left || time.Duration(ttl)*time.Second > time.Since(copied)+left+time.Second {
			t.Fatalf("sequence %d: Nats-TTL %q, its deadline is %v away", seq, m.Header.Get(jsformat.HdrTTL), left)
		}
	}
	verifyOK(t, ctx, src, p, side, "before any message expired")

	// Watch the stream's first sequence: when it passes a sequence, that
	// message is gone. Deadlines rise with sequences.
	gone := map[uint64]time.Time{}
	midVerified := false
	last := uint64(2 * expiryBatch)
	for len(gone) < len(stamps) {
		if time.Since(copied) > 2*expiryMaxAge+5*time.Second {
			t.Fatalf("after %v, %d of %d messages expired", time.Since(copied), len(gone), len(stamps))
		}
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		for seq := uint64(1); seq <= last && seq < info.State.FirstSeq; seq++ {
			if _, ok := gone[seq]; !ok {
				gone[seq] = now
			}
		}
		if !midVerified && len(gone) == expiryBatch {
			// The first batch is gone from both sides, the second not.
			midVerified = true
			verifyOK(t, ctx, src, p, side, "with the first batch expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var worst time.Duration
	for seq, at := range gone {
		deadline := time.Unix(0, stamps[seq]).Add(expiryMaxAge)
		late := at.Sub(deadline)
		if late < 0 {
			t.Errorf("sequence %d left the stream %v before its STAN deadline", seq, -late)
		}
		worst = max(worst, late)
		// Rounded up to the second, plus the server's expiry timer and
		// this 20 ms watch on a loaded machine.
		if late > 1500*time.Millisecond {
			t.Errorf("sequence %d left the stream %v after its STAN deadline", seq, late)
		}
	}
	t.Logf("%s: every message left the stream at most %v after its STAN deadline (rounding up to whole seconds accounts for up to 1 s)", t.Name(), worst)
	if !midVerified {
		t.Error("the first batch never expired alone: the middle verify did not run")
	}
	// STAN drops them on its own timer too.
	time.Sleep(time.Second)
	verifyOK(t, ctx, src, p, side, "after every message expired")
}

func verifyOK(t *testing.T, ctx context.Context, src source.Source, p *plan.Plan, side conn.Side, when string) {
	t.Helper()
	rep, err := verify.Run(ctx, src, p, verify.Options{Target: side})
	if err != nil {
		var msg string
		if rep != nil {
			for _, c := range rep.Channels {
				msg += c.Problem + "\n"
			}
		}
		t.Fatalf("verify %s: %v\n%s", when, err, msg)
	}
	t.Logf("%s: verify %s: ok (%d message(s) accepted as expired on one side)", t.Name(), when, rep.Channels[0].Expired)
}

// TestExpiryMigrationKeepsMaxAgeFromCopy: with plan --expiry migration
// the plan marks the channel so, no message carries a TTL and the stream
// keeps them past their STAN deadline; verify accepts what STAN dropped
// meanwhile, and still reports a message deleted from the stream before
// its deadline.
func TestExpiryMigrationKeepsMaxAgeFromCopy(t *testing.T) {
	st, stamps := ageingSTAN(t)
	js0, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(js0.Stop)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	src := testenv.Monitored(t, st.ClusterID(), st.URL(), st.MonitorURL())
	side := conn.Side{Name: "JetStream", URL: js0.URL()}
	d, err := plan.Discover(ctx, src, side)
	if err != nil {
		t.Fatal(err)
	}
	p := plan.Build(d, plan.Options{Now: time.Now(), Expiry: plan.ExpiryMigration})
	if c := p.Channel(expiryChannel); c == nil || c.Expiry != plan.ExpiryMigration {
		t.Fatalf("the plan gives channel %q expiry %+v, want %q", expiryChannel, c, plan.ExpiryMigration)
	}
	if _, err := migrate.Run(ctx, src, p, migrate.Options{Target: side, State: state.NewDir(t.TempDir())}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	_, js := topotest.JetStream(t, js0.URL())
	stream, err := js.Stream(ctx, naming.StreamName(expiryChannel))
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if v := m.Header.Get(jsformat.HdrTTL); v != "" || stream.CachedInfo().Config.AllowMsgTTL {
		t.Fatalf("expiry: migration: message 1 has Nats-TTL %q, stream allow_msg_ttl %v: want neither", v, stream.CachedInfo().Config.AllowMsgTTL)
	}
	// A real loss: a second-batch message, its deadline still ahead.
	lost := uint64(expiryBatch + 5)
	if err := stream.DeleteMsg(ctx, lost); err != nil {
		t.Fatal(err)
	}
	// Wait until STAN dropped the first batch, which the stream keeps.
	for {
		sc, err := src.Channel(ctx, expiryChannel)
		if err != nil {
			t.Fatal(err)
		}
		if sc.FirstSeq > expiryBatch {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("STAN still starts at sequence %d", sc.FirstSeq)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if time.Until(time.Unix(0, stamps[lost]).Add(expiryMaxAge)) < 2*time.Second {
		t.Fatal("the machine is too slow for this test: the lost message's deadline is about to pass")
	}
	rep, err := verify.Run(ctx, src, p, verify.Options{Target: side})
	if !errors.Is(err, verify.ErrDifferences) {
		t.Fatalf("verify with a message deleted before its deadline: %v, want differences", err)
	}
	cr := rep.Channels[0]
	if cr.MissingCount != 1 || len(cr.Missing) != 1 || cr.Missing[0] != lost || cr.ExtraCount != 0 || cr.Expired != expiryBatch {
		t.Fatalf("verify reports missing %v (%d), extra %v (%d), expired %d: want only sequence %d missing and the %d messages STAN expired accepted\n%s",
			cr.Missing, cr.MissingCount, cr.Extra, cr.ExtraCount, cr.Expired, lost, expiryBatch, cr.Problem)
	}
}

// TestExpiryOnTwoTen: nats-server 2.10 has no per-message TTL. Planned
// against it, a channel with max_age keeps expiry counted from the copy
// and the plan says why; a plan made for a newer target (expiry:
// original) is refused by migrate before anything is written.
func TestExpiryOnTwoTen(t *testing.T) {
	st, _ := ageingSTAN(t)
	old := serverbin.Start(t, serverbin.Line2_10, serverbin.Options{})
	cur, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cur.Stop)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	src := testenv.Monitored(t, st.ClusterID(), st.URL(), st.MonitorURL())
	planFor := func(url string) *plan.Plan {
		d, err := plan.Discover(ctx, src, conn.Side{Name: "JetStream", URL: url})
		if err != nil {
			t.Fatal(err)
		}
		return plan.Build(d, plan.Options{Now: time.Now()})
	}
	oldSide := conn.Side{Name: "JetStream", URL: old.URL()}

	// Made for the current server, run against 2.10: refused, nothing made.
	_, err = migrate.Run(ctx, src, planFor(cur.URL()), migrate.Options{Target: oldSide, State: state.NewDir(t.TempDir())})
	if !errors.Is(err, migrate.ErrBlocked) || !strings.Contains(err.Error(), "per-message TTL") {
		t.Fatalf("migrate of an expiry: original plan into nats-server %s: %v; want it refused for lack of per-message TTL", old.Version(), err)
	}
	_, js := topotest.JetStream(t, old.URL())
	if _, err := js.Stream(ctx, naming.StreamName(expiryChannel)); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("after the refused run, stream lookup says %v; want no stream", err)
	}

	// Planned against 2.10: expiry from the copy, said so, and it migrates.
	p := planFor(old.URL())
	if c := p.Channel(expiryChannel); c.Expiry != plan.ExpiryMigration {
		t.Fatalf("planned against nats-server %s, channel %q gets expiry %q, want %q", old.Version(), expiryChannel, c.Expiry, plan.ExpiryMigration)
	}
	said := false
	for _, f := range p.Findings {
		said = said || f.Object == "max_age" && strings.Contains(f.Message, "has no per-message TTL, which arrived in nats-server 2.11")
	}
	if !said {
		t.Errorf("the plan against nats-server %s does not say the limit stands: %+v", old.Version(), p.Findings)
	}
	if _, err := migrate.Run(ctx, src, p, migrate.Options{Target: oldSide, State: state.NewDir(t.TempDir())}); err != nil {
		t.Fatalf("migrate into nats-server %s: %v", old.Version(), err)
	}
	s, err := js.Stream(ctx, naming.StreamName(expiryChannel))
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if v := m.Header.Get(jsformat.HdrTTL); v != "" {
		t.Errorf("a message migrated into nats-server %s carries Nats-TTL %q", old.Version(), v)
	}
}

// TestExpiryResumeAfterTheStreamDroppedItsFront: a stopped STAN server's
// directory keeps serving messages that were within max_age when it was
// opened, long past their deadlines, as a live server whose expiry timer
// lags does for a moment. A first run is interrupted; by the re-run the
// copied messages have reached their TTLs and left the stream, so the
// stream starts past where it was positioned while STAN still holds those
// sequences. The re-run recognises that they expired (their deadlines
// passed) rather than stopping as if the target had lost data, copies the
// rest, all past their deadlines, with the least TTL (1 s), keeping
// sequences contiguous, and verify accepts what expired.
func TestExpiryResumeAfterTheStreamDroppedItsFront(t *testing.T) {
	const maxAge, total = 6 * time.Second, 5000
	lim := stores.DefaultStoreLimits
	lim.MaxAge = maxAge
	st, err := embedded.StartSTAN(embedded.STANConfig{Dir: filepath.Join(t.TempDir(), "stan"), Limits: &lim})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := stan.Connect(st.ClusterID(), "expiry-seeder", stan.NatsURL(st.URL()))
	if err != nil {
		t.Fatal(err)
	}
	acked := make(chan error, total)
	for i := range total {
		if _, err := sc.PublishAsync(expiryChannel, fmt.Appendf(nil, "message %d", i), func(_ string, err error) { acked <- err }); err != nil {
			t.Fatal(err)
		}
	}
	for range total {
		if err := <-acked; err != nil {
			t.Fatal(err)
		}
	}
	_ = sc.Close()
	st.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	src, err := sourcedir.Open(ctx, st.Dir(), sourcedir.Options{Limits: &lim, LimitsFrom: "the test"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	js0, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(js0.Stop)
	side := conn.Side{Name: "JetStream", URL: js0.URL()}
	d, err := plan.Discover(ctx, src, side)
	if err != nil {
		t.Fatal(err)
	}
	p := plan.Build(d, plan.Options{Now: time.Now()})
	if c := p.Channel(expiryChannel); c == nil || c.LastSeq != total || c.Expiry != plan.ExpiryOriginal {
		t.Fatalf("planned channel %+v: want %d messages with expiry %q", c, total, plan.ExpiryOriginal)
	}
	store := state.NewDir(t.TempDir())

	// The first run stops once some messages are stored.
	rctx, stop := context.WithCancel(ctx)
	_, err = migrate.Run(rctx, src, p, migrate.Options{Target: side, State: store, Window: 256, Reporter: cancelAfter{stop}})
	stop()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v, want it interrupted", err)
	}
	_, js := topotest.JetStream(t, js0.URL())
	stream, err := js.Stream(ctx, naming.StreamName(expiryChannel))
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil || info.State.LastSeq == 0 || info.State.LastSeq >= total {
		t.Fatalf("after the interrupted run the stream is at %+v (%v): want part of the channel", info.State, err)
	}
	stored := info.State.LastSeq
	// Wait until what was copied reached its deadline and left.
	for info.State.FirstSeq <= stored {
		if ctx.Err() != nil {
			t.Fatalf("the copied messages never expired: stream at %+v", info.State)
		}
		time.Sleep(100 * time.Millisecond)
		if info, err = stream.Info(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// What the re-run publishes, as a plain subscriber on the subject
	// sees it, headers included.
	nc, _ := topotest.JetStream(t, js0.URL())
	ttls := map[string]int{}
	var mu sync.Mutex
	sub, err := nc.Subscribe(expiryChannel, func(m *nats.Msg) {
		if len(m.Data) == 0 {
			return // a fast-ingest batch's end (EOB), not a message
		}
		mu.Lock()
		ttls[m.Header.Get(jsformat.HdrTTL)]++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	sum, err := migrate.Run(ctx, src, p, migrate.Options{Target: side, State: store})
	if err != nil {
		t.Fatalf("re-run after the stream's front expired: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = sub.Unsubscribe()
	mu.Lock()
	if len(ttls) != 1 || ttls["1"] != int(uint64(total)-stored) {
		t.Errorf("the re-run published messages with Nats-TTL values %v; want all %d past their deadlines with \"1\"", ttls, uint64(total)-stored)
	}
	mu.Unlock()
	if want := uint64(total) - stored; sum.Copied != want {
		t.Errorf("the re-run copied %d message(s), want %d (sequences %d..%d)", sum.Copied, want, stored+1, total)
	}
	if info, err = stream.Info(ctx); err != nil || info.State.LastSeq != total {
		t.Fatalf("stream after the re-run: %+v (%v): want its last sequence %d", info.State, err, total)
	}
	// Past their deadlines when copied: each kept for 1 s.
	for info.State.Msgs > 0 {
		if ctx.Err() != nil {
			t.Fatalf("messages copied past their deadlines are still there: %+v", info.State)
		}
		time.Sleep(100 * time.Millisecond)
		if info, err = stream.Info(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := verify.Run(ctx, src, p, verify.Options{Target: side})
	if err != nil {
		t.Fatalf("verify: %v (%+v)", err, rep)
	}
	if got := rep.Channels[0].Expired; got != total {
		t.Errorf("verify accepted %d message(s) as expired, want all %d: the directory still serves them, past their deadlines", got, total)
	}
}

// cancelAfter ends a run at its first progress report.
type cancelAfter struct{ stop context.CancelFunc }

func (c cancelAfter) Begin(uint64, uint64)    {}
func (c cancelAfter) Progress(uint64, uint64) { c.stop() }
func (c cancelAfter) Event(migrate.Event)     {}
