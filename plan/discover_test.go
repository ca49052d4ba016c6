package plan_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-streaming-server/stores"
	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/plan"
)

// TestPlanListsAllThreeThousandChannelsAcrossPages plans a STAN server
// holding 3,000 channels, nearly three pages of channelsz at the server's
// default page size of 1024, and checks that every channel is planned
// with its own sequences. Channel i holds i%3+1 messages under a global
// max_msgs of 2, so a third of the channels start at sequence 2: a channel
// paired with another's numbers would show. The planning time is logged
// (README, "Planning at scale"); nothing asserts on it.
func TestPlanListsAllThreeThousandChannelsAcrossPages(t *testing.T) {
	const channels = 3000
	limits := &stores.StoreLimits{}
	limits.MaxMsgs = 2
	st, err := embedded.StartSTAN(embedded.STANConfig{Dir: t.TempDir(), Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	js, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer js.Stop()

	name := func(i int) string { return fmt.Sprintf("load.%04d", i) }
	want := map[string][2]uint64{} // first, last
	seeding := time.Now()
	sc, err := stan.Connect(st.ClusterID(), "seeder", stan.NatsURL(st.URL()))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var pubErr error
	for i := range channels {
		n := uint64(i%3 + 1)
		want[name(i)] = [2]uint64{max(1, n-1), n}
		for range n {
			wg.Add(1)
			if _, err := sc.PublishAsync(name(i), []byte("x"), func(_ string, err error) {
				if err != nil {
					mu.Lock()
					pubErr = err
					mu.Unlock()
				}
				wg.Done()
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	_ = sc.Close()
	if pubErr != nil {
		t.Fatal(pubErr)
	}
	// Every tenth channel gets a durable that received everything, left
	// offline: the subscriptions travel in the same pages.
	wc, err := stan.Connect(st.ClusterID(), "worker", stan.NatsURL(st.URL()))
	if err != nil {
		t.Fatal(err)
	}
	var got sync.WaitGroup
	for i := 0; i < channels; i += 10 {
		got.Add(int(want[name(i)][1] - want[name(i)][0] + 1))
		if _, err := wc.Subscribe(name(i), func(*stan.Msg) { got.Done() }, stan.DurableName("tail"), stan.DeliverAllAvailable()); err != nil {
			t.Fatal(err)
		}
	}
	got.Wait()
	_ = wc.Close()
	t.Logf("seeded %d channels in %v", channels, time.Since(seeding).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	src := testenv.Monitored(t, st.ClusterID(), st.URL(), st.MonitorURL())
	d, err := plan.Discover(ctx, src, conn.Side{Name: "JetStream", URL: js.URL()})
	if err != nil {
		t.Fatal(err)
	}
	discovered := time.Since(start)
	p := plan.Build(d, plan.Options{Now: time.Now()})
	built := time.Since(start)
	// What `stanmigrate plan` does next: write the plan file and the report.
	if err := plan.Save(filepath.Join(t.TempDir(), "plan.yaml"), p); err != nil {
		t.Fatal(err)
	}
	if err := report.Plan(io.Discard, p, report.Table); err != nil {
		t.Fatal(err)
	}
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	t.Logf("planned %d channels in %v: discovery %v, mapping %v, plan file and report %v", len(p.Channels),
		ms(time.Since(start)), ms(discovered), ms(built-discovered), ms(time.Since(start)-built))

	if len(p.Channels) != channels || p.Totals.Channels != channels {
		t.Fatalf("planned %d channels (totals %d), want %d", len(p.Channels), p.Totals.Channels, channels)
	}
	seen := map[string]bool{}
	for _, c := range p.Channels {
		w, ok := want[c.Name]
		switch {
		case !ok:
			t.Errorf("planned channel %q that was never created", c.Name)
		case seen[c.Name]:
			t.Errorf("channel %q planned twice", c.Name)
		case c.FirstSeq != w[0] || c.LastSeq != w[1] || c.Msgs != w[1]-w[0]+1:
			t.Errorf("channel %q planned as %d msgs %d..%d, STAN holds %d..%d", c.Name, c.Msgs, c.FirstSeq, c.LastSeq, w[0], w[1])
		case c.Stream != fmt.Sprintf("load_%s", c.Name[len("load."):]):
			t.Errorf("channel %q mapped to stream %q", c.Name, c.Stream)
		}
		var i int
		fmt.Sscanf(c.Name, "load.%d", &i)
		if i%10 != 0 {
			if len(c.Durables) != 0 {
				t.Errorf("channel %q: durables %+v on a channel without subscriptions", c.Name, c.Durables)
			}
		} else if len(c.Durables) != 1 || c.Durables[0].Consumer != "worker_tail" || c.Durables[0].LastSent != w[1] || c.Durables[0].StartSeq != w[1]+1 {
			t.Errorf("channel %q: want durable worker/tail caught up to %d, got %+v", c.Name, w[1], c.Durables)
		}
		seen[c.Name] = true
	}
	if len(p.Blockers()) != 0 {
		t.Errorf("blockers: %+v", p.Blockers())
	}
}
