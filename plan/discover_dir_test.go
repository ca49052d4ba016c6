package plan_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/source/dir"
	"github.com/stanmigrate/stanmigrate/internal/stanstore"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/storetest"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/plan"
)

const coreFixture = "../testdata/fixtures/core.yaml"

// dirEnv is a seeded STAN directory (server stopped), a copy of it, and a
// JetStream target.
type dirEnv struct {
	seeded *storetest.Seeded
	copy   string
	js     *embedded.JetStream
}

func startDirEnv(t *testing.T) *dirEnv {
	t.Helper()
	s, err := storetest.Seed(storetest.Timeout(t), t.TempDir(), coreFixture, storetest.SliceMaxMsgs(64))
	if err != nil {
		t.Fatal(err)
	}
	js, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(js.Stop)
	e := &dirEnv{seeded: s, copy: filepath.Join(t.TempDir(), "stan-copy"), js: js}
	storetest.CopyDir(t, s.Dir, e.copy)
	return e
}

func (e *dirEnv) planDir(t *testing.T, skipBroken bool) (*plan.Plan, *plan.Discovery) {
	t.Helper()
	src, err := dir.Open(context.Background(), e.copy, dir.Options{
		Limits: e.seeded.Spec.StoreLimits(), LimitsFrom: "test limits", ClusterID: embedded.ClusterID,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	d, err := plan.Discover(context.Background(), src, conn.Side{Name: "JetStream", URL: e.js.URL()})
	if err != nil {
		t.Fatal(err)
	}
	return plan.Build(d, plan.Options{Now: time.Now(), SkipBroken: skipBroken}), d
}

// A plan made from the stopped server's directory maps the same channels,
// limits and durables as a plan made from the running server's
// monitoring, and knows every durable's exact start where monitoring
// needs a probe. The directory is left unchanged.
func TestPlanFromDirMatchesLivePlan(t *testing.T) {
	e := startDirEnv(t)
	before := storetest.Sums(t, e.copy)
	fromDir, _ := e.planDir(t, false)
	storetest.SameSums(t, before, storetest.Sums(t, e.copy))

	// The same state, planned live: revive the server on its directory.
	if err := e.seeded.STAN.Start(); err != nil {
		t.Fatal(err)
	}
	defer e.seeded.STAN.Stop()
	src := testenv.Monitored(t, embedded.ClusterID, e.seeded.STAN.URL(), e.seeded.STAN.MonitorURL())
	d, err := plan.Discover(context.Background(), src, conn.Side{Name: "JetStream", URL: e.js.URL()})
	if err != nil {
		t.Fatal(err)
	}
	live := plan.Build(d, plan.Options{Now: time.Now()})

	if len(fromDir.Channels) != len(live.Channels) {
		t.Fatalf("%d channels from the directory, %d live", len(fromDir.Channels), len(live.Channels))
	}
	expect := e.seeded.Spec.Expect()
	for _, lc := range live.Channels {
		dc := fromDir.Channel(lc.Name)
		if dc == nil {
			t.Errorf("channel %q missing from the directory's plan", lc.Name)
			continue
		}
		if dc.Stream != lc.Stream || dc.Skip || dc.FirstSeq != lc.FirstSeq || dc.LastSeq != lc.LastSeq ||
			dc.Msgs != lc.Msgs || dc.Bytes != lc.Bytes || dc.Limits != lc.Limits {
			t.Errorf("channel %q:\n dir  %+v\n live %+v", lc.Name, *dc, lc)
		}
		if len(dc.Durables) != len(lc.Durables) {
			t.Errorf("channel %q: %d durables from the directory, %d live", lc.Name, len(dc.Durables), len(lc.Durables))
			continue
		}
		for i, ld := range lc.Durables {
			dd := dc.Durables[i]
			if dd.Key() != ld.Key() || dd.Consumer != ld.Consumer || dd.MaxInflight != ld.MaxInflight ||
				dd.AckWait != ld.AckWait || dd.LastSent != ld.LastSent || dd.Pending != ld.Pending || dd.Online {
				t.Errorf("channel %q durable %d:\n dir  %+v\n live %+v", lc.Name, i, dd, ld)
			}
			var want fixture.DurableExpect
			for k, de := range expect[lc.Name].Durables {
				if k.Durable == ld.Durable && (k.Queue == ld.QueueGroup) && (k.Queue != "" || k.ClientID == ld.ClientID) {
					want = de
				}
			}
			if dd.Position != jsformat.Exact || dd.StartSeq != want.Start {
				t.Errorf("channel %q %s: start %d (%s), want %d exact (live plan: %d, %s)",
					lc.Name, dd.Key(), dd.StartSeq, dd.Position, want.Start, ld.StartSeq, ld.Position)
			}
		}
	}
	if !slices.Equal(fromDir.NonDurables, live.NonDurables) {
		t.Errorf("non-durables from the directory %+v, live %+v", fromDir.NonDurables, live.NonDurables)
	}
	if fromDir.Source.ClusterID != embedded.ClusterID || !strings.Contains(fromDir.Source.URL, e.copy) {
		t.Errorf("source %+v should name the cluster and the directory", fromDir.Source)
	}
	if len(fromDir.Blockers()) != 0 {
		t.Errorf("blockers in the directory's plan: %+v", fromDir.Blockers())
	}
}

// A channel the directory cannot read is a blocker naming the channel and
// the file, or, with SkipBroken, a skipped channel with a warning; the
// other channels are planned either way.
func TestPlanFromDirWithBrokenChannel(t *testing.T) {
	e := startDirEnv(t)
	subs := filepath.Join(e.copy, "payments", "subs.dat")
	storetest.FlipByte(t, subs, 20)

	p, d := e.planDir(t, false)
	errs := d.Unreadable(p)
	if len(errs) != 1 || !errors.Is(errs[0], stanstore.ErrBroken) || !strings.Contains(errs[0].Error(), `channel "payments"`) || !strings.Contains(errs[0].Error(), subs) {
		t.Errorf("unreadable channels %v, want one ErrBroken naming payments and %s", errs, subs)
	}
	blocked := false
	for _, f := range p.Blockers() {
		blocked = blocked || (f.Object == `channel "payments"` && strings.Contains(f.Message, subs))
	}
	if !blocked {
		t.Errorf("no blocker for payments naming %s: %+v", subs, p.Findings)
	}

	p, d = e.planDir(t, true)
	if errs := d.Unreadable(p); len(errs) != 0 {
		t.Errorf("with SkipBroken, still unreadable: %v", errs)
	}
	if c := p.Channel("payments"); c == nil || !c.Skip {
		t.Errorf("payments not planned as skipped: %+v", c)
	}
	warned := false
	for _, f := range p.Findings {
		warned = warned || (f.Severity == plan.Warning && f.Object == `channel "payments"` && strings.Contains(f.Message, subs))
	}
	if !warned || len(p.Blockers()) != 0 {
		t.Errorf("want a warning naming %s and no blocker: %+v", subs, p.Findings)
	}
	if len(p.Active()) != 3 {
		t.Errorf("%d channels to migrate, want the 3 readable ones", len(p.Active()))
	}

	// The directory knows its cluster: a different --cluster is refused.
	_, err := dir.Open(context.Background(), e.copy, dir.Options{Limits: e.seeded.Spec.StoreLimits(), ClusterID: "other-cluster"})
	if !errors.Is(err, conn.ErrWrongCluster) || !strings.Contains(err.Error(), embedded.ClusterID) {
		t.Errorf("wrong cluster: %v, want ErrWrongCluster naming %q", err, embedded.ClusterID)
	}
}
