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
	a.now = func() time.Time { return flagsNow }
	root := newRootCmdWith(a, runners{
		plan:    func(_ context.Context, o *planOptions) error { return keep(*o) },
		migrate: func(_ context.Context, o *migrateOptions) error { return keep(*o) },
		verify:  func(_ context.Context, o *verifyOptions) error { return keep(*o) },
		status:  func(_ context.Context, o *statusOptions) error { return keep(*o) },
		stateRm: func(_ context.Context, o *stateRmOptions) error { return keep(*o) },
		demo:    func(_ context.Context, o *demoOptions) error { return keep(*o) },

		seqAtTime: func(_ context.Context, o *seqAtTimeOptions) error { return keep(*o) },
	})
	root.SetArgs(args)
	code := a.finish(root.ExecuteContext(context.Background()))
	return got, code, se.String()
}

// flagsNow is the clock of parsed command lines.
var flagsNow = time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)

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
			planOptions{output: "plan.yaml", format: "table", replicas: 1, headers: "full", expiry: "original"}},
		{"plan, every flag", nil, []string{"plan", "-o", "p.yaml", "--channel", "orders.*", "--channel", "payments", "--exclude", "orders.tmp",
			"--format", "json", "--replicas", "3", "--placement-cluster", "east", "--placement-tag", "ssd", "--placement-tag", "az:1",
			"--headers", "minimal", "--msg-id", "--expiry", "migration"},
			planOptions{output: "p.yaml", include: []string{"orders.*", "payments"}, exclude: []string{"orders.tmp"}, format: "json", replicas: 3,
				cluster: "east", tags: []string{"ssd", "az:1"}, headers: "minimal", msgID: true, expiry: "migration"}},
		{"plan from a directory", nil, []string{"plan", "--stan-dir", "/var/stan", "--stan-config", "stan.conf", "--skip-broken"},
			planOptions{output: "plan.yaml", format: "table", replicas: 1, headers: "full", expiry: "original", dir: dirOptions{dir: "/var/stan", config: "stan.conf", skipBroken: true}}},
		{"STAN_DIR", []string{"STAN_DIR=/srv/stan"}, []string{"plan", "-o", "-"},
			planOptions{output: "-", format: "table", replicas: 1, headers: "full", expiry: "original", dir: dirOptions{dir: "/srv/stan"}}},
		{"migrate defaults", nil, []string{"migrate"},
			migrateOptions{positions: "exact", publish: "auto", parallel: max(runtime.NumCPU(), 8), window: 8192, leaseTTL: state.DefaultLeaseTTL, op: operateOptions{logFormat: "text"}}},
		{"migrate, every flag", nil, []string{"migrate", "--plan", "p.yaml", "--state", "st", "--parallel", "4", "--window", "100",
			"--positions", "lowest-unacked", "--publish", "async", "--follow", "--until-idle", "5s", "--json", "--quiet", "--lease-ttl", "20s",
			"--metrics-listen", ":9464", "--log-format", "json", "--rate", "500", "--rate-bytes", "2MiB"},
			migrateOptions{planFile: "p.yaml", stateDir: "st", parallel: 4, window: 100, positions: "lowest-unacked", publish: "async", follow: true,
				untilIdle: 5 * time.Second, json: true, quiet: true, leaseTTL: 20 * time.Second,
				op: operateOptions{metricsListen: ":9464", logFormat: "json", rate: 500, rateBytes: "2MiB", rateBytesN: 2 << 20}}},
		{"migrate with state on the target", nil, []string{"migrate", "--state", "kv:orders-migration"},
			migrateOptions{stateDir: "kv:orders-migration", positions: "exact", publish: "auto", parallel: max(runtime.NumCPU(), 8), window: 8192, leaseTTL: state.DefaultLeaseTTL,
				op: operateOptions{logFormat: "text"}}},
		{"state rm", nil, []string{"state", "rm", "--state", "kv:orders-migration", "--force"},
			stateRmOptions{stateDir: "kv:orders-migration", force: true}},
		{"migrate --status", nil, []string{"migrate", "--plan", "p.yaml", "--status"},
			migrateOptions{planFile: "p.yaml", positions: "exact", publish: "auto", status: true, parallel: max(runtime.NumCPU(), 8), window: 8192, leaseTTL: state.DefaultLeaseTTL,
				op: operateOptions{logFormat: "text"}}},
		{"verify, every flag", nil, []string{"verify", "--plan", "p.yaml", "--json", "--quiet", "--sample", "5", "--parallel", "3",
			"--metrics-listen", "127.0.0.1:9465", "--log-format", "json", "--state", "st", "--full"},
			verifyOptions{planFile: "p.yaml", json: true, quiet: true, sample: 5, parallel: 3, op: operateOptions{metricsListen: "127.0.0.1:9465", logFormat: "json"},
				stateDir: "st", full: true}},
		{"verify --follow", nil, []string{"verify", "--follow", "--until-idle", "30s"},
			verifyOptions{parallel: runtime.NumCPU(), follow: true, untilIdle: 30 * time.Second, op: operateOptions{logFormat: "text"}}},
		{"status beside the plan", nil, []string{"status", "--plan", "dir/p.yaml"},
			statusOptions{planFile: "dir/p.yaml", stateDir: "dir/p.state"}},
		{"demo", nil, []string{"demo", "--keep"}, demoOptions{keep: true}},
		{"seq-at-time by RFC 3339", nil, []string{"seq-at-time", "--channel", "orders.eu", "--plan", "p.yaml", "--time", "2026-03-01T12:00:00.5+01:00", "--json"},
			seqAtTimeOptions{channel: "orders.eu", planFile: "p.yaml", at: "2026-03-01T12:00:00.5+01:00", json: true,
				start: time.Date(2026, 3, 1, 11, 0, 0, 5e8, time.UTC)}},
		{"seq-at-time by a duration ago", nil, []string{"seq-at-time", "--stream", "orders_eu", "--time", "90m"},
			seqAtTimeOptions{stream: "orders_eu", at: "90m", start: flagsNow.Add(-90 * time.Minute)}},
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
	case seqAtTimeOptions:
		v.io, v.global, v.now = nil, nil, nil
		v.start = v.start.UTC()
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
		{[]string{"plan", "--format", "xml"}, `--format "xml"`},
		{[]string{"plan", "--replicas", "6"}, "--replicas 6: use 1 to 5"},
		{[]string{"plan", "--headers", "none"}, `--headers "none"`},
		{[]string{"plan", "--exclude", "["}, "not a valid glob"},
		{[]string{"migrate", "--window", "8"}, "--window 8: use 16 to 1048576"},
		{[]string{"migrate", "--parallel", "0"}, "--parallel 0: use 1 to 1024"},
		{[]string{"migrate", "--positions", "sometimes"}, `--positions is "sometimes"`},
		{[]string{"migrate", "--until-idle", "5s"}, "--until-idle needs --follow"},
		{[]string{"migrate", "--stan-dir", "d", "--follow"}, "--follow needs a running STAN"},
		{[]string{"verify", "--sample", "-1"}, "--sample -1"},
		{[]string{"status", "--state", "kv:migration", "--nats-url", "nats://::1"}, "--nats-url: JetStream server URL"},
		{[]string{"seq-at-time", "--channel", "orders", "--time", "1h", "--nats-url", "nats://a:4222,"}, "--nats-url: JetStream server URL: entry 2 of 2: is empty"},
		{[]string{"verify", "--nats-url", "nats://::::"}, "--nats-url: JetStream server URL: host"},
		{[]string{"plan", "--stan-monitor", "http://a:1,,http://b:2"}, "--stan-monitor: STAN monitoring URL: entry 2 of 3: is empty"},
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"seq-at-time", "--channel", "c"}, "--time is required"},
		{[]string{"seq-at-time", "--channel", "c", "--time", "last tuesday"}, `--time "last tuesday" is neither`},
		{[]string{"seq-at-time", "--channel", "c", "--time", "-1h"}, "cannot be negative"},
		{[]string{"seq-at-time", "--time", "1h"}, "--channel is required"},
		{[]string{"seq-at-time", "--channel", "c", "--stream", "s", "--time", "1h"}, "give one"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got, code, stderr := parse(t, nil, tt.args...)
			if code != exitBadInput || got != nil || !bytes.Contains([]byte(stderr), []byte(tt.want)) {
				t.Errorf("exit %d, ran %v, stderr %q; want exit 2 naming %q without running", code, got != nil, stderr, tt.want)
			}
		})
	}
}
