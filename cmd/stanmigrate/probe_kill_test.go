package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/monitor"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
)

// durableState is a durable's state on STAN, as monitoring shows it.
type durableState struct {
	online   bool
	clients  []string
	lastSent uint64
	pending  int
}

// durables reads every durable of a channel, queue group members merged.
func durables(t *testing.T, env *testenv.Env, channel string) map[string]durableState {
	t.Helper()
	cz, err := monitor.New(env.Pair.STAN.MonitorURL(), nil).Channel(context.Background(), channel)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]durableState{}
	for _, s := range cz.Subscriptions {
		if !s.IsDurable {
			continue
		}
		key := s.ClientID + ":" + s.DurableName
		if s.QueueName != "" {
			key = "queue " + s.QueueName
		}
		d := out[key]
		d.online = d.online || !s.IsOffline
		if !s.IsOffline {
			d.clients = append(d.clients, s.ClientID)
		}
		d.lastSent = max(d.lastSent, s.LastSent)
		d.pending += s.PendingCount
		out[key] = d
	}
	return out
}

// TestKillDuringAProbeThenRerunTakesTheProbeOver kills the migrator (as
// the kernel would, SIGKILL) while its probe holds a durable queue group,
// and separately a plain durable: STAN keeps the dead probe's client
// registered, so the durable shows online. The immediate re-run
// recognises its own probe from the checkpoint, takes the client id over,
// completes, and verify passes; the durable ends offline with the
// last_sent and pending count a clean run's probe leaves, which is what
// the rollback path (pointing the applications back at STAN) expects.
func TestKillDuringAProbeThenRerunTakesTheProbeOver(t *testing.T) {
	// What a clean run leaves on STAN.
	clean := startFixture(t, "probe.yaml")
	cleanPlan := t.TempDir() + "/plan.yaml"
	if r := run(t, envFor(clean), "plan", "-o", cleanPlan); r.code != 0 {
		t.Fatalf("plan: %s", r.stderr)
	}
	if r := run(t, envFor(clean), "migrate", "--plan", cleanPlan, "--quiet"); r.code != 0 {
		t.Fatalf("clean migrate: %s%s", r.stdout, r.stderr)
	}

	// Both ways a user runs it: with the plan file, and without (state
	// in ./stanmigrate-state, the re-run the same command).
	for _, withPlan := range []bool{true, false} {
		inv := "migrate --plan FILE/"
		if !withPlan {
			inv = "migrate without --plan/"
		}
		cases := []probeCase{
			{name: "durable queue group", channel: "jobs", key: "queue wq:workers"},
			{name: "plain durable", channel: "events", key: "app:tail"},
			{name: "plain durable, whose application comes back", channel: "events", key: "app:tail", appReturns: true},
		}
		if !withPlan {
			cases = append(cases, probeCase{name: "durable queue group, the state lost", channel: "jobs", key: "queue wq:workers", loseState: true})
		}
		for _, tc := range cases {
			t.Run(inv+tc.name, func(t *testing.T) { killDuringProbe(t, clean, withPlan, tc) })
		}
	}
}

type probeCase struct {
	name, channel, key string
	appReturns         bool
	// loseState: the re-run has no state (another machine, a lost
	// volume), so it must recognise the probe from its client id alone.
	loseState bool
}

func killDuringProbe(t *testing.T, clean *testenv.Env, withPlan bool, tc probeCase) {
	caught := false
	for try := 1; try <= 5 && !caught; try++ {
		env := startFixture(t, "probe.yaml")
		args := []string{"migrate"}
		verifyArgs := []string{"verify"}
		if withPlan {
			planFile := t.TempDir() + "/plan.yaml"
			if r := run(t, envFor(env), "plan", "-o", planFile); r.code != 0 {
				t.Fatalf("plan: %s", r.stderr)
			}
			args = append(args, "--plan", planFile)
			verifyArgs = append(verifyArgs, "--plan", planFile)
		} else {
			t.Chdir(t.TempDir())
		}
		if tc.loseState {
			// One channel at a time, so that the plain durable's probe
			// (under its owner's client id, which no fresh run can tell
			// from the owner) is over when the queue group's is killed.
			args = append(args, "--parallel", "1")
		}
		kp := killPoint{trigger: fmt.Sprintf("probing %q:", tc.channel), n: 1}
		if !killMigratorAt(t, envFor(env), args, kp) {
			t.Fatalf("the migrator finished before it probed %s", tc.key)
		}
		// A close the probe sent just before the kill may still be
		// on its way to STAN: give it time to land, so that what
		// is held now is held by a dead client.
		time.Sleep(300 * time.Millisecond)
		held := durables(t, env, tc.channel)[tc.key]
		if !held.online {
			// The probe had already let go when the kill landed:
			// nothing to take over this time.
			t.Logf("try %d: the probe of %s finished before SIGKILL; trying again", try, tc.key)
			continue
		}
		caught = true
		t.Logf("try %d: after SIGKILL %s is held by %v (last_sent %d, %d pending)", try, tc.key, held.clients, held.lastSent, held.pending)
		for _, c := range held.clients {
			if tc.key == "app:tail" && c != "app" || tc.key != "app:tail" && !strings.HasPrefix(c, "stanmigrate-probe-") {
				t.Errorf("%s is held by %q, not by the killed migrator's probe", tc.key, c)
			}
		}
		if tc.appReturns {
			// The application comes back before the re-run: STAN
			// hands it the client id the dead probe held, and the
			// re-run must leave its durable alone.
			app, err := stan.Connect(env.Pair.STAN.ClusterID(), "app", stan.NatsURL(env.Pair.STAN.URL()))
			if err != nil {
				t.Fatalf("the application cannot take its client id back: %v", err)
			}
			if _, err := app.Subscribe(tc.channel, func(*stan.Msg) {}, stan.DurableName("tail"), stan.SetManualAckMode(), stan.MaxInflight(8000)); err != nil {
				t.Fatal(err)
			}
			r := run(t, envFor(env), args...)
			if r.code == 0 || !strings.Contains(r.stderr, "owner is online") {
				t.Errorf("re-run with the application online: exit %d, want a refusal saying the owner is online\n%s", r.code, r.stderr)
			}
			_ = app.Close()
			if v := run(t, envFor(env), args...); v.code != 0 {
				t.Fatalf("re-run once the application left: exit %d\n%s%s", v.code, v.stdout, v.stderr)
			}
			if v := run(t, envFor(env), verifyArgs...); v.code != 0 {
				t.Fatalf("verify: exit %d\n%s%s", v.code, v.stdout, v.stderr)
			}
			continue
		}
		if tc.key == "queue wq:workers" {
			// A user who re-plans after the crash is told the
			// group is held by our probe, not by an application.
			pr := run(t, envFor(env), "plan", "-o", filepath.Join(t.TempDir(), "replan.yaml"))
			if pr.code != 0 || blocks(pr.stdout, `queue group "workers"`) || !strings.Contains(pr.stdout, "the probe of an interrupted migrate") {
				t.Errorf("plan after the kill: exit %d, want the queue group's holder named as our probe, not a blocker\n%s%s", pr.code, pr.stdout, pr.stderr)
			}
		}
		if tc.loseState {
			if err := os.RemoveAll("stanmigrate-state"); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		r := run(t, envFor(env), args...)
		if r.code != 0 {
			t.Fatalf("re-run after the kill: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stderr, "taking it over") {
			t.Errorf("the re-run does not say it took the probe over:\n%s", r.stderr)
		}
		t.Logf("re-run took %v", time.Since(start).Round(time.Millisecond))
		if v := run(t, envFor(env), verifyArgs...); v.code != 0 {
			t.Fatalf("verify: exit %d\n%s%s", v.code, v.stdout, v.stderr)
		}
		got, want := durables(t, env, tc.channel)[tc.key], durables(t, clean, tc.channel)[tc.key]
		if got.online || got.lastSent != want.lastSent || got.pending != want.pending {
			t.Errorf("%s on STAN after the take-over: online %v, last_sent %d, %d pending; after a clean run: online %v, last_sent %d, %d pending",
				tc.key, got.online, got.lastSent, got.pending, want.online, want.lastSent, want.pending)
		}
	}
	if !caught {
		t.Fatalf("5 kills never landed while the probe held %s", tc.key)
	}
}

// blocks reports whether a plan report lists a blocker about obj (the
// killed run's probe of a plain durable holds its owner's client id, so
// that durable is reported online: only the queue group is ours to see).
func blocks(report, obj string) bool {
	for _, line := range strings.Split(report, "\n") {
		if strings.HasPrefix(line, "BLOCKER") && strings.Contains(line, obj) {
			return true
		}
	}
	return false
}
