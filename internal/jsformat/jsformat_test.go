package jsformat

import (
	"strconv"
	"testing"
)

func TestMsgID(t *testing.T) {
	if got := MsgID("c", "orders.eu", 42); got != MsgIDPrefix("c", "orders.eu")+"42" || got != "c:orders.eu:42" {
		t.Fatalf("MsgID mismatch: %q", got)
	}
}

// TestWrittenTellsOursFromForeign: each header set a plan can choose is
// recognised as ours for its channel and sequence only; anything else,
// and a timestamp alone in a stream not made by us, is foreign.
func TestWrittenTellsOursFromForeign(t *testing.T) {
	h := func(kv ...string) map[string][]string {
		m := map[string][]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = []string{kv[i+1]}
		}
		return m
	}
	ts := "2026-12-01T10:00:00.000000001Z"
	tests := []struct {
		name       string
		h          map[string][]string
		streamOurs bool
		want       bool
	}{
		{"msg-id, ours", h(HdrMsgID, "c:orders:7", HdrTimestamp, ts), false, true},
		{"msg-id, another sequence", h(HdrMsgID, "c:orders:8"), true, false},
		{"msg-id, another cluster", h(HdrMsgID, "d:orders:7"), true, false},
		{"full headers, ours", h(HdrChannel, "orders", HdrSequence, "7", HdrTimestamp, ts), false, true},
		{"full headers, another channel", h(HdrChannel, "payments", HdrSequence, "7", HdrTimestamp, ts), true, false},
		{"full headers, another sequence", h(HdrChannel, "orders", HdrSequence, "6", HdrTimestamp, ts), true, false},
		{"timestamp only, in our stream", h(HdrTimestamp, ts), true, true},
		{"timestamp only, in a foreign stream", h(HdrTimestamp, ts), false, false},
		{"gap placeholder in our stream", h(HdrGap, "true"), true, true},
		{"no header at all", h(), true, false},
		{"an application's headers", h("Trace-Id", "abc"), true, false},
	}
	for _, tt := range tests {
		if got := Written(tt.h, tt.streamOurs, "c", "orders", 7); got != tt.want {
			t.Errorf("%s: Written = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestCarriedReadsBackAsWritten: what Put sets on a message, Written
// recognises as ours for that sequence and no other, under every header
// set, with and without a Msg-Id, on one header map reused across a
// message, a gap placeholder and a message again.
func TestCarriedReadsBackAsWritten(t *testing.T) {
	for _, tt := range []struct {
		headers string
		msgID   bool
	}{{HeadersFull, false}, {HeadersFull, true}, {HeadersMinimal, true}, {HeadersMinimal, false}} {
		c := NewCarried("prod", "orders.eu", tt.headers, tt.msgID)
		h := map[string][]string{}
		for _, m := range []struct {
			seq uint64
			gap bool
		}{{7, false}, {8, true}, {9, false}} {
			c.Put(h, strconv.FormatUint(m.seq, 10), 1_700_000_000_123_456_789, m.gap)
			// Without the stream's metadata, only a Msg-Id or stan2js's
			// headers on a message say whose it is.
			alone := tt.msgID || (!m.gap && tt.headers == HeadersFull)
			if got := Written(h, false, "prod", "orders.eu", m.seq); got != alone {
				t.Errorf("%s msgID=%v seq %d gap=%v: Written from the headers alone = %v, want %v (%v)", tt.headers, tt.msgID, m.seq, m.gap, got, alone, h)
			}
			if !Written(h, true, "prod", "orders.eu", m.seq) {
				t.Errorf("%s msgID=%v seq %d gap=%v: not ours in our own stream (%v)", tt.headers, tt.msgID, m.seq, m.gap, h)
			}
			if Written(h, false, "prod", "orders.eu", m.seq+1) || Written(h, false, "prod", "orders.us", m.seq) {
				t.Errorf("%s msgID=%v: message %d of orders.eu taken for another (%v)", tt.headers, tt.msgID, m.seq, h)
			}
			if _, marked := h[HdrGap]; marked != m.gap {
				t.Errorf("%s seq %d: gap marker present=%v, want %v", tt.headers, m.seq, marked, m.gap)
			}
			if _, ts := h[HdrTimestamp]; ts == m.gap {
				t.Errorf("%s seq %d gap=%v: timestamp present=%v", tt.headers, m.seq, m.gap, ts)
			}
		}
	}
}
