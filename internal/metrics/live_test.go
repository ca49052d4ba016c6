package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/stanmigrate/stanmigrate/internal/metrics"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/migrate"
)

// sumOf adds up a metric over its series (channels).
func sumOf(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.Metric {
			total += value(m)
		}
	}
	return total
}

func value(m *dto.Metric) float64 {
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// TestFailoversAreCounted restarts the JetStream server, then the STAN
// server, in the middle of capped migrations of the core fixture (so
// that each lasts a few seconds). A JetStream restart shows as a
// reconnect to the target (retries only if publishes were in flight); a
// STAN restart cuts the channels' reads, and the retries that ride it out
// count as failovers. Either way the run ends with no lag and the
// counters equal to the summary.
func TestFailoversAreCounted(t *testing.T) {
	for _, tc := range []struct {
		name    string
		restart func(*testenv.Env) error
		seen    string // the metric that must have counted it
	}{
		{"JetStream restart", func(e *testenv.Env) error { return e.Pair.JetStream.Restart() }, "stanmigrate_reconnects_total"},
		{"STAN restart", func(e *testenv.Env) error { return e.Pair.STAN.Restart() }, "stanmigrate_failovers_total"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testenv.StartFixture(t, "../../testdata/fixtures/core.yaml")
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			p, err := env.Plan(ctx)
			if err != nil {
				t.Fatal(err)
			}
			run := metrics.New(metrics.Options{})
			reg := prometheus.NewRegistry()
			reg.MustRegister(run)
			o := env.MigrateOptions()
			o.Reporter, o.Rate = run, float64(max(p.Totals.Msgs/4, 50))
			done := make(chan error, 1)
			var sum *migrate.Summary
			go func() {
				var err error
				sum, err = migrate.Run(ctx, env.Src(t), p, o)
				done <- err
			}()
			deadline := time.Now().Add(time.Minute)
			for sumOf(t, reg, "stanmigrate_copied_messages_total") < float64(p.Totals.Msgs)/5 {
				if time.Now().After(deadline) {
					t.Fatal("no progress within a minute")
				}
				time.Sleep(20 * time.Millisecond)
			}
			if left := sumOf(t, reg, "stanmigrate_lag_messages"); left == 0 {
				t.Fatal("nothing left to copy when the restart comes: it would not land mid-run")
			}
			if err := tc.restart(env); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("migrate: %v", err)
			}
			failovers, retries := sumOf(t, reg, "stanmigrate_failovers_total"), sumOf(t, reg, "stanmigrate_retries_total")
			t.Logf("%v failover(s) among %v retries, %v reconnect(s) to JetStream", failovers, retries, sumOf(t, reg, "stanmigrate_reconnects_total"))
			if n := sumOf(t, reg, tc.seen); n == 0 {
				t.Errorf("%s is 0 after the restart", tc.seen)
			}
			if retries < failovers {
				t.Errorf("failovers %v above retries %v", failovers, retries)
			}
			if lag := sumOf(t, reg, "stanmigrate_lag_messages"); lag != 0 {
				t.Errorf("lag %v at the end, want 0", lag)
			}
			if got := sumOf(t, reg, "stanmigrate_copied_messages_total"); got != float64(sum.Copied) {
				t.Errorf("copied %v, summary %d", got, sum.Copied)
			}
		})
	}
}
