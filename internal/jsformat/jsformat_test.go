package jsformat

import "testing"

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
