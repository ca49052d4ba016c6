package main

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/plan"
)

// planShape is what the capture must keep of a plan: channels with their
// sequences and counts, durables with their positions.
func planShape(t *testing.T, env []string) map[string]string {
	t.Helper()
	r := run(t, env, "plan", "-o", "-", "--format", "json")
	if r.code != 0 {
		t.Fatalf("plan: exit %d\n%s", r.code, r.stderr)
	}
	var p plan.Plan
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("plan --format json: %v\n%s", err, r.stdout)
	}
	shape := map[string]string{}
	for _, c := range p.Channels {
		shape[c.Name] = jsonOf(t, []any{c.Stream, c.FirstSeq, c.LastSeq, c.Msgs, c.Limits.MaxMsgs, c.Limits.MaxAge})
		for _, d := range c.Durables {
			shape[c.Name+" "+d.Key()] = jsonOf(t, []any{d.Consumer, d.LastSent, d.Pending, d.StartSeq, d.Position, d.MaxInflight, d.AckWait})
		}
	}
	return shape
}

func jsonOf(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCaptureOfTheDemoLoadedIntoAFreshSTANPlansTheSame is the rehearsal
// promise through the commands: `fixture capture` of the demo's STAN,
// `fixture load` of that file into a fresh STAN started with the limits
// the capture recorded, and `plan` on both give the same channels,
// sequences and durable positions.
func TestCaptureOfTheDemoLoadedIntoAFreshSTANPlansTheSame(t *testing.T) {
	ctx := t.Context()
	demo, err := testenv.Start(ctx, t.TempDir(), fixture.Demo())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(demo.Stop)
	demo.Seeded.Close() // captured and loaded owners are offline
	want := planShape(t, envFor(demo))

	spec := filepath.Join(t.TempDir(), "captured.yaml")
	if r := run(t, envFor(demo), "fixture", "capture", "-o", spec); r.code != 0 {
		t.Fatalf("capture: exit %d\n%s", r.code, r.stderr)
	}
	captured, err := fixture.Load(spec)
	if err != nil {
		t.Fatalf("the capture does not load: %v", err)
	}
	fresh, err := embedded.StartPair(t.TempDir(), captured.StoreLimits())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fresh.Stop)
	env := []string{"STAN_URL=" + fresh.STAN.URL(), "STAN_CLUSTER=" + fresh.STAN.ClusterID(),
		"STAN_MONITOR=" + fresh.STAN.MonitorURL(), "NATS_URL=" + fresh.JetStream.URL()}
	if r := run(t, env, "fixture", "load", spec); r.code != 0 {
		t.Fatalf("load: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	got := planShape(t, env)
	if len(got) != len(want) {
		t.Errorf("%d channels and durables planned from the capture, %d from the demo", len(got), len(want))
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: demo %s, loaded capture %s", k, w, got[k])
		}
	}
}
