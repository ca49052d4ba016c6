package report_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/verify"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/report -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test ./internal/report -update to accept):\n%s", path, got)
	}
}

// summary has every kind of channel outcome: copied, already complete,
// an empty (expired) channel, a failure, an interruption; consumers
// settled exactly, at least once, and found existing.
func summary() *migrate.Summary {
	return &migrate.Summary{
		Channels: []*migrate.ChannelResult{
			{Channel: "orders.eu", Stream: "orders_eu", FirstSeq: 1, LastSeq: 600, Copied: 600, Bytes: 120000, Status: "complete",
				Consumers: []migrate.ConsumerResult{
					{Durable: "audit:trail", Consumer: "audit_trail", StartSeq: 41, Position: jsformat.Probed, Pending: []uint64{41, 43}, Acked: 57, Status: "created"},
					{Durable: "billing:invoicer", Consumer: "billing_invoicer", StartSeq: 601, Position: jsformat.Exact, Status: "created"},
				}},
			{Channel: "payments", Stream: "payments", FirstSeq: 201, LastSeq: 500, Status: "already complete",
				Consumers: []migrate.ConsumerResult{{Durable: "queue settlers:settle", Consumer: "settlers_settle", StartSeq: 205, Position: jsformat.Probed, SeenAgain: 3, Status: "existing"}},
				Notes:     []string{"max_bytes raised from 2000 to 4125: JetStream counts headers and subjects"}},
			{Channel: "sessions", Stream: "sessions", FirstSeq: 51, LastSeq: 50, Status: "complete"},
			{Channel: "audit.log", Stream: "audit_log", FirstSeq: 1, Copied: 120, Bytes: 122880, Status: "failed",
				Error: `stream "audit_log" (channel "audit.log") at sequence 121: insufficient resources: the target is full`},
			{Channel: "metrics", Stream: "metrics", FirstSeq: 1, Copied: 10, Bytes: 100, Status: "interrupted"},
		},
		Copied: 730, Bytes: 242980, Elapsed: 1500 * time.Millisecond,
	}
}

func TestMigrationSummaryGolden(t *testing.T) {
	var buf bytes.Buffer
	report.Migration(&buf, summary())
	golden(t, "migration.table.golden", buf.Bytes())

	buf.Reset()
	report.Migration(&buf, &migrate.Summary{Channels: []*migrate.ChannelResult{
		{Channel: "orders.eu", Stream: "orders_eu", FirstSeq: 1, LastSeq: 600, Status: "already complete"},
	}, Elapsed: 20 * time.Millisecond, NothingToDo: true})
	golden(t, "migration.nothing.golden", buf.Bytes())

	buf.Reset()
	if err := report.JSONTo(&buf, summary()); err != nil {
		t.Fatal(err)
	}
	golden(t, "migration.json.golden", buf.Bytes())
}

// verification has an identical channel, one with every kind of
// difference, a sampled one, and consumers right and wrong.
func verification() *verify.Report {
	return &verify.Report{
		Channels: []verify.ChannelReport{
			{Channel: "orders.eu", Stream: "orders_eu", OK: true, Earlier: 500, EarlierSeq: 500, Read: 100,
				Source: verify.Side{Msgs: 600, FirstSeq: 1, LastSeq: 600, SHA256: "5f1c0e8d2a4b6c8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d4e"},
				Target: verify.Side{Msgs: 600, FirstSeq: 1, LastSeq: 600, SHA256: "5f1c0e8d2a4b6c8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d4e"}},
			{Channel: "payments", Stream: "payments", Read: 300,
				PrefixNote: "the prefix verified through sequence 400 no longer holds (the stream's first sequence is 202, it was 201): read in full",
				Source:     verify.Side{Msgs: 300, FirstSeq: 201, LastSeq: 500, SHA256: "aa"},
				Target:     verify.Side{Msgs: 300, FirstSeq: 201, LastSeq: 501, SHA256: "bb"},
				Missing:    []uint64{333}, Extra: []uint64{501}, Changed: []uint64{250, 251},
				MissingCount: 1, ExtraCount: 1, ChangedCount: 2,
				Problem: `channel "payments" (stream "payments"): sequence 333 missing from the stream; sequence 501 in the stream but not on STAN; 2 sequences differ (subject or payload): 250, 251`},
			{Channel: "audit.log", Stream: "audit_log", OK: true, Sampled: 25,
				Source: verify.Side{Msgs: 200, FirstSeq: 1, LastSeq: 200}, Target: verify.Side{Msgs: 200, FirstSeq: 1, LastSeq: 200}},
			{Channel: "sessions", Stream: "sessions", OK: true,
				Source: verify.Side{FirstSeq: 51, LastSeq: 50}, Target: verify.Side{FirstSeq: 51, LastSeq: 50}},
		},
		Consumers: []verify.ConsumerReport{
			{Channel: "orders.eu", Stream: "orders_eu", Durable: "audit:trail", Consumer: "audit_trail", Expected: 41, Actual: 41, Position: "probed", OK: true},
			{Channel: "payments", Stream: "payments", Durable: "queue settlers:settle", Consumer: "settlers_settle", Expected: 170, Actual: 171, Position: "probed",
				Problem: `consumer "settlers_settle" on stream "payments" for durable queue group "settlers" (durable "settle") on channel "payments": starts at sequence 171, expected 170`},
		},
		Differences: 5,
	}
}

func TestVerificationReportGolden(t *testing.T) {
	var buf bytes.Buffer
	report.Verification(&buf, verification())
	golden(t, "verification.table.golden", buf.Bytes())

	ok := verification()
	ok.Channels = ok.Channels[:1]
	ok.Consumers = ok.Consumers[:1]
	ok.Differences, ok.OK = 0, true
	buf.Reset()
	report.Verification(&buf, ok)
	golden(t, "verification.ok.golden", buf.Bytes())

	buf.Reset()
	if err := report.JSONTo(&buf, verification()); err != nil {
		t.Fatal(err)
	}
	golden(t, "verification.json.golden", buf.Bytes())
}

func TestStatusGolden(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
	var buf bytes.Buffer
	report.Status(&buf, report.StatusView{Now: at, Checkpoints: []*state.Checkpoint{
		{Channel: "orders.eu", Stream: "orders_eu", FirstSeq: 1, LastSeq: 600, TargetSeq: 600, Done: true, Worker: "host-a/41/x1",
			Consumers: map[string]state.ConsumerOutcome{"audit:trail": {}, "billing:invoicer": {}}, Updated: at},
		{Channel: "payments", Stream: "payments", FirstSeq: 201, LastSeq: 350, TargetSeq: 500, Updated: at, Rate: 10},
		{Channel: "refunds", Stream: "refunds", FirstSeq: 1, LastSeq: 100, TargetSeq: 9000, Updated: at.Add(-2 * time.Minute), Rate: 50},
		{Channel: "returns", Stream: "returns", FirstSeq: 1, LastSeq: 0, TargetSeq: 40, Updated: at},
		{Channel: "sessions", Stream: "sessions", FirstSeq: 51, LastSeq: 50, TargetSeq: 50, Updated: at},
		{Channel: "zz.late", Stream: "zz_late", FirstSeq: 1, LastSeq: 0, TargetSeq: 70},
	}, Leases: map[string]state.Lease{"payments": {Worker: "host-b/7/y2", Renewed: at.Add(-4 * time.Second)}}})
	golden(t, "status.table.golden", buf.Bytes())

	buf.Reset()
	report.Status(&buf, report.StatusView{})
	golden(t, "status.empty.golden", buf.Bytes())
}
