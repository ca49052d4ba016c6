package main

import (
	"bytes"
	"context"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/state"
)

// parse runs a command line through the real flag wiring with every
// command's run function replaced, and returns the options it would have
// run with and the exit code.
func parse(t *testing.T, env []string, args ...string) (any, int, string) {
	t.Helper()
	restore := setenv(t, env)
	defer restore()
	var got any
	keep := func(o any) error { got = o; return nil }
	var so, se bytes.Buffer
	a := newApp(&so, &se, false)
	root := newRootCmdWith(a, runners{
		plan:    func(_ context.Context, o *planOptions) error { return keep(*o) },
		migrate: func(_ context.Context, o *migrateOptions) error { return keep(*o) },
		verify:  func(_ context.Context, o *verifyOptions) error { return keep(*o) },
		status:  func(_ context.Context, o *statusOptions) error { return keep(*o) },
		stateRm: func(_ context.Context, o *stateRmOptions) error { return keep(*o) },
		demo:    func(_ context.Context, o *demoOptions) error { return keep(*o) },
	})
	root.SetArgs(args)
	code := a.finish(root.ExecuteContext(context.Background()))
	return got, code, se.String()
}

// TestFlagsParseIntoOptions: each command's flags land in its options,
// with the documented defaults, and STAN_DIR stands in for --stan-dir.
func TestFlagsParseIntoOptions(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		args []string
		want any
	}{
		{"plan defaults", nil, []string{"plan"},
			planOptions{output: "plan.yaml", format: "table", replicas: 1, headers: "full"}},
		{"plan, every flag", nil, []string{"plan", "-o", "p.yaml", "--channel", "orders.*", "--channel", "payments", "--exclude", "orders.tmp",
			"--format", "json", "--replicas", "3", "--placement-cluster", "east", "--placement-tag", "ssd", "--placement-tag", "az:1",
			"--headers", "minimal", "--msg-id"},
			planOptions{output: "p.yaml", include: []string{"orders.*", "payments"}, exclude: []string{"orders.tmp"}, format: "json", replicas: 3,
				cluster: "east", tags: []string{"ssd", "az:1"}, headers: "minimal", msgID: true}},
		{"plan from a directory", nil, []string{"plan", "--stan-dir", "/var/stan", "--stan-config", "stan.conf", "--skip-broken"},
			planOptions{output: "plan.yaml", format: "table", replicas: 1, headers: "full", dir: dirOptions{dir: "/var/stan", config: "stan.conf", skipBroken: true}}},
		{"STAN_DIR", []string{"STAN_DIR=/srv/stan"}, []string{"plan", "-o", "-"},
			planOptions{output: "-", format: "table", replicas: 1, headers: "full", dir: dirOptions{dir: "/srv/stan"}}},
		{"migrate defaults", nil, []string{"migrate"},
			migrateOptions{positions: "exact", publish: "auto", parallel: max(runtime.NumCPU(), 8), window: 8192, leaseTTL: state.DefaultLeaseTTL}},
		{"migrate, every flag", nil, []string{"migrate", "--plan", "p.yaml", "--state", "st", "--parallel", "4", "--window", "100",
			"--positions", "lowest-unacked", "--publish", "async", "--follow", "--until-idle", "5s", "--json", "--quiet", "--lease-ttl", "20s"},
			migrateOptions{planFile: "p.yaml", stateDir: "st", parallel: 4, window: 100, positions: "lowest-unacked", publish: "async", follow: true,
				untilIdle: 5 * time.Second, json: true, quiet: true, leaseTTL: 20 * time.Second}},
		{"migrate with state on the target", nil, []string{"migrate", "--state", "kv:orders-migration"},
			migrateOptions{stateDir: "kv:orders-migration", positions: "exact", publish: "auto", parallel: max(runtime.NumCPU(), 8), window: 8192, leaseTTL: state.DefaultLeaseTTL}},
		{"state rm", nil, []string{"state", "rm", "--state", "kv:orders-migration", "--force"},
			stateRmOptions{stateDir: "kv:orders-migration", force: true}},
		{"migrate --status", nil, []string{"migrate", "--plan", "p.yaml", "--status"},
			migrateOptions{planFile: "p.yaml", positions: "exact", publish: "auto", status: true, parallel: max(runtime.NumCPU(), 8), window: 8192, leaseTTL: state.DefaultLeaseTTL}},
		{"verify, every flag", nil, []string{"verify", "--plan", "p.yaml", "--json", "--quiet", "--sample", "5", "--parallel", "3", "--state", "st", "--full"},
			verifyOptions{planFile: "p.yaml", json: true, quiet: true, sample: 5, parallel: 3, stateDir: "st", full: true}},
		{"verify --follow", nil, []string{"verify", "--follow", "--until-idle", "30s"},
			verifyOptions{parallel: runtime.NumCPU(), follow: true, untilIdle: 30 * time.Second}},
		{"status beside the plan", nil, []string{"status", "--plan", "dir/p.yaml"},
			statusOptions{planFile: "dir/p.yaml", stateDir: "dir/p.state"}},
		{"demo", nil, []string{"demo", "--keep"}, demoOptions{keep: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, code, stderr := parse(t, tt.env, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if got == nil {
				t.Fatal("the command did not run")
			}
			if !reflect.DeepEqual(withoutDeps(got), tt.want) {
				t.Errorf("parsed\n %+v\nwant\n %+v", withoutDeps(got), tt.want)
			}
		})
	}
}

// withoutDeps clears the injected I/O and shared options, which the
// table does not spell out.
func withoutDeps(o any) any {
	switch v := o.(type) {
	case planOptions:
		v.io, v.global = nil, nil
		return v
	case migrateOptions:
		v.io, v.global, v.interrupts = nil, nil, nil
		return v
	case verifyOptions:
		v.io, v.global, v.interrupts = nil, nil, nil
		return v
	case statusOptions:
		v.io, v.global = nil, nil
		return v
	case demoOptions:
		v.io = nil
		return v
	case stateRmOptions:
		v.io, v.global = nil, nil
		return v
	}
	return o
}

// TestFlagMistakesExitTwoBeforeRunning: flags that cannot work together
// or do not parse are refused by the wiring, naming the flag.
func TestFlagMistakesExitTwoBeforeRunning(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"plan", "--replicas", "three"}, "--replicas"},
		{[]string{"plan", "--nope"}, "--nope"},
		{[]string{"plan", "extra"}, "extra"},
		{[]string{"migrate", "--stan-dir", "d", "--stan-url", "nats://x:1"}, "--stan-dir replaces --stan-url"},
		{[]string{"verify", "--skip-broken"}, "--skip-broken only apply with --stan-dir"},
		{[]string{"plan", "--cluster", ""}, "--cluster is empty"},
		{[]string{"nope"}, `unknown command "nope"`},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got, code, stderr := parse(t, nil, tt.args...)
			if code != exitBadInput || got != nil || !bytes.Contains([]byte(stderr), []byte(tt.want)) {
				t.Errorf("exit %d, ran %v, stderr %q; want exit 2 naming %q without running", code, got != nil, stderr, tt.want)
			}
		})
	}
}
