package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/verify"
)

// outputModes are the ways a command's output is asked for: on a
// terminal (a progress bar), not (log lines), quiet, and JSON.
var outputModes = []struct {
	name            string
	terminal        bool
	quiet, json     bool
	bar, lines, out bool // expected on stderr: a bar, log lines; on stdout: a table
}{
	{name: "terminal", terminal: true, bar: true, out: true},
	{name: "not a terminal", lines: true, out: true},
	{name: "quiet", quiet: true, out: true},
	{name: "json", json: true},
}

// globalFor points the connection options at a test environment and a
// JetStream target, as the flags would.
func globalFor(env *testenv.Env, natsURL string) *globalOptions {
	return &globalOptions{
		stan: conn.Side{Name: "STAN", URL: env.Pair.STAN.URL()}, nats: conn.Side{Name: "JetStream", URL: natsURL},
		cluster: env.Pair.STAN.ClusterID(), monitorURL: env.Pair.STAN.MonitorURL(),
	}
}

// checkOutput asserts what a mode puts where: a bar only on a terminal,
// log lines only when not, nothing on stderr when quiet or JSON, and JSON
// alone on stdout with --json.
func checkOutput(t *testing.T, verb string, m struct {
	name            string
	terminal        bool
	quiet, json     bool
	bar, lines, out bool
}, stdout, stderr string, jsonInto any) {
	t.Helper()
	hasBar := strings.Contains(stderr, "\r") && strings.Contains(stderr, "msgs")
	hasLines := regexp.MustCompile(`(?m)^` + verb + ` [0-9,]+ message\(s\), `).MatchString(stderr)
	if hasBar != m.bar {
		t.Errorf("%s: progress bar on stderr = %v, want %v:\n%q", m.name, hasBar, m.bar, stderr)
	}
	if hasLines != m.lines {
		t.Errorf("%s: log lines on stderr = %v, want %v:\n%q", m.name, hasLines, m.lines, stderr)
	}
	if (m.quiet || m.json) && strings.TrimSpace(stderr) != "" {
		t.Errorf("%s: stderr should be empty:\n%s", m.name, stderr)
	}
	if m.json {
		if err := json.Unmarshal([]byte(stdout), jsonInto); err != nil {
			t.Errorf("%s: stdout is not JSON alone: %v\n%s", m.name, err, stdout)
		}
	} else if !strings.Contains(stdout, "CHANNEL") {
		t.Errorf("%s: no table on stdout:\n%s", m.name, stdout)
	}
}

// TestMigrateAndVerifyOutputPerMode runs migrate and verify in-process in
// each output mode, each migration into a fresh target.
func TestMigrateAndVerifyOutputPerMode(t *testing.T) {
	env := startFixture(t, "core.yaml")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, m := range outputModes {
		t.Run(m.name, func(t *testing.T) {
			js, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer js.Stop()
			g := globalFor(env, js.URL())
			dir := t.TempDir()
			planFile := filepath.Join(dir, "plan.yaml")
			var so, se bytes.Buffer
			ios := &iostreams{Out: &so, Err: &se, Terminal: m.terminal}
			if err := runPlan(ctx, &planOptions{io: ios, global: g, output: planFile, format: "table", replicas: 1, headers: "full"}); err != nil {
				t.Fatal(err)
			}
			so.Reset()
			se.Reset()
			err = runMigrate(ctx, &migrateOptions{io: ios, global: g, planFile: planFile, positions: "exact", publish: migrate.PublishAuto, quiet: m.quiet, json: m.json,
				parallel: migrate.DefaultParallel, window: migrate.DefaultWindow})
			if err != nil {
				t.Fatalf("migrate: %v\n%s%s", err, so.String(), se.String())
			}
			checkOutput(t, "migrating", m, so.String(), se.String(), &migrate.Summary{})

			so.Reset()
			se.Reset()
			err = runVerify(ctx, &verifyOptions{io: ios, global: g, planFile: planFile, quiet: m.quiet, json: m.json, parallel: 2})
			if err != nil {
				t.Fatalf("verify: %v\n%s%s", err, so.String(), se.String())
			}
			checkOutput(t, "verifying", m, so.String(), se.String(), &verify.Report{})
		})
	}
}
