package migrate_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/plan"
)

// accountLimits configures the target so that clients without
// credentials land in an account with these JetStream limits (the body of
// a nats-server `jetstream {}` account block).
func accountLimits(t *testing.T, limits string) func(*natsd.Options) {
	conf := filepath.Join(t.TempDir(), "accounts.conf")
	body := "accounts { T { jetstream { " + limits + " }\n users = [ {user: t, password: t} ] } }\nno_auth_user: t\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(o *natsd.Options) {
		if err := o.ProcessConfigFile(conf); err != nil {
			panic(err)
		}
	}
}

// targetObjects lists every stream and consumer on the target with its
// configuration and state.
func targetObjects(t *testing.T, ctx context.Context, js jetstream.JetStream) []string {
	t.Helper()
	var out []string
	lister := js.ListStreams(ctx)
	for si := range lister.Info() {
		b, _ := json.Marshal(struct {
			C jetstream.StreamConfig
			S jetstream.StreamState
		}{si.Config, si.State})
		out = append(out, "stream "+string(b))
		s, err := js.Stream(ctx, si.Config.Name)
		if err != nil {
			t.Fatal(err)
		}
		for ci := range s.ListConsumers(ctx).Info() {
			b, _ := json.Marshal(ci.Config)
			out = append(out, "consumer "+si.Config.Name+" "+string(b))
		}
	}
	if err := lister.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestEachConflictIsABlockerAndMigrateCreatesNothing: for each kind of
// conflict between the STAN deployment and the target, plan reports it as
// a blocker (and nothing else as one), migrate refuses the plan with
// ErrBlocked, and the target's streams and consumers are exactly what they
// were before.
func TestEachConflictIsABlockerAndMigrateCreatesNothing(t *testing.T) {
	core := startCore(t)
	tests := []struct {
		name    string
		fixture string // "" = the core fixture
		target  func(t *testing.T) func(*natsd.Options)
		prepare func(t *testing.T, ctx context.Context, js jetstream.JetStream)
		// Every blocker must contain one of these, and each must be found.
		blockers []string
	}{
		{
			name: "stream exists with a different config",
			prepare: func(t *testing.T, ctx context.Context, js jetstream.JetStream) {
				mustStream(t, ctx, js, jetstream.StreamConfig{Name: "orders_eu", Subjects: []string{"orders.eu"}, Storage: jetstream.MemoryStorage})
			},
			blockers: []string{`stream "orders_eu" (channel "orders.eu"): already exists on the target with a different configuration: storage memory (plan: file)`},
		},
		{
			name: "stream exists with foreign data",
			prepare: func(t *testing.T, ctx context.Context, js jetstream.JetStream) {
				mustStream(t, ctx, js, jetstream.StreamConfig{Name: "payments", Subjects: []string{"payments"}})
				for range 2 {
					if _, err := js.Publish(ctx, "payments", []byte("someone else's")); err != nil {
						t.Fatal(err)
					}
				}
			},
			blockers: []string{`stream "payments" (channel "payments"): already exists on the target and holds 2 message(s) not written by stanmigrate`},
		},
		{
			name: "subjects overlap an existing stream",
			prepare: func(t *testing.T, ctx context.Context, js jetstream.JetStream) {
				mustStream(t, ctx, js, jetstream.StreamConfig{Name: "ALL_AUDIT", Subjects: []string{"audit.>"}})
			},
			blockers: []string{`stream "audit_log" (channel "audit.log"): subject "audit.log" overlaps stream "ALL_AUDIT" (subject "audit.>")`},
		},
		{
			name:    "stream names collide, also by case",
			fixture: "collisions.yaml",
			blockers: []string{
				`channels Orders.EU, orders_eu: map to stream names "Orders_EU", "orders_eu", which differ only in case`,
				`channels audit.log, audit_log: map to the same stream name "audit_log"`,
			},
		},
		{
			name:     "messages too large for the target's max_payload",
			target:   func(*testing.T) func(*natsd.Options) { return func(o *natsd.Options) { o.MaxPayload = 1100 } },
			blockers: []string{`channel "audit.log": its messages average 1090 bytes: with migration headers they exceed the target's max_payload 1100`},
		},
		{
			name:   "account storage too small",
			target: func(t *testing.T) func(*natsd.Options) { return accountLimits(t, "max_file: 300000") },
			blockers: []string{
				"target account: the plan needs about",
				"target account: the streams' max_bytes limits carried over from STAN reserve 268435456 bytes but the account has 300000 unreserved",
			},
		},
		{
			name:     "account allows too few streams",
			target:   func(t *testing.T) func(*natsd.Options) { return accountLimits(t, "max_streams: 3") },
			blockers: []string{"target account: the plan creates 4 stream(s) but the account allows 3 and 0 exist"},
		},
		{
			name:   "account allows too few consumers per stream",
			target: func(t *testing.T) func(*natsd.Options) { return accountLimits(t, "max_consumers: 2") },
			blockers: []string{
				"target account: 4 stream(s) carry STAN's max_subscriptions as max_consumers above the account's limit of 2 consumers per stream",
				"target account: the account allows 2 consumer(s) per stream but channel(s) orders.eu (3) have more durables",
			},
		},
		{
			name: "consumer exists with a different config",
			prepare: func(t *testing.T, ctx context.Context, js jetstream.JetStream) {
				// As an earlier run left it, then edited: ack_wait 5s, not the durable's 30s.
				mustStream(t, ctx, js, jetstream.StreamConfig{Name: "orders_eu", Subjects: []string{"orders.eu"}})
				_, err := js.CreateConsumer(ctx, "orders_eu", jetstream.ConsumerConfig{
					Durable: "reports_daily", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 5 * time.Second, MaxAckPending: 1024,
					DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 251,
					Metadata: map[string]string{jsformat.MetaChannel: "orders.eu", jsformat.MetaClientID: "reports", jsformat.MetaDurable: "daily", jsformat.MetaQueue: ""},
				})
				if err != nil {
					t.Fatal(err)
				}
			},
			blockers: []string{`consumer "reports_daily" on stream "orders_eu" (durable "daily" of client "reports" on channel "orders.eu"): already exists on the target with a different configuration: ack_wait 5s (plan: 30s)`},
		},
		{
			name: "consumer exists, not created by stanmigrate",
			prepare: func(t *testing.T, ctx context.Context, js jetstream.JetStream) {
				mustStream(t, ctx, js, jetstream.StreamConfig{Name: "orders_eu", Subjects: []string{"orders.eu"}})
				if _, err := js.CreateConsumer(ctx, "orders_eu", jetstream.ConsumerConfig{Durable: "billing_invoicer", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
					t.Fatal(err)
				}
			},
			blockers: []string{`consumer "billing_invoicer" on stream "orders_eu" (durable "invoicer" of client "billing" on channel "orders.eu"): a consumer "billing_invoicer" already exists on the target but was not created by stanmigrate`},
		},
		{
			name:     "durable owner online",
			fixture:  "online-owner.yaml",
			blockers: []string{`durable "levels" of client "stock" on channel "inventory": owner is online (client id stock)`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			env := core
			if tt.fixture != "" {
				env = testenv.StartFixture(t, "../testdata/fixtures/"+tt.fixture)
			}
			jcfg := embedded.JetStreamConfig{Dir: t.TempDir()}
			if tt.target != nil {
				jcfg.Configure = tt.target(t)
			}
			target, err := embedded.StartJetStream(jcfg)
			if err != nil {
				t.Fatal(err)
			}
			defer target.Stop()
			nc, err := nats.Connect(target.URL())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			if tt.prepare != nil {
				tt.prepare(t, ctx, js)
			}
			before := targetObjects(t, ctx, js)

			side := conn.Side{Name: "JetStream", URL: target.URL()}
			d, err := plan.Discover(ctx, env.Src(t), side)
			if err != nil {
				t.Fatal(err)
			}
			p := plan.Build(d, plan.Options{Now: time.Now()})
			found := make([]bool, len(tt.blockers))
			for _, b := range p.Blockers() {
				text := b.Object + ": " + b.Message
				known := false
				for i, w := range tt.blockers {
					if strings.Contains(text, w) {
						found[i], known = true, true
					}
				}
				if !known {
					t.Errorf("unexpected blocker: %s", text)
				}
			}
			for i, w := range tt.blockers {
				if !found[i] {
					t.Errorf("no blocker contains %q; findings: %+v", w, p.Findings)
				}
			}

			o := env.MigrateOptions()
			o.Target = side
			o.State = state.NewDir(t.TempDir())
			_, err = migrate.Run(ctx, env.Src(t), p, o)
			if !errors.Is(err, migrate.ErrBlocked) {
				t.Fatalf("migrate: want ErrBlocked, got %v", err)
			}
			if first := p.Blockers()[0]; !strings.Contains(err.Error(), first.Object) {
				t.Errorf("the error does not name the first blocker's object %q: %v", first.Object, err)
			}
			if after := targetObjects(t, ctx, js); strings.Join(after, "\n") != strings.Join(before, "\n") {
				t.Errorf("migrate changed the target:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
			}
		})
	}
}

func mustStream(t *testing.T, ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) {
	t.Helper()
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatalf("create stream %q: %v", cfg.Name, err)
	}
}
