package main

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/plan"
)

// streamsIn lists the streams of one JetStream, reached through the
// server at url: its own (domain "") or the named domain's.
func streamsIn(t *testing.T, url, domain string) map[string]jetstream.StreamConfig {
	t.Helper()
	nc, err := nats.Connect(url, nats.UserInfo(embedded.HubLeafUser, embedded.HubLeafPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if domain != "" {
		js, err = jetstream.NewWithDomain(nc, domain)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string]jetstream.StreamConfig{}
	l := js.ListStreams(ctx)
	for si := range l.Info() {
		out[si.Config.Name] = si.Config
	}
	if err := l.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		t.Fatal(err)
	}
	return out
}

// TestMigrateIntoALeafNodesDomainThroughTheHub: connected to the hub, the
// plan names the leaf's JetStream domain and records it; migrate (in
// fast-ingest batches, the leaf being 2.15) and verify use it from the
// plan; the streams and consumers are on the leaf and none on the hub.
func TestMigrateIntoALeafNodesDomainThroughTheHub(t *testing.T) {
	env := startFixture(t, "core.yaml")
	hl, err := embedded.StartHubLeaf(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hl.Stop)
	vars := []string{
		"STAN_URL=" + env.Pair.STAN.URL(), "STAN_CLUSTER=" + env.Pair.STAN.ClusterID(),
		"STAN_MONITOR=" + env.Pair.STAN.MonitorURL(), "NATS_URL=" + hl.HubURL,
	}
	auth := []string{"--nats-user", embedded.HubLeafUser, "--nats-password", embedded.HubLeafPassword}
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.yaml")
	r := run(t, vars, append([]string{"plan", "-o", planFile, "--nats-domain", hl.LeafDomain}, auth...)...)
	if r.code != 0 {
		t.Fatalf("plan: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	p, err := plan.Load(planFile)
	if err != nil {
		t.Fatal(err)
	}
	if p.Target.Domain != hl.LeafDomain || p.Target.APILevel < 4 {
		t.Fatalf("plan target: domain %q, API level %d; want %q and the leaf's level (2.15)", p.Target.Domain, p.Target.APILevel, hl.LeafDomain)
	}
	if !strings.Contains(r.stdout, `domain "leaf"`) || !strings.Contains(r.stdout, "reached through the server connected to") {
		t.Errorf("the plan report does not name the domain:\n%s", r.stdout)
	}

	// The run's state in a bucket in the leaf's domain too: the store is
	// opened before the plan is read, so the domain is named for it.
	r = run(t, append(vars, "NATS_DOMAIN="+hl.LeafDomain), append([]string{"migrate", "--plan", planFile, "--state", "kv:leafrun"}, auth...)...)
	if r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, "asynchronously") {
		t.Errorf("migrate fell back from fast-ingest batches on the leaf:\n%s", r.stderr)
	}
	r = run(t, vars, append([]string{"status", "--state", "kv:leafrun", "--nats-domain", hl.LeafDomain}, auth...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "complete") {
		t.Errorf("status from the bucket in the leaf's domain: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// No --nats-domain from here on: the plan says where.
	r = run(t, vars, append([]string{"verify", "--plan", planFile, "--json"}, auth...)...)
	if r.code != 0 || !strings.Contains(r.stdout, `"ok": true`) {
		t.Fatalf("verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	onLeaf := streamsIn(t, hl.LeafURL, "")
	viaHub := streamsIn(t, hl.HubURL, hl.LeafDomain)
	onHub := streamsIn(t, hl.HubURL, "")
	// The state bucket's stream is on the leaf; the rest are the plan's.
	for _, m := range []map[string]jetstream.StreamConfig{onLeaf, viaHub} {
		if _, ok := m["KV_leafrun"]; !ok {
			t.Errorf("the state bucket is not in the leaf's domain: %v", keys(m))
		}
		delete(m, "KV_leafrun")
	}
	var want []string
	for _, c := range p.Active() {
		want = append(want, c.Stream)
		cfg, ok := onLeaf[c.Stream]
		if !ok {
			t.Errorf("stream %q is not on the leaf", c.Stream)
			continue
		}
		if !cfg.AllowBatchPublish {
			t.Errorf("stream %q on the leaf was not made for fast-ingest batches", c.Stream)
		}
	}
	if len(want) == 0 || len(onLeaf) != len(want) || len(viaHub) != len(want) {
		t.Errorf("streams on the leaf %v, through the hub in its domain %v; want %v", keys(onLeaf), keys(viaHub), want)
	}
	if len(onHub) != 0 {
		t.Errorf("the hub's own JetStream holds streams %v; want none", keys(onHub))
	}

	r = run(t, vars, append([]string{"seq-at-time", "--plan", planFile, "--channel", p.Active()[0].Name, "--time", "1h"}, auth...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "is the first at or after") {
		t.Errorf("seq-at-time in the leaf's domain: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A NATS CLI context's jetstream_domain does the same as the flag,
	// and the plan records it.
	xdg := filepath.Join(dir, "config")
	if err := embedded.WriteNATSContext(xdg, "leaf", map[string]string{"url": hl.HubURL, "user": embedded.HubLeafUser,
		"password": embedded.HubLeafPassword, "jetstream_domain": hl.LeafDomain}); err != nil {
		t.Fatal(err)
	}
	ctxPlan := filepath.Join(dir, "context-plan.yaml")
	r = run(t, append(vars[:3:3], "XDG_CONFIG_HOME="+xdg), "plan", "-o", ctxPlan, "--nats-context", "leaf")
	if r.code != 0 {
		t.Fatalf("plan with the context: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The streams exist in the leaf's domain: the plan resumes them.
	cp, err := plan.Load(ctxPlan)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Target.Domain != hl.LeafDomain || len(cp.Blockers()) != 0 {
		t.Fatalf("plan through the context: domain %q, blockers %v", cp.Target.Domain, cp.Blockers())
	}

	// A domain nothing answers in is named, exit 2.
	r = run(t, vars, append([]string{"plan", "-o", filepath.Join(dir, "nowhere.yaml"), "--nats-domain", "nowhere"}, auth...)...)
	if r.code != 2 || !strings.Contains(r.stderr, `JetStream domain "nowhere"`) {
		t.Errorf("unknown domain: exit %d, want 2 naming the domain\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, vars, append([]string{"plan", "-o", filepath.Join(dir, "bad.yaml"), "--nats-domain", "a.b"}, auth...)...)
	if r.code != 2 || !strings.Contains(r.stderr, "--nats-domain") {
		t.Errorf("bad domain: exit %d, want 2 naming --nats-domain\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
