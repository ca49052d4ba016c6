package plan_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/naming"
	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/migrate"
)

// streamLimits are a stream's limits as JetStream reports them: -1 is
// unlimited for counts and bytes, 0 for age.
type streamLimits struct {
	msgs, bytes int64
	age         time.Duration
	consumers   int
}

// TestSTANLimitsEndUpOnTheRightStreams migrates fixtures with global,
// literal and wildcard channel limits and reads each stream's limits back
// from JetStream: each carries its channel's effective STAN limit (the
// narrowest matching entry, a literal first, inheriting unset fields from
// wider ones; STAN's 0 = unlimited becomes JetStream's -1). The expected
// values are worked out by hand from the fixture files. The plan report
// says that each message keeps its STAN deadline (expiry: original).
func TestSTANLimitsEndUpOnTheRightStreams(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		fixture string
		want    map[string]streamLimits
	}{
		{"core.yaml", map[string]streamLimits{
			"orders.eu": {10000, 64 * mib, 0, 100},           // global
			"payments":  {300, 64 * mib, 0, 100},             // literal, the rest inherited from global
			"sessions":  {10000, 64 * mib, time.Second, 100}, // literal max_age
			"audit.log": {1000, 64 * mib, 0, 100},            // wildcard audit.*
		}},
		{"limits.yaml", map[string]streamLimits{
			"metrics.cpu":      {30, mib, time.Hour, 3}, // literal beats metrics.* beats metrics.>
			"metrics.mem":      {40, mib, time.Hour, -1},
			"metrics.disk.sda": {50, -1, time.Hour, -1}, // only metrics.> matches
			"logs":             {-1, -1, time.Hour, -1}, // global: unlimited except age
			"audit":            {-1, -1, 0, -1},         // negative max_age: unlimited
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			env := testenv.StartFixture(t, "../testdata/fixtures/"+tt.fixture)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			p, err := env.Plan(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var rep bytes.Buffer
			if err := report.Plan(&rep, p, report.Table); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(rep.String(), "keep STAN's deadlines (expiry: original)") {
				t.Errorf("the plan report does not say how JetStream counts max_age:\n%s", rep.String())
			}
			if _, err := migrate.Run(ctx, env.Src(t), p, env.MigrateOptions()); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			nc, err := nats.Connect(env.Pair.JetStream.URL())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			for channel, want := range tt.want {
				s, err := js.Stream(ctx, naming.StreamName(channel))
				if err != nil {
					t.Fatalf("channel %q: %v", channel, err)
				}
				c := s.CachedInfo().Config
				got := streamLimits{c.MaxMsgs, c.MaxBytes, c.MaxAge, c.MaxConsumers}
				if got != want {
					t.Errorf("channel %q: stream limits msgs %d bytes %d age %v consumers %d, want msgs %d bytes %d age %v consumers %d",
						channel, got.msgs, got.bytes, got.age, got.consumers, want.msgs, want.bytes, want.age, want.consumers)
				}
			}
		})
	}
}
