package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/migrate"
)

// TestRateCapsHoldTheAverage migrates the core fixture twice into empty
// targets, once under --rate and once under --rate-bytes, each cap about
// half of what the fixture holds per second, and checks the run's
// average (the summary's messages or bytes over its elapsed time) is at
// or below the cap. Only an upper bound: a loaded machine is slower.
// Uncapped, the fixture copies in a fraction of a second, far above
// either cap.
func TestRateCapsHoldTheAverage(t *testing.T) {
	env := startFixture(t, "core.yaml")
	planFile, p := planned(t, env)
	msgCap := max(p.Totals.Msgs/2, 50)
	migrateCapped := func(flag, value string) migrate.Summary {
		t.Helper()
		r := run(t, append(envFor(env), freshTarget(t)), "migrate", "--plan", planFile, "--state", t.TempDir(), "--json", flag, value)
		if r.code != 0 {
			t.Fatalf("migrate %s %s: exit %d\n%s", flag, value, r.code, r.stderr)
		}
		var sum migrate.Summary
		if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
			t.Fatalf("summary: %v\n%s", err, r.stdout)
		}
		if sum.Copied == 0 || sum.Elapsed <= 0 {
			t.Fatalf("migrate %s %s copied %d in %v", flag, value, sum.Copied, sum.Elapsed)
		}
		return sum
	}

	sum := migrateCapped("--rate", fmt.Sprint(msgCap))
	avg := float64(sum.Copied) / sum.Elapsed.Seconds()
	t.Logf("--rate %d: %d message(s) in %v, %.0f msgs/s", msgCap, sum.Copied, sum.Elapsed, avg)
	if avg > float64(msgCap) {
		t.Errorf("--rate %d: average %.1f msgs/s is above the cap", msgCap, avg)
	}

	byteCap := max(sum.Bytes/2, 1024)
	sum = migrateCapped("--rate-bytes", fmt.Sprint(byteCap))
	avg = float64(sum.Bytes) / sum.Elapsed.Seconds()
	t.Logf("--rate-bytes %d: %d byte(s) in %v, %.0f B/s", byteCap, sum.Bytes, sum.Elapsed, avg)
	if avg > float64(byteCap) {
		t.Errorf("--rate-bytes %d: average %.1f B/s is above the cap", byteCap, avg)
	}
}

// TestJSONLogLines: with --log-format json every line on stderr is one
// JSON object (time, level, msg) — the totals, progress with rate and
// ETA, events naming their channel — and the summary table still goes
// to stdout; on a terminal it draws no bar. The text lines carry the cap
// and the ETA.
func TestJSONLogLines(t *testing.T) {
	env := startFixture(t, "core.yaml")
	planFile, p := planned(t, env)
	rate := fmt.Sprint(max(p.Totals.Msgs/2, 50))
	often := func(o *operateOptions) { o.logEvery = 200 * time.Millisecond }

	target, stateDir := freshTarget(t), t.TempDir()
	r := runOperated(t, append(envFor(env), target), false, often, "migrate", "--plan", planFile, "--state", stateDir,
		"--log-format", "json", "--rate", rate)
	if r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "CHANNEL") {
		t.Errorf("no summary table on stdout:\n%s", r.stdout)
	}
	recs := jsonLines(t, r.stderr)
	kinds := map[string]int{}
	for _, rec := range recs {
		kinds[rec["msg"].(string)]++
		switch rec["msg"] {
		case "migrating":
			if rec["total_messages"] != float64(p.Totals.Msgs) {
				t.Errorf("totals record %v, want total_messages %d", rec, p.Totals.Msgs)
			}
		case "progress":
			if _, ok := rec["rate"]; !ok {
				t.Errorf("progress record without a rate: %v", rec)
			}
			if _, ok := rec["eta_seconds"]; ok {
				kinds["with eta"]++
			}
		case "started", "complete":
			if rec["channel"] == nil || rec["detail"] == nil {
				t.Errorf("event without channel or detail: %v", rec)
			}
		}
	}
	for _, k := range []string{"migrating", "progress", "with eta", "started", "complete"} {
		if kinds[k] == 0 {
			t.Errorf("no %q record among %v", k, kinds)
		}
	}

	// A re-run without --plan notes that it continues with the saved
	// plan: as JSON too.
	r = runOperated(t, append(envFor(env), target), false, often, "migrate", "--state", stateDir, "--log-format", "json")
	if r.code != 0 {
		t.Fatalf("re-run: exit %d\n%s", r.code, r.stderr)
	}
	notes := 0
	for _, rec := range jsonLines(t, r.stderr) {
		if rec["msg"] == "note" && strings.Contains(fmt.Sprint(rec["detail"]), "continuing with the plan saved") {
			notes++
		}
	}
	if notes != 1 {
		t.Errorf("re-run: want one JSON note that it continues with the saved plan:\n%s", r.stderr)
	}

	// On a terminal: JSON all the same, no bar.
	r = runOperated(t, append(envFor(env), target), true, often, "verify", "--plan", planFile, "--log-format", "json")
	if r.code != 0 {
		t.Fatalf("verify: exit %d\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "\r") {
		t.Errorf("a bar was drawn with --log-format json on a terminal:\n%q", r.stderr)
	}
	jsonLines(t, r.stderr)

	// Text lines say the cap and the ETA.
	r = runOperated(t, append(envFor(env), freshTarget(t)), false, often, "migrate", "--plan", planFile, "--state", t.TempDir(), "--rate", rate)
	if r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s", r.code, r.stderr)
	}
	found := false
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.HasPrefix(l, "progress: ") && strings.Contains(l, "(capped at "+rate+" msgs/s)") && strings.Contains(l, ", ETA ") {
			found = true
		}
	}
	if !found {
		t.Errorf("no text progress line with the cap and an ETA:\n%s", r.stderr)
	}
}

// jsonLines parses every line of out as a JSON object with time, level
// and msg.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("not a JSON line: %q", l)
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("line without %q: %q", k, l)
			}
		}
		recs = append(recs, rec)
	}
	return recs
}
