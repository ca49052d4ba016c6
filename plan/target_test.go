package plan_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/monitor"
	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/plan"
)

// oneChannel is channel "orders" (sequences 1..10 of cluster "prod") with
// one offline durable, billing/invoicer, caught up to 6 (exact start 7),
// max_inflight 100 and ack_wait 30s, against a target holding target.
func oneChannel(target plan.TargetState) *seen {
	return &seen{
		info: source.Info{ClusterID: "prod"},
		channels: []*monitor.Channelz{{Name: "orders", Msgs: 10, Bytes: 1000, FirstSeq: 1, LastSeq: 10, Subscriptions: []*monitor.Subscriptionz{
			{ClientID: "billing", DurableName: "invoicer", IsDurable: true, IsOffline: true, MaxInflight: 100, AckWait: 30, LastSent: 6},
		}}},
		target: target,
	}
}

// ours is stream "orders" as an earlier run of migrate left it.
func ours(change func(*plan.ExistingStream)) plan.ExistingStream {
	s := plan.ExistingStream{
		Name: "orders", Subjects: []string{"orders"}, Storage: "file", Replicas: 1, Retention: "limits",
		Metadata: map[string]string{"stanmigrate.channel": "orders", "stanmigrate.cluster": "prod"},
		Msgs:     4, FirstSeq: 1, LastSeq: 4, FirstHeaders: msgID("prod:orders:1"),
	}
	if change != nil {
		change(&s)
	}
	return s
}

func findingsOn(p *plan.Plan, object string) []plan.Finding {
	var out []plan.Finding
	for _, f := range p.Findings {
		if strings.Contains(f.Object, object) {
			out = append(out, f)
		}
	}
	return out
}

func TestExistingStreamIsResumedOnlyWhenItIsOurs(t *testing.T) {
	tests := []struct {
		name     string
		stream   plan.ExistingStream
		severity string
		contains string
	}{
		{"earlier run of ours", ours(nil), plan.Info, "migrate resumes it"},
		{"empty, same settings, created by hand", ours(func(s *plan.ExistingStream) { s.Metadata, s.Msgs, s.FirstHeaders = nil, 0, nil }), plan.Info, "migrate resumes it"},
		{"memory storage", ours(func(s *plan.ExistingStream) { s.Storage = "memory" }), plan.Blocker, "storage memory (plan: file)"},
		{"three replicas", ours(func(s *plan.ExistingStream) { s.Replicas = 3 }), plan.Blocker, "3 replica(s) (plan: 1)"},
		{"work queue", ours(func(s *plan.ExistingStream) { s.Retention = "workqueue" }), plan.Blocker, "workqueue retention"},
		{"sealed", ours(func(s *plan.ExistingStream) { s.Sealed = true }), plan.Blocker, "sealed"},
		{"made for another cluster", ours(func(s *plan.ExistingStream) { s.Metadata["stanmigrate.cluster"] = "staging"; s.Msgs = 0 }), plan.Blocker, `cluster "staging"`},
		{"foreign data", ours(func(s *plan.ExistingStream) { s.FirstHeaders = nil }), plan.Blocker, "not written by stanmigrate"},
		{"earlier run of ours with stan2js's headers, no Msg-Id", ours(func(s *plan.ExistingStream) {
			s.FirstHeaders = map[string][]string{"Nats-Streaming-Channel": {"orders"}, "Nats-Streaming-Sequence": {"1"}, "Nats-Streaming-Timestamp": {"2026-12-01T00:00:00Z"}}
		}), plan.Info, "migrate resumes it"},
		{"another channel's data under stan2js's headers", ours(func(s *plan.ExistingStream) {
			s.FirstHeaders = map[string][]string{"Nats-Streaming-Channel": {"payments"}, "Nats-Streaming-Sequence": {"1"}}
		}), plan.Blocker, "not written by stanmigrate"},
		{"earlier run of ours with the timestamp only", ours(func(s *plan.ExistingStream) {
			s.FirstHeaders = map[string][]string{"Nats-Streaming-Timestamp": {"2026-12-01T00:00:00Z"}}
		}), plan.Info, "migrate resumes it"},
		{"a timestamp only, in a stream stanmigrate did not make", ours(func(s *plan.ExistingStream) {
			s.Metadata = nil
			s.FirstHeaders = map[string][]string{"Nats-Streaming-Timestamp": {"2026-12-01T00:00:00Z"}}
		}), plan.Blocker, "not written by stanmigrate"},
		{"other subjects", ours(func(s *plan.ExistingStream) { s.Subjects = []string{"orders", "orders.>"} }), plan.Blocker, "with subjects [orders orders.>]"},
		{"name differs in case", ours(func(s *plan.ExistingStream) { s.Name = "ORDERS" }), plan.Blocker, `"ORDERS" already exists`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := plan.Build(oneChannel(plan.TargetState{Streams: []plan.ExistingStream{tt.stream}}).discovery(), plan.Options{})
			fs := findingsOn(p, `stream "orders"`)
			if len(fs) != 1 || fs[0].Severity != tt.severity || !strings.Contains(fs[0].Message, tt.contains) {
				t.Fatalf("want one %s containing %q, got %+v", tt.severity, tt.contains, fs)
			}
			if tt.severity == plan.Blocker && len(p.Blockers()) != 1 {
				t.Errorf("want exactly this blocker, got %+v", p.Blockers())
			}
		})
	}
}

func TestExistingConsumerIsReusedOnlyWhenIdentical(t *testing.T) {
	same := func(change func(*plan.ExistingConsumer)) plan.ExistingConsumer {
		c := plan.ExistingConsumer{
			Name: "billing_invoicer", AckPolicy: "AckExplicit", AckWait: plan.Duration(30 * time.Second), MaxAckPending: 100,
			DeliverPolicy: "by_start_sequence", OptStartSeq: 7,
			Metadata: map[string]string{"stanmigrate.channel": "orders", "stanmigrate.client_id": "billing", "stanmigrate.durable": "invoicer", "stanmigrate.queue_group": ""},
		}
		if change != nil {
			change(&c)
		}
		return c
	}
	tests := []struct {
		name     string
		consumer plan.ExistingConsumer
		severity string
		contains string
	}{
		{"created by an earlier run", same(nil), plan.Info, "migrate reuses it"},
		{"other ack wait", same(func(c *plan.ExistingConsumer) { c.AckWait = plan.Duration(time.Minute) }), plan.Blocker, "ack_wait 1m0s (plan: 30s)"},
		{"other max ack pending", same(func(c *plan.ExistingConsumer) { c.MaxAckPending = 1000 }), plan.Blocker, "max_ack_pending 1000 (plan: max_inflight 100)"},
		{"ack all", same(func(c *plan.ExistingConsumer) { c.AckPolicy = "AckAll" }), plan.Blocker, "ack policy AckAll"},
		{"push instead of pull", same(func(c *plan.ExistingConsumer) { c.DeliverSubject = "deliver.orders" }), plan.Blocker, `deliver subject "deliver.orders"`},
		{"filtered", same(func(c *plan.ExistingConsumer) { c.FilterSubject = "orders.x" }), plan.Blocker, `filter "orders.x"`},
		{"other start", same(func(c *plan.ExistingConsumer) { c.OptStartSeq = 3 }), plan.Blocker, "by_start_sequence 3 (the durable's position is 7)"},
		{"deliver all", same(func(c *plan.ExistingConsumer) { c.DeliverPolicy, c.OptStartSeq = "all", 0 }), plan.Blocker, "starts at all"},
		{"not ours", same(func(c *plan.ExistingConsumer) { c.Metadata = nil }), plan.Blocker, "not created by stanmigrate for this durable"},
		{"ours for another durable", same(func(c *plan.ExistingConsumer) { c.Metadata["stanmigrate.durable"] = "other" }), plan.Blocker, "not created by stanmigrate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ours(func(s *plan.ExistingStream) { s.Consumers = []plan.ExistingConsumer{tt.consumer} })
			p := plan.Build(oneChannel(plan.TargetState{Streams: []plan.ExistingStream{s}}).discovery(), plan.Options{})
			fs := findingsOn(p, `consumer "billing_invoicer"`)
			if len(fs) != 1 || fs[0].Severity != tt.severity || !strings.Contains(fs[0].Message, tt.contains) {
				t.Fatalf("want one %s containing %q, got %+v", tt.severity, tt.contains, fs)
			}
			if tt.severity == plan.Blocker && len(p.Blockers()) != 1 {
				t.Errorf("want exactly this blocker, got %+v", p.Blockers())
			}
		})
	}
}

func TestAccountLimitsTooSmallForThePlanAreBlockers(t *testing.T) {
	// oneChannel needs one stream, one consumer, 1000 bytes plus headers.
	tests := []struct {
		name     string
		target   plan.TargetState
		limits   monitor.ChannelLimits
		contains string // "" = no blocker
	}{
		{"unlimited", plan.TargetState{MaxStreams: -1, MaxConsumers: -1, MaxStorage: -1}, monitor.ChannelLimits{}, ""},
		{"just enough", plan.TargetState{MaxStreams: 1, MaxConsumers: 1, MaxStorage: 1 << 20, MaxAckPending: 100}, monitor.ChannelLimits{MaxSubscriptions: 1, MaxBytes: 1 << 19}, ""},
		{"streams", plan.TargetState{MaxStreams: 1, Streams: []plan.ExistingStream{{Name: "other", Subjects: []string{"other"}}}}, monitor.ChannelLimits{}, "creates 1 stream(s) but the account allows 1 and 1 exist"},
		{"storage for the messages", plan.TargetState{MaxStorage: 3000}, monitor.ChannelLimits{}, "needs about 3420 bytes of file storage"},
		{"storage already used", plan.TargetState{MaxStorage: 10000, UsedStorage: 8000}, monitor.ChannelLimits{}, "has 2000 left of 10000"},
		{"storage for what a resumed stream still needs", plan.TargetState{MaxStorage: 2500, UsedStorage: 400, Streams: []plan.ExistingStream{ours(nil)}}, monitor.ChannelLimits{}, ""},
		{"storage reserved by max_bytes", plan.TargetState{MaxStorage: 1 << 20, ReservedStorage: 1 << 19}, monitor.ChannelLimits{MaxBytes: 1 << 20}, "reserve 1048576 bytes but the account has 524288 unreserved"},
		{"consumers per stream", plan.TargetState{MaxConsumers: 1}, monitor.ChannelLimits{MaxSubscriptions: 5}, "carry STAN's max_subscriptions as max_consumers above the account's limit of 1"},
		{"max ack pending", plan.TargetState{MaxAckPending: 50}, monitor.ChannelLimits{}, "max_ack_pending 50"},
		{"max bytes required", plan.TargetState{MaxBytesRequired: true}, monitor.ChannelLimits{}, "max_bytes_required"},
		{"stream bytes cap", plan.TargetState{StoreMaxStreamBytes: 1000}, monitor.ChannelLimits{MaxBytes: 5000}, "caps a stream at 1000 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := oneChannel(tt.target)
			d.limits.ChannelLimits = tt.limits
			p := plan.Build(d.discovery(), plan.Options{})
			b := p.Blockers()
			if tt.contains == "" {
				if len(b) != 0 {
					t.Fatalf("want no blocker, got %+v", b)
				}
				return
			}
			if len(b) != 1 || b[0].Object != "target account" || !strings.Contains(b[0].Message, tt.contains) {
				t.Fatalf("want one target account blocker containing %q, got %+v", tt.contains, b)
			}
		})
	}
	t.Run("consumers are counted per stream", func(t *testing.T) {
		d := oneChannel(plan.TargetState{MaxConsumers: 1})
		second := *d.channels[0]
		second.Name = "refunds"
		d.channels = append(d.channels, &second)
		if b := plan.Build(d.discovery(), plan.Options{}).Blockers(); len(b) != 0 {
			t.Fatalf("two streams with one consumer each fit an account allowing 1 consumer per stream, got %+v", b)
		}
		d.channels[0].Subscriptions = append(d.channels[0].Subscriptions, &monitor.Subscriptionz{ClientID: "audit", DurableName: "trail", IsDurable: true, IsOffline: true, MaxInflight: 100, AckWait: 30})
		b := plan.Build(d.discovery(), plan.Options{}).Blockers()
		if len(b) != 1 || !strings.Contains(b[0].Message, "orders (2)") {
			t.Fatalf("want a blocker naming orders and its 2 durables, got %+v", b)
		}
	})
}

func TestCollidingStreamNamesAreBlockers(t *testing.T) {
	tests := []struct {
		channels []string
		contains string
	}{
		{[]string{"Orders", "orders"}, `map to stream names "Orders", "orders", which differ only in case`},
		{[]string{"orders.eu", "orders_eu"}, `map to the same stream name "orders_eu"`},
		{[]string{"Orders.EU", "orders_eu"}, `map to stream names "Orders_EU", "orders_eu"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.channels, ","), func(t *testing.T) {
			d := &seen{info: source.Info{ClusterID: "prod"}}
			for _, n := range tt.channels {
				d.channels = append(d.channels, &monitor.Channelz{Name: n, Msgs: 1, Bytes: 1, FirstSeq: 1, LastSeq: 1})
			}
			b := plan.Build(d.discovery(), plan.Options{}).Blockers()
			if len(b) != 1 || !strings.Contains(b[0].Message, tt.contains) {
				t.Fatalf("want one blocker containing %q, got %+v", tt.contains, b)
			}
		})
	}
}

func TestSubjectsOverlappingAnExistingStreamAreBlockers(t *testing.T) {
	tests := []struct {
		subjects []string
		overlap  string // "" = none
	}{
		{[]string{"orders"}, "orders"},
		{[]string{"other", "*"}, "*"},
		{[]string{">"}, ">"},
		{[]string{"orders.>", "orders.*", "order", "Orders"}, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.subjects, " "), func(t *testing.T) {
			p := plan.Build(oneChannel(plan.TargetState{Streams: []plan.ExistingStream{{Name: "LEGACY", Subjects: tt.subjects}}}).discovery(), plan.Options{})
			b := p.Blockers()
			if tt.overlap == "" {
				if len(b) != 0 {
					t.Fatalf("want no blocker, got %+v", b)
				}
				return
			}
			want := `subject "orders" overlaps stream "LEGACY" (subject "` + tt.overlap + `")`
			if len(b) != 1 || !strings.Contains(b[0].Message, want) {
				t.Fatalf("want one blocker containing %q, got %+v", want, b)
			}
		})
	}
}

// msgID is the headers of a stored message carrying only a Msg-Id.
func msgID(id string) map[string][]string { return map[string][]string{"Nats-Msg-Id": {id}} }
