package verify_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	sourcedir "github.com/stanmigrate/stanmigrate/internal/source/dir"
	"github.com/stanmigrate/stanmigrate/internal/testkit/storetest"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/internal/testkit/topotest"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/plan"
	"github.com/stanmigrate/stanmigrate/verify"
)

// migrated is the core fixture migrated from a live STAN server that has
// since been stopped, with a copy of its store directory.
type migrated struct {
	env  *testenv.Env
	plan *plan.Plan
	copy string
}

func migrateCore(t *testing.T) *migrated {
	t.Helper()
	env := testenv.StartFixture(t, "../testdata/fixtures/core.yaml")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := env.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Run(ctx, env.Src(t), p, env.MigrateOptions()); err != nil {
		t.Fatal(err)
	}
	env.Pair.STAN.Stop()
	m := &migrated{env: env, plan: p, copy: filepath.Join(t.TempDir(), "stan")}
	storetest.CopyDir(t, env.Pair.STAN.Dir(), m.copy)
	return m
}

func (m *migrated) verifyDir(t *testing.T, dir string, sample int) (*verify.Report, error) {
	t.Helper()
	src, err := sourcedir.Open(context.Background(), dir, sourcedir.Options{Limits: m.env.Spec.StoreLimits()})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	o := verify.Options{Target: m.env.Target(), Sample: sample}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return verify.Run(ctx, src, m.plan, o)
}

// Verifying a migration against the stopped server's directory passes,
// checks every durable's start against its exact stored position, and
// leaves the directory unchanged; verifying against the restarted server
// passes too.
func TestVerifyFromDir(t *testing.T) {
	m := migrateCore(t)
	before := storetest.Sums(t, m.copy)
	for _, sample := range []int{0, 25} {
		rep, err := m.verifyDir(t, m.copy, sample)
		if err != nil {
			t.Fatalf("verify (sample %d) from the directory: %v\n%+v", sample, err, rep)
		}
		if len(rep.Channels) != 4 || len(rep.Consumers) != 4 {
			t.Errorf("sample %d: %d channels and %d consumers verified, want 4 and 4", sample, len(rep.Channels), len(rep.Consumers))
		}
		for _, c := range rep.Consumers {
			if c.Durable == "audit:trail" && c.Expected != 41 {
				t.Errorf("audit:trail expected start %d, want 41 (its lowest pending sequence)", c.Expected)
			}
		}
	}
	storetest.SameSums(t, before, storetest.Sums(t, m.copy))

	if err := m.env.Pair.STAN.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if rep, err := verify.Run(ctx, m.env.Src(t), m.plan, m.env.VerifyOptions()); err != nil {
		t.Fatalf("verify against the restarted server: %v\n%+v", err, rep)
	}
}

// The directory is a real source of truth: a message missing from a
// stream, a consumer at the wrong start, a channel the directory cannot
// read and a damaged message are all reported, each naming what differs,
// and the other channels are still verified.
func TestVerifyFromDirFindsDifferences(t *testing.T) {
	m := migrateCore(t)
	_, js := topotest.JetStream(t, m.env.Pair.JetStream.URL())
	ctx := context.Background()
	s, err := js.Stream(ctx, "orders_eu")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(ctx, 300); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteConsumer(ctx, "reports_daily"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "reports_daily", AckPolicy: jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 250}); err != nil {
		t.Fatal(err)
	}
	paySubs := filepath.Join(m.copy, "payments", "subs.dat")
	storetest.FlipByte(t, paySubs, 20)
	auditDat := filepath.Join(m.copy, "audit.log", "msgs.1.dat")
	storetest.FlipByte(t, auditDat, 50_000)
	before := storetest.Sums(t, m.copy)

	rep, err := m.verifyDir(t, m.copy, 0)
	if !errors.Is(err, verify.ErrDifferences) {
		t.Fatalf("verify: %v, want ErrDifferences", err)
	}
	got := map[string]verify.ChannelReport{}
	for _, c := range rep.Channels {
		got[c.Channel] = c
	}
	if c := got["orders.eu"]; c.OK || c.MissingCount != 1 || len(c.Missing) != 1 || c.Missing[0] != 300 {
		t.Errorf("orders.eu: %+v, want sequence 300 missing", c)
	}
	if c := got["payments"]; c.OK || !strings.Contains(c.Problem, paySubs) || !strings.Contains(c.Problem, `"payments"`) {
		t.Errorf("payments: problem %q, want one naming the channel and %s", c.Problem, paySubs)
	}
	if c := got["audit.log"]; c.OK || !strings.Contains(c.Problem, auditDat) || !strings.Contains(c.Problem, "sequence") {
		t.Errorf("audit.log: problem %q, want one naming %s and the sequence", c.Problem, auditDat)
	}
	if c := got["sessions"]; !c.OK {
		t.Errorf("sessions: %s", c.Problem)
	}
	for _, c := range rep.Consumers {
		switch c.Durable {
		case "reports:daily":
			if c.OK || c.Expected != 251 || c.Actual != 250 {
				t.Errorf("reports:daily: %+v, want expected 251, actual 250, not OK", c)
			}
		default:
			if !c.OK && c.Channel != "payments" {
				t.Errorf("%s: %s", c.Durable, c.Problem)
			}
		}
	}
	storetest.SameSums(t, before, storetest.Sums(t, m.copy))
}
