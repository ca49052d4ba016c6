package plan_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/monitor"
	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/internal/source/live"
	"github.com/stanmigrate/stanmigrate/plan"
)

var update = flag.Bool("update", false, "rewrite golden files")

// seen is a deployment as monitoring shows it; discovery() presents it
// the way the live source does, so these tests exercise that conversion
// (limits by pattern, queue groups merged) along with Build.
type seen struct {
	info     source.Info
	limits   monitor.StoreLimits
	channels []*monitor.Channelz
	target   plan.TargetState
}

func (s *seen) discovery() *plan.Discovery {
	d := &plan.Discovery{Source: s.info, Target: s.target}
	for _, cz := range s.channels {
		d.Channels = append(d.Channels, live.FromMonitor(cz, s.limits))
	}
	return d
}

// discovery is a STAN deployment with every kind of finding: a collision,
// an online owner, pending durables, a queue group, a non-durable, an
// existing foreign stream, an overlapping one and one with other storage,
// a resumable stream with one reusable and one conflicting consumer, a
// per-stream consumer limit too small, a byte limit the headers exceed,
// an affected server.
func discovery() *seen {
	sub := func(client, durable, queue string, offline bool, lastSent uint64, pending int) *monitor.Subscriptionz {
		return &monitor.Subscriptionz{ClientID: client, DurableName: durable, QueueName: queue, IsDurable: durable != "" || strings.Contains(queue, ":"),
			IsOffline: offline, MaxInflight: 100, AckWait: 30, LastSent: lastSent, PendingCount: pending}
	}
	return &seen{
		info: source.Info{ClusterID: "prod", URL: "nats://stan:4222", MonitorURL: "http://stan:8222", ServerVersion: "0.25.6",
			MaxPayload: 1 << 20},
		limits: monitor.StoreLimits{
			ChannelLimits: monitor.ChannelLimits{MaxMsgs: 1000000, MaxAge: 24 * time.Hour},
			PerChannel: map[string]*monitor.ChannelLimits{
				"orders.*": {MaxMsgs: 5000, MaxAge: 72 * time.Hour, MaxSubscriptions: 50},
				"invoices": {MaxMsgs: 1000000, MaxBytes: 2000},
			},
		},
		channels: []*monitor.Channelz{
			{Name: "orders.eu", Msgs: 5000, Bytes: 1 << 20, FirstSeq: 1001, LastSeq: 6000, Subscriptions: []*monitor.Subscriptionz{
				sub("billing", "invoicer", "", true, 6000, 0),
				sub("audit", "trail", "", true, 4200, 7),
				sub("dashboard", "", "", false, 6000, 0),
			}},
			{Name: "orders_eu", Msgs: 10, Bytes: 1000, FirstSeq: 1, LastSeq: 10},
			{Name: "payments", Msgs: 300, Bytes: 40000, FirstSeq: 201, LastSeq: 500, Subscriptions: []*monitor.Subscriptionz{
				sub("settler-1", "", "settle:settlers", false, 450, 2),
				sub("settler-2", "", "settle:settlers", false, 448, 1),
			}},
			{Name: "sessions", FirstSeq: 51, LastSeq: 50},
			{Name: "legacy.x", Msgs: 5, Bytes: 500, FirstSeq: 1, LastSeq: 5},
			{Name: "invoices", Msgs: 10, Bytes: 1500, FirstSeq: 1, LastSeq: 10, Subscriptions: []*monitor.Subscriptionz{
				sub("billing", "issuer", "", true, 10, 0),
				sub("ledger", "posting", "", true, 4, 0),
			}},
		},
		target: plan.TargetState{URL: "nats://js:4222", Version: "2.11.1", APILevel: 1, MaxPayload: 1 << 20, MaxConsumers: 2,
			Streams: []plan.ExistingStream{
				{Name: "payments", Subjects: []string{"payments"}, Msgs: 4, FirstSeq: 1, LastSeq: 4, FirstHeaders: msgID("other:payments:1")},
				{Name: "ARCHIVE", Subjects: []string{"legacy.>"}},
				{Name: "sessions", Subjects: []string{"sessions"}, Storage: "memory", Replicas: 1, Retention: "limits"},
				{Name: "invoices", Subjects: []string{"invoices"}, Storage: "file", Replicas: 1, Retention: "limits",
					Metadata: map[string]string{"stanmigrate.channel": "invoices", "stanmigrate.cluster": "prod"},
					Msgs:     10, FirstSeq: 1, LastSeq: 10, FirstHeaders: msgID("prod:invoices:1"),
					Consumers: []plan.ExistingConsumer{
						ourConsumer("invoices", "billing", "issuer", "billing_issuer", 11, func(c *plan.ExistingConsumer) { c.AckWait = plan.Duration(5 * time.Second) }),
						ourConsumer("invoices", "ledger", "posting", "ledger_posting", 5, nil),
					}},
			}},
	}
}

// ourConsumer is a consumer as migrate creates it for a plain durable
// with discovery()'s max_inflight 100 and ack_wait 30s; change adjusts it.
func ourConsumer(channel, client, durable, name string, start uint64, change func(*plan.ExistingConsumer)) plan.ExistingConsumer {
	c := plan.ExistingConsumer{
		Name: name, AckPolicy: "AckExplicit", AckWait: plan.Duration(30 * time.Second), MaxAckPending: 100,
		DeliverPolicy: "by_start_sequence", OptStartSeq: start,
		Metadata: map[string]string{"stanmigrate.channel": channel, "stanmigrate.client_id": client, "stanmigrate.durable": durable, "stanmigrate.queue_group": ""},
	}
	if change != nil {
		change(&c)
	}
	return c
}

func TestBuildFindings(t *testing.T) {
	p := plan.Build(discovery().discovery(), plan.Options{Now: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)})
	want := []struct{ severity, object, contains string }{
		{plan.Blocker, "channels orders.eu, orders_eu", "same stream name"},
		{plan.Blocker, `durable queue group "settlers"`, "owner is online (client id settler-1, settler-2)"},
		{plan.Blocker, `stream "payments"`, "not written by stanmigrate"},
		{plan.Blocker, `stream "legacy_x"`, `overlaps stream "ARCHIVE"`},
		{plan.Warning, "target server 2.11.1", "PR #6753"},
		{plan.Warning, `client "dashboard"`, "will not be migrated"},
		{plan.Warning, "channel(s)", "max_payload"},
		{plan.Info, `durable "trail"`, "probed at migrate time"},
		{plan.Blocker, `stream "sessions"`, "different configuration: storage memory (plan: file)"},
		{plan.Blocker, `consumer "billing_issuer"`, "ack_wait 5s (plan: 30s)"},
		{plan.Info, `consumer "ledger_posting"`, "migrate reuses it"},
		{plan.Info, `stream "invoices"`, "migrate resumes it"},
		{plan.Blocker, "target account", "1 stream(s) carry STAN's max_subscriptions as max_consumers above the account's limit of 2"},
		{plan.Info, `channel "invoices"`, "raises the stream's max_bytes"},
		{plan.Info, "max_subscriptions", "JetStream counts consumers"},
	}
	for _, w := range want {
		found := false
		for _, f := range p.Findings {
			if f.Severity == w.severity && strings.Contains(f.Object, w.object) && strings.Contains(f.Message, w.contains) {
				found = true
			}
		}
		if !found {
			t.Errorf("missing %s finding on %q containing %q; findings: %+v", w.severity, w.object, w.contains, p.Findings)
		}
	}
	c := p.Channel("orders.eu")
	if c.Limits.MaxMsgs != 5000 || c.Limits.MaxAge.D() != 72*time.Hour || c.Limits.From != "orders.*" {
		t.Errorf("orders.eu limits from the wildcard pattern: %+v", c.Limits)
	}
	if len(c.Durables) != 2 || c.Durables[1].StartSeq != 6001 || c.Durables[0].Position != jsformat.Probe {
		t.Errorf("orders.eu durables: %+v", c.Durables)
	}
	q := p.Channel("payments").Durables[0]
	if q.QueueGroup != "settlers" || q.Durable != "settle" || q.LastSent != 450 || q.Pending != 3 || q.Consumer != "settlers_settle" {
		t.Errorf("queue group mapped to %+v", q)
	}
}

func TestSelectionRecordsWhatWasLeftOut(t *testing.T) {
	p := plan.Build(discovery().discovery(), plan.Options{Include: []string{"orders.*", "payments"}, Exclude: []string{"orders_*"}})
	var got []string
	for _, c := range p.Channels {
		got = append(got, c.Name)
	}
	if strings.Join(got, ",") != "orders.eu,payments" || strings.Join(p.Excluded, ",") != "orders_eu,sessions,legacy.x,invoices" {
		t.Fatalf("selected %v, excluded %v", got, p.Excluded)
	}
}

func TestReportGolden(t *testing.T) {
	d := discovery()
	d.channels = append(d.channels, &monitor.Channelz{Name: "scratch.tmp", Msgs: 3, Bytes: 30, FirstSeq: 1, LastSeq: 3})
	p := plan.Build(d.discovery(), plan.Options{Exclude: []string{"scratch.*"}, Now: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)})
	for _, format := range []string{report.Table, report.JSON, report.Markdown} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := report.Plan(&buf, p, format); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "report."+format+".golden")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./plan -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("%s report differs from %s (go test ./plan -update to accept):\n%s", format, golden, buf.String())
			}
		})
	}
}

func TestPlanFileRoundTripAndErrors(t *testing.T) {
	p := plan.Build(discovery().discovery(), plan.Options{Include: []string{"payments", "sessions"}})
	path := filepath.Join(t.TempDir(), "plan.yaml")
	if err := plan.Save(path, p); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("plan file mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := plan.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Channels) != 2 || got.Channels[0].Durables[0].AckWait.D() != 30*time.Second {
		t.Fatalf("round trip lost data: %+v", got.Channels)
	}
	data, _ := os.ReadFile(path)
	tests := []struct{ name, from, to, want string }{
		{"unknown field", "replicas: 1", "replicas: 1\n    replicaz: 3", "unknown.yaml:"},
		{"bad duration", "ack_wait: 30s", "ack_wait: soon", "invalid duration"},
		{"illegal stream", "stream: payments", "stream: pay.ments", `stream name "pay.ments" is not a legal`},
		{"bad mode", "mode: pull", "mode: stream", `mode "stream"`},
		{"version", "version: 1", "version: 9", "plan version 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := plan.Parse("unknown.yaml", []byte(strings.Replace(string(data), tt.from, tt.to, 1)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("want error containing %q, got %v", tt.want, err)
			}
			if !strings.Contains(err.Error(), "unknown.yaml:") {
				t.Errorf("error lacks file:line: %v", err)
			}
		})
	}
}
