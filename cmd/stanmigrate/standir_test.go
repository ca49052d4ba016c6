package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/storetest"
)

// coreConfig is the core fixture's limits as a STAN configuration file:
// what an operator passes with --stan-config.
const coreConfig = `
streaming {
  id: test-cluster
  store: file
  store_limits {
    max_msgs: 10000
    max_bytes: 67108864
    max_subs: 100
    channels {
      payments: { max_msgs: 300 }
      sessions: { max_age: "1s" }
      "audit.*": { max_msgs: 1000 }
    }
  }
}
`

// The offline source end to end through the binary: a STAN server is
// migrated, stopped and its directory copied; plan and verify read the
// copy with no STAN server running and leave it unchanged; a directory a
// running server holds is refused; an unreadable channel stops plan with
// an error naming it, and --skip-broken plans and verifies the others.
func TestOfflineSourceThroughTheBinary(t *testing.T) {
	env := startFixture(t, "core.yaml")
	tmp := t.TempDir()
	livePlan := filepath.Join(tmp, "live.yaml")
	if r := run(t, envFor(env), "plan", "-o", livePlan); r.code != 0 {
		t.Fatalf("plan: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, envFor(env), "migrate", "--plan", livePlan); r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	env.Pair.STAN.Stop()
	dir := filepath.Join(tmp, "stan")
	storetest.CopyDir(t, env.Pair.STAN.Dir(), dir)
	conf := filepath.Join(tmp, "stan.conf")
	if err := os.WriteFile(conf, []byte(coreConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	before := storetest.Sums(t, dir)
	offline := []string{"NATS_URL=" + env.Pair.JetStream.URL(), "STAN_URL=", "STAN_MONITOR=", "STAN_CLUSTER="}

	dirPlan := filepath.Join(tmp, "dir.yaml")
	r := run(t, offline, "plan", "--stan-dir", dir, "--stan-config", conf, "-o", dirPlan)
	if r.code != 0 {
		t.Fatalf("plan --stan-dir: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"store limits from STAN configuration " + conf, "41 (exact)", "205 (exact)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan --stan-dir report lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, args := range [][]string{
		{"verify", "--stan-dir", dir, "--stan-config", conf, "--plan", livePlan, "--json"},
		{"verify", "--stan-dir", dir, "--stan-config", conf, "--json", "--state", filepath.Join(tmp, "verify.state")},
	} {
		if r := run(t, offline, args...); r.code != 0 || !strings.Contains(r.stdout, `"ok": true`) {
			t.Errorf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	storetest.SameSums(t, before, storetest.Sums(t, dir))

	// A directory a running server holds.
	if err := env.Pair.STAN.Start(); err != nil {
		t.Fatal(err)
	}
	r = run(t, offline, "plan", "--stan-dir", env.Pair.STAN.Dir(), "-o", "-")
	if r.code != 2 || !strings.Contains(r.stderr, env.Pair.STAN.Dir()) || !strings.Contains(r.stderr, "stop the STAN server") {
		t.Errorf("plan on a running server's directory: exit %d, want 2 naming the directory and the way out\n%s", r.code, r.stderr)
	}
	if r := run(t, envFor(env), "verify", "--plan", livePlan); r.code != 0 {
		t.Errorf("verify against the restarted server: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// An unreadable channel.
	subs := filepath.Join(dir, "payments", "subs.dat")
	storetest.FlipByte(t, subs, 20)
	r = run(t, offline, "plan", "--stan-dir", dir, "--stan-config", conf, "-o", "-")
	if r.code != 2 || !strings.Contains(r.stderr, `channel "payments"`) || !strings.Contains(r.stderr, subs) || !strings.Contains(r.stderr, "--skip-broken") {
		t.Errorf("plan with an unreadable channel: exit %d, want 2 naming the channel, %s and --skip-broken\n%s", r.code, subs, r.stderr)
	}
	r = run(t, offline, "plan", "--stan-dir", dir, "--stan-config", conf, "--skip-broken", "-o", "-")
	if r.code != 0 || !strings.Contains(r.stdout, "skipped (skip: true)") || !strings.Contains(r.stdout, subs) {
		t.Errorf("plan --skip-broken: exit %d, want 0 reporting payments skipped\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, offline, "verify", "--stan-dir", dir, "--stan-config", conf, "--skip-broken", "--plan", livePlan)
	if r.code != 0 || !strings.Contains(r.stderr, `skipped channel "payments"`) {
		t.Errorf("verify --skip-broken: exit %d, want 0 reporting payments skipped\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, offline, "verify", "--stan-dir", dir, "--stan-config", conf, "--plan", livePlan)
	if r.code != 1 || !strings.Contains(r.stdout, subs) {
		t.Errorf("verify without --skip-broken: exit %d, want 1 naming %s\n%s%s", r.code, subs, r.stdout, r.stderr)
	}

	if r := run(t, offline, "plan", "--stan-dir", dir, "--stan-url", "nats://127.0.0.1:1"); r.code != 2 || !strings.Contains(r.stderr, "--stan-dir replaces --stan-url") {
		t.Errorf("--stan-dir with --stan-url: exit %d\n%s", r.code, r.stderr)
	}
}

// TestMigrateFromACopiedDirectoryThenVerifyBothWays is the offline
// promise: with the STAN server stopped and its directory copied, migrate
// reads the copy (exact positions, no probe, the copy untouched), verify
// passes against the copy and against the restarted live server, and a
// damaged channel stops migrate naming it unless --skip-broken leaves it
// out and migrates the others.
func TestMigrateFromACopiedDirectoryThenVerifyBothWays(t *testing.T) {
	env := startFixture(t, "core.yaml")
	tmp := t.TempDir()
	env.Seeded.Close() // the non-durable's owner: a stopped server has no clients
	env.Pair.STAN.Stop()
	dir := filepath.Join(tmp, "stan")
	storetest.CopyDir(t, env.Pair.STAN.Dir(), dir)
	broken := filepath.Join(tmp, "stan-broken")
	storetest.CopyDir(t, env.Pair.STAN.Dir(), broken)
	conf := filepath.Join(tmp, "stan.conf")
	if err := os.WriteFile(conf, []byte(coreConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	before := storetest.Sums(t, dir)
	offline := []string{"NATS_URL=" + env.Pair.JetStream.URL(), "STAN_URL=", "STAN_MONITOR=", "STAN_CLUSTER="}
	state := filepath.Join(tmp, "state")

	r := run(t, offline, "migrate", "--stan-dir", dir, "--stan-config", conf, "--state", state, "--json")
	if r.code != 0 {
		t.Fatalf("migrate --stan-dir: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var sum struct {
		Channels []struct {
			Channel   string
			Status    string
			Consumers []struct {
				Consumer string `json:"consumer"`
				StartSeq uint64 `json:"start_seq"`
				Position string `json:"position"`
				Acked    uint64 `json:"acked"`
			}
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("migrate --json: %v\n%s", err, r.stdout)
	}
	found := false
	for _, c := range sum.Channels {
		for _, k := range c.Consumers {
			if k.Consumer == "audit_trail" {
				found = true
				// Pending 41,43,44,101-120 under last_sent 120: the 57
				// acknowledged in between are acked on the consumer.
				if k.StartSeq != 41 || k.Position != "stored" || k.Acked != 57 {
					t.Errorf("audit_trail: start %d position %q acked %d, want 41, stored, 57", k.StartSeq, k.Position, k.Acked)
				}
			}
		}
	}
	if !found {
		t.Errorf("no consumer audit_trail in the summary:\n%s", r.stdout)
	}
	if r := run(t, offline, "verify", "--stan-dir", dir, "--stan-config", conf, "--plan", filepath.Join(state, "plan.yaml")); r.code != 0 {
		t.Errorf("verify --stan-dir after migrating from it: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	storetest.SameSums(t, before, storetest.Sums(t, dir))

	if err := env.Pair.STAN.Start(); err != nil {
		t.Fatal(err)
	}
	if r := run(t, envFor(env), "verify", "--plan", filepath.Join(state, "plan.yaml")); r.code != 0 {
		t.Errorf("verify against the restarted server: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A damaged channel, migrated to an empty target.
	env.Pair.STAN.Stop()
	subs := filepath.Join(broken, "payments", "subs.dat")
	storetest.FlipByte(t, subs, 20)
	fresh, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: filepath.Join(tmp, "js2")})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Stop()
	second := []string{"NATS_URL=" + fresh.URL(), "STAN_URL=", "STAN_MONITOR=", "STAN_CLUSTER="}
	r = run(t, second, "migrate", "--stan-dir", broken, "--stan-config", conf, "--state", filepath.Join(tmp, "state2"))
	if r.code != 2 || !strings.Contains(r.stderr, `channel "payments"`) || !strings.Contains(r.stderr, subs) {
		t.Errorf("migrate with an unreadable channel: exit %d, want 2 naming the channel and %s\n%s%s", r.code, subs, r.stdout, r.stderr)
	}
	r = run(t, second, "migrate", "--stan-dir", broken, "--stan-config", conf, "--skip-broken", "--state", filepath.Join(tmp, "state3"))
	if r.code != 0 || !strings.Contains(r.stderr, `skipped channel "payments"`) || !strings.Contains(r.stdout, "orders.eu  orders_eu  complete") {
		t.Errorf("migrate --skip-broken: exit %d, want 0 migrating the others and reporting payments left out\n%s%s", r.code, r.stdout, r.stderr)
	}
}
