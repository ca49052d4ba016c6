package state_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/serverbin"
)

func kvStore(t *testing.T, bucket string) (*state.KV, jetstream.JetStream) {
	t.Helper()
	js, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(js.Stop)
	nc, err := nats.Connect(js.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	j, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.OpenKV(context.Background(), j, bucket, state.KVOptions{Create: true, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	return st, j
}

// TestStoresCompareAndSet: both stores refuse a write against a revision
// that moved on, and a create over an existing key; names any stream can
// have round-trip through keys.
func TestStoresCompareAndSet(t *testing.T) {
	ctx := context.Background()
	kv, _ := kvStore(t, "cas")
	for _, st := range []state.Store{state.NewDir(filepath.Join(t.TempDir(), "st")), kv} {
		t.Run(st.String(), func(t *testing.T) {
			key := state.Key(state.KindCheckpoint, "orders:eu-1 ü")
			if state.Name(key) != "orders:eu-1 ü" || state.Kind(key) != state.KindCheckpoint {
				t.Fatalf("key %q reads back as %q of kind %q", key, state.Name(key), state.Kind(key))
			}
			if _, _, err := st.Get(ctx, key); !errors.Is(err, state.ErrNotFound) {
				t.Fatalf("get of a missing key: %v, want ErrNotFound", err)
			}
			r1, err := st.Put(ctx, key, []byte(`{"v":1}`), 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Put(ctx, key, []byte(`{"v":9}`), 0); !errors.Is(err, state.ErrConflict) {
				t.Fatalf("create over an existing key: %v, want ErrConflict", err)
			}
			r2, err := st.Put(ctx, key, []byte(`{"v":2}`), r1)
			if err != nil {
				t.Fatal(err)
			}
			// A writer still holding r1 is stale.
			if _, err := st.Put(ctx, key, []byte(`{"v":"stale"}`), r1); !errors.Is(err, state.ErrConflict) {
				t.Fatalf("write at a stale revision: %v, want ErrConflict", err)
			}
			b, rev, err := st.Get(ctx, key)
			if err != nil || string(b) != `{"v":2}` || rev != r2 {
				t.Fatalf("after the stale write: %q rev %d (%v), want {\"v\":2} rev %d", b, rev, err, r2)
			}
			keys, err := st.Keys(ctx, state.KindCheckpoint)
			if err != nil || len(keys) != 1 || keys[0] != key {
				t.Fatalf("keys %v (%v), want [%s]", keys, err, key)
			}
			if err := st.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Put(ctx, key, []byte(`{"v":3}`), 0); err != nil {
				t.Fatalf("create after delete: %v", err)
			}
		})
	}
}

// TestKVStoresLargeValues: a plan larger than a message is stored
// compressed and reads back whole.
func TestKVStoresLargeValues(t *testing.T) {
	ctx := context.Background()
	kv, _ := kvStore(t, "big")
	big := []byte("# plan\n" + strings.Repeat("- channel: orders.eu.region-0042\n  stream: orders_eu_region-0042\n", 40000))
	if len(big) < 2<<20 {
		t.Fatalf("test value is only %d bytes", len(big))
	}
	if err := state.SavePlan(ctx, kv, big); err != nil {
		t.Fatal(err)
	}
	got, err := state.SavedPlan(ctx, kv)
	if err != nil || string(got) != string(big) {
		t.Fatalf("plan read back: %d bytes (%v), want %d", len(got), err, len(big))
	}
}

// TestDirKeepsTheLayoutEarlierVersionsWrote: plan.yaml and <stream>.json
// at the top of the directory.
func TestDirKeepsTheLayoutEarlierVersionsWrote(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := state.NewDir(dir)
	if err := state.SavePlan(ctx, st, []byte("# plan\n")); err != nil {
		t.Fatal(err)
	}
	cps := state.NewCheckpoints(st, "w1")
	if err := cps.Save(ctx, &state.Checkpoint{Channel: "orders.eu", Stream: "orders_eu", LastSeq: 7}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"plan.yaml", "orders_eu.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	all, err := state.AllCheckpoints(ctx, st)
	if err != nil || len(all) != 1 || all[0].LastSeq != 7 || all[0].Worker != "w1" {
		t.Fatalf("checkpoints %+v (%v)", all, err)
	}
	if err := st.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("state directory still there after Destroy: %v", err)
	}
}

// TestCheckpointOfAStaleWorkerIsRefused: two workers read the same
// checkpoint; the one that writes second has a stale view and is told so.
func TestCheckpointOfAStaleWorkerIsRefused(t *testing.T) {
	ctx := context.Background()
	kv, _ := kvStore(t, "stale")
	a, b := state.NewCheckpoints(kv, "a"), state.NewCheckpoints(kv, "b")
	if err := a.Save(ctx, &state.Checkpoint{Stream: "s", LastSeq: 10}); err != nil {
		t.Fatal(err)
	}
	cpA, _ := a.Load(ctx, "s")
	cpB, _ := b.Load(ctx, "s")
	cpB.LastSeq = 20
	if err := b.Save(ctx, cpB); err != nil {
		t.Fatal(err)
	}
	cpA.LastSeq = 15
	if err := a.Save(ctx, cpA); !errors.Is(err, state.ErrStale) {
		t.Fatalf("stale save: %v, want ErrStale", err)
	}
	got, _ := b.Load(ctx, "s")
	if got.LastSeq != 20 || got.Worker != "b" {
		t.Fatalf("checkpoint after the stale save: last %d by %q, want 20 by b", got.LastSeq, got.Worker)
	}
}

// TestLeases: one holder at a time; a lease whose revision stops moving
// for a TTL is taken over, and its old holder learns it lost it. On the
// embedded server (2.15) and on real 2.12 and 2.10 processes: 2.10 has no
// per-key TTL, so expiry rests on the revision alone; 2.11+ also drops
// an abandoned lease by itself.
func TestLeases(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		kv, _ := kvStore(t, "leases")
		leaseScenario(t, kv, true)
	})
	for _, l := range []serverbin.Line{serverbin.Line2_10, serverbin.Line2_12} {
		t.Run("nats-server "+string(l), func(t *testing.T) {
			t.Parallel()
			srv := serverbin.Start(t, l, serverbin.Options{})
			nc, err := nats.Connect(srv.URL())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			kv, err := state.OpenKV(context.Background(), js, "leases", state.KVOptions{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			leaseScenario(t, kv, l != serverbin.Line2_10)
		})
	}
}

func leaseScenario(t *testing.T, kv state.Store, keyTTL bool) {
	ctx := context.Background()
	ttl := 3 * time.Second
	a, b := state.NewLeaser(kv, ttl), state.NewLeaser(kv, ttl)
	ha, _, err := a.Acquire(ctx, "orders")
	if err != nil || ha == nil {
		t.Fatalf("first claim: %v %v", ha, err)
	}
	hb, holder, err := b.Acquire(ctx, "orders")
	if err != nil || hb != nil || holder == nil || holder.Worker != a.Worker() {
		t.Fatalf("second claim while held: held %v, holder %+v, %v; want refused naming %s", hb, holder, err, a.Worker())
	}
	// a renews: b keeps seeing new revisions and never takes it.
	rctx, stop := context.WithCancel(ctx)
	go a.Renew(rctx)
	deadline := time.Now().Add(2 * ttl)
	for time.Now().Before(deadline) {
		if hb, _, _ := b.Acquire(ctx, "orders"); hb != nil {
			t.Fatal("b took a lease a kept renewing")
		}
		time.Sleep(300 * time.Millisecond)
	}
	// a stops renewing (a paused or dead machine): after a TTL b has it.
	stop()
	start := time.Now()
	for hb == nil && time.Since(start) < 3*ttl {
		time.Sleep(200 * time.Millisecond)
		if hb, _, err = b.Acquire(ctx, "orders"); err != nil {
			t.Fatal(err)
		}
	}
	if hb == nil {
		t.Fatalf("b never took over a lease left unrenewed for %v", time.Since(start))
	}
	t.Logf("taken over %v after the holder stopped renewing (TTL %v)", time.Since(start).Round(100*time.Millisecond), ttl)
	// a wakes up and renews: it learns it lost the lease.
	rctx2, stop2 := context.WithCancel(ctx)
	defer stop2()
	go a.Renew(rctx2)
	select {
	case <-ha.Lost():
	case <-time.After(2 * ttl):
		t.Fatal("the old holder was never told it lost the lease")
	}
	leases, err := state.Leases(ctx, kv)
	if err != nil || leases["orders"].Worker != b.Worker() {
		t.Fatalf("leases %+v (%v), want orders held by %s", leases, err, b.Worker())
	}
	if !keyTTL {
		return
	}
	// b dies without releasing: where keys expire, the lease is gone a
	// TTL after its last write, for any worker to claim at once.
	time.Sleep(ttl + 2*time.Second)
	if _, _, err := kv.Get(ctx, state.Key(state.KindLease, "orders")); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("an abandoned lease is still there %v after its last write: %v", ttl+2*time.Second, err)
	}
	c := state.NewLeaser(kv, ttl)
	if hc, _, err := c.Acquire(ctx, "orders"); err != nil || hc == nil {
		t.Fatalf("claim after the lease expired by itself: %v %v", hc, err)
	}
}
