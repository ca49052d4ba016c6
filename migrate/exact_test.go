package migrate_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/naming"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/plan"
	"github.com/stanmigrate/stanmigrate/verify"
)

// deliveries reads what an application would receive from a pull
// consumer: n messages, acking each, as a service would.
func pullDeliveries(t *testing.T, ctx context.Context, js jetstream.JetStream, stream, consumer string, n int) []uint64 {
	t.Helper()
	c, err := js.Consumer(ctx, stream, consumer)
	if err != nil {
		t.Fatalf("consumer %q: %v", consumer, err)
	}
	var got []uint64
	for len(got) < n {
		batch, err := c.Fetch(n-len(got), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for m := range batch.Messages() {
			md, _ := m.Metadata()
			got = append(got, md.Sequence.Stream)
			_ = m.Ack()
			k++
		}
		if k == 0 {
			break
		}
	}
	return got
}

func pushDeliveries(t *testing.T, nc *nats.Conn, subject string, n int) []uint64 {
	t.Helper()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	var got []uint64
	for len(got) < n {
		m, err := sub.NextMsg(3 * time.Second)
		if err != nil {
			break
		}
		md, _ := m.Metadata()
		got = append(got, md.Sequence.Stream)
		_ = m.Ack()
	}
	return got
}

func seqRange(lo, hi uint64) []uint64 {
	var s []uint64
	for i := lo; i <= hi; i++ {
		s = append(s, i)
	}
	return s
}

// TestConsumersRedeliverExactlyWhatSTANWould migrates durables whose
// acknowledged sets have holes: each consumer delivers the pending
// messages, then the ones STAN had not sent, and never one the
// application had acknowledged on STAN; for pull and push consumers, a
// queue group, and a durable whose lowest pending messages were dropped.
// With AtLeastOnce the consumer starts at the lowest unacknowledged
// sequence and the run reports how many acknowledged messages come again.
func TestConsumersRedeliverExactlyWhatSTANWould(t *testing.T) {
	for _, atLeastOnce := range []bool{false, true} {
		t.Run(fmt.Sprintf("at-least-once=%v", atLeastOnce), func(t *testing.T) {
			env, ctx, p := planned(t, "exact-state.yaml")
			const pushSubject = "deliver.notifier"
			for ci := range p.Channels {
				for di := range p.Channels[ci].Durables {
					if d := &p.Channels[ci].Durables[di]; d.ClientID == "notifier" {
						d.Mode, d.DeliverTo = plan.ModePush, pushSubject
					}
				}
			}
			o := env.MigrateOptions()
			o.AtLeastOnce = atLeastOnce
			sum, err := migrate.Run(ctx, env.Src(t), p, o)
			if err != nil {
				t.Fatalf("migrate: %v", err)
			}
			outcome := map[string]migrate.ConsumerResult{}
			for _, c := range sum.Channels {
				for _, cr := range c.Consumers {
					outcome[cr.Consumer] = cr
				}
			}
			js := jsConn(t, env)
			nc, err := nats.Connect(env.Pair.JetStream.URL())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()

			cases := []struct {
				channel, consumer string
				push              bool
				exact             []uint64 // first deliveries with exact state
				start             uint64
				seenAgain         uint64
			}{
				{"jobs", naming.ConsumerName("worker", "w", ""), false, []uint64{2, 4, 5, 6, 7, 8}, 2, 1},
				{"jobs", naming.ConsumerName("notifier", "n", ""), true, []uint64{2, 4, 5, 6, 7, 8}, 2, 1},
				{"jobs", naming.ConsumerName("", "q", "crew"), false, []uint64{2, 4, 5, 6, 7, 8}, 2, 1},
				{"jobs.trimmed", naming.ConsumerName("trimmer", "t", ""), false, []uint64{12, 16, 18, 19, 20}, 12, 4},
			}
			for _, tc := range cases {
				stream := naming.StreamName(tc.channel)
				want := tc.exact
				if atLeastOnce {
					want = seqRange(tc.start, tc.start+uint64(len(tc.exact))-1)
				}
				var got []uint64
				if tc.push {
					got = pushDeliveries(t, nc, pushSubject, len(want))
				} else {
					got = pullDeliveries(t, ctx, js, stream, tc.consumer, len(want))
				}
				if !slices.Equal(got, want) {
					t.Errorf("consumer %q on %q delivers %v, want %v", tc.consumer, stream, got, want)
				}
				out := outcome[tc.consumer]
				if atLeastOnce && out.SeenAgain != tc.seenAgain {
					t.Errorf("consumer %q: reported %d message(s) seen again, want %d", tc.consumer, out.SeenAgain, tc.seenAgain)
				}
				if !atLeastOnce && out.Acked != tc.seenAgain {
					t.Errorf("consumer %q: reported %d message(s) acknowledged, want %d", tc.consumer, out.Acked, tc.seenAgain)
				}
				var cfg jetstream.ConsumerConfig
				if tc.push {
					c, err := js.PushConsumer(ctx, stream, tc.consumer)
					if err != nil {
						t.Fatal(err)
					}
					cfg = c.CachedInfo().Config
				} else {
					c, err := js.Consumer(ctx, stream, tc.consumer)
					if err != nil {
						t.Fatal(err)
					}
					cfg = c.CachedInfo().Config
				}
				wantInflight := 10 // the fixture's max_inflight per channel
				if tc.channel == "jobs.trimmed" {
					wantInflight = 40
				}
				if cfg.AckWait != 30*time.Second || cfg.MaxAckPending != wantInflight {
					t.Errorf("consumer %q: ack wait %v, max ack pending %d: want the durable's 30s and %d", tc.consumer, cfg.AckWait, cfg.MaxAckPending, wantInflight)
				}
				if tc.push && cfg.DeliverSubject != pushSubject {
					t.Errorf("push consumer delivers to %q, want %q", cfg.DeliverSubject, pushSubject)
				}
			}
			// The application consumed above; verify checks positions
			// against the recorded start, which consuming does not move.
			rep, err := verify.Run(ctx, env.Src(t), p, env.VerifyOptions())
			if err != nil {
				t.Fatalf("verify after migrate: %v (%+v)", err, rep)
			}
		})
	}
}

// TestHalfSettledConsumerIsRebuiltFromTheRecordedProbe: a run that dies
// while acknowledging on a new consumer leaves it marked unsettled; the
// next run rebuilds it from the probe recorded in the checkpoint (a second
// probe would count the messages the first one was sent as pending), so
// the application still sees exactly STAN's pending set.
func TestHalfSettledConsumerIsRebuiltFromTheRecordedProbe(t *testing.T) {
	env, ctx, p := planned(t, "exact-state.yaml")
	if _, err := migrate.Run(ctx, env.Src(t), p, env.MigrateOptions()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	js := jsConn(t, env)
	name := naming.ConsumerName("worker", "w", "")
	// What a crash mid-settle leaves: a consumer marked unsettled whose
	// delivery state is not STAN's (here: two messages consumed).
	if got := pullDeliveries(t, ctx, js, "jobs", name, 2); !slices.Equal(got, []uint64{2, 4}) {
		t.Fatalf("first deliveries %v, want [2 4]", got)
	}
	c, err := js.Consumer(ctx, "jobs", name)
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.CachedInfo().Config
	cfg.Metadata[jsformat.MetaSettled] = "no"
	if _, err := js.UpdateConsumer(ctx, "jobs", cfg); err != nil {
		t.Fatal(err)
	}

	sum, err := migrate.Run(ctx, env.Src(t), p, env.MigrateOptions())
	if err != nil {
		t.Fatalf("re-run: %v", err)
	}
	var rebuilt *migrate.ConsumerResult
	for _, ch := range sum.Channels {
		for i, cr := range ch.Consumers {
			if cr.Consumer == name {
				rebuilt = &ch.Consumers[i]
			}
		}
	}
	if rebuilt == nil || rebuilt.Status != "created" || !slices.Equal(rebuilt.Pending, []uint64{2, 4, 5}) || rebuilt.Acked != 1 {
		t.Fatalf("re-run must rebuild %q from the recorded probe (pending [2 4 5], 1 acked), got %+v", name, rebuilt)
	}
	if got := pullDeliveries(t, ctx, js, "jobs", name, 5); !slices.Equal(got, []uint64{2, 4, 5, 6, 7}) {
		t.Errorf("rebuilt consumer delivers %v, want [2 4 5 6 7]", got)
	}
}
