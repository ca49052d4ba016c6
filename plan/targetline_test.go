package plan_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/plan"
)

// TestPlanNamesTheTargetReleaseLineAndItsHazards: the plan names the
// target's release line with what differs on it for a migration (how a
// resend is answered, whether fast batched publishing exists), keeps the
// first-sequence hazard a warning of its own, and blocks a line older than
// 2.10, which lacks the stream and consumer metadata migrate relies on.
func TestPlanNamesTheTargetReleaseLineAndItsHazards(t *testing.T) {
	const (
		dupAck   = "answered with a duplicate ack"
		wrongSeq = `answered with error 10071 "wrong last sequence"`
		noBatch  = "no fast batched publishing"
		batch    = "fast batched publishing is available"
		hazard   = "first-sequence restart hazard"
	)
	tests := []struct {
		version  string
		level    int    // the JetStream API level that answered
		severity string // of the line finding; "" = none
		line     string
		want     []string
		not      []string
		warning  bool // the first-sequence hazard warning too
	}{
		{"2.9.25", 0, plan.Blocker, "2.9", []string{"release line 2.9 is not supported", "JetStream metadata", "from 2.10 on", "upgrade the target to 2.10.28 or later"}, nil, false},
		{"2.2.0", 0, plan.Blocker, "2.2", []string{"release line 2.2 is not supported"}, nil, false},
		{"2.10.0", 0, plan.Info, "2.10", []string{dupAck, noBatch, hazard}, []string{wrongSeq, batch}, true},
		{"2.10.27", 0, plan.Info, "2.10", []string{dupAck, noBatch, hazard}, nil, true},
		{"2.10.29", 0, plan.Info, "2.10", []string{dupAck, "2.12 and later answer error 10071", noBatch}, []string{hazard}, false},
		{"2.11.1", 1, plan.Info, "2.11", []string{dupAck, noBatch, hazard}, nil, true},
		{"2.11.17", 1, plan.Info, "2.11", []string{dupAck, noBatch}, []string{hazard}, false},
		{"v2.12.0-RC.1", 2, plan.Info, "2.12", []string{wrongSeq, "2.10 and 2.11 answer with a duplicate ack", noBatch}, []string{dupAck, hazard}, false},
		{"2.12.15", 2, plan.Info, "2.12", []string{wrongSeq, noBatch}, []string{batch}, false},
		{"2.14.0", 4, plan.Info, "2.14", []string{wrongSeq, batch, "allow_batched"}, []string{noBatch}, false},
		{"2.15.3", 5, plan.Info, "2.15", []string{wrongSeq, batch}, []string{noBatch, hazard}, false},
		{"3.0.0", 6, plan.Info, "3.0", []string{wrongSeq, batch}, nil, false},
		// Through a JetStream domain the connected server (a hub) may be
		// older than the JetStream that answers (a leaf): batches are
		// decided by the level, as migrate decides them.
		{"2.10.29", 5, plan.Info, "2.10", []string{wrongSeq, batch, "API level 5"}, []string{noBatch, dupAck}, false},
		{"2.15.3", 2, plan.Info, "2.15", []string{wrongSeq, noBatch, "API level 2", "needs 4, nats-server 2.14"}, []string{batch}, false},
		{"", 0, "", "", nil, nil, false},
		{"unknown", 0, "", "", nil, nil, false},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s level %d", tt.version, tt.level)
		if tt.version == "" {
			name = "no version"
		}
		t.Run(name, func(t *testing.T) {
			p := plan.Build(oneChannel(plan.TargetState{Version: tt.version, APILevel: tt.level}).discovery(), plan.Options{})
			var lineFindings, warnings []plan.Finding
			for _, f := range findingsOn(p, "target server") {
				switch {
				case strings.Contains(f.Message, "release line"):
					lineFindings = append(lineFindings, f)
				case f.Severity == plan.Warning && strings.Contains(f.Message, "PR #6753"):
					warnings = append(warnings, f)
				default:
					t.Errorf("unexpected finding on the target server: %+v", f)
				}
			}
			if tt.severity == "" {
				if len(lineFindings) != 0 {
					t.Fatalf("version %q: want no release-line finding, got %+v", tt.version, lineFindings)
				}
				return
			}
			if len(lineFindings) != 1 {
				t.Fatalf("version %q: want one release-line finding, got %+v", tt.version, p.Findings)
			}
			f := lineFindings[0]
			if f.Severity != tt.severity || f.Object != "target server "+tt.version || !strings.Contains(f.Message, "release line "+tt.line+":") && !strings.Contains(f.Message, "release line "+tt.line+" is not") {
				t.Errorf("version %q: got %s on %q: %s; want %s on %q naming line %s", tt.version, f.Severity, f.Object, f.Message, tt.severity, "target server "+tt.version, tt.line)
			}
			for _, w := range tt.want {
				if !strings.Contains(f.Message, w) {
					t.Errorf("version %q: finding lacks %q: %s", tt.version, w, f.Message)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(f.Message, w) {
					t.Errorf("version %q: finding says %q, which is not true of this release: %s", tt.version, w, f.Message)
				}
			}
			if got := len(warnings) == 1; got != tt.warning {
				t.Errorf("version %q: first-sequence hazard warning present=%v, want %v (%+v)", tt.version, got, tt.warning, warnings)
			}
			blocked := len(p.Blockers()) > 0
			if blocked != (tt.severity == plan.Blocker) {
				t.Errorf("version %q: blockers %+v", tt.version, p.Blockers())
			}
		})
	}
}

// TestPlanReportShowsTheTargetReleaseLine: every report format carries
// the release-line finding, as the operator reads it before migrating.
func TestPlanReportShowsTheTargetReleaseLine(t *testing.T) {
	p := plan.Build(oneChannel(plan.TargetState{URL: "nats://js:4222", Version: "2.10.29"}).discovery(), plan.Options{})
	for _, format := range []string{report.Table, report.JSON, report.Markdown} {
		var buf bytes.Buffer
		if err := report.Plan(&buf, p, format); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		for _, want := range []string{"target server 2.10.29", "release line 2.10:", "duplicate ack", "allow_batched"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s report lacks %q:\n%s", format, want, out)
			}
		}
	}
}
