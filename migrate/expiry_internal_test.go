package migrate

import (
	"testing"
	"time"
)

// TestMsgTTLValue: a message's Nats-TTL is what is left of max_age after
// its age, rounded up to the next whole second so it never leaves before
// its STAN deadline; a message already at or past its deadline (STAN
// expires on a timer, so one can still be read) gets the least TTL
// JetStream takes, 1 s, which keeps it in sequence and removes it a
// second after the copy.
func TestMsgTTLValue(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ttl := &msgTTL{maxAge: int64(time.Hour)}
	for _, tc := range []struct {
		age  time.Duration
		want string
	}{
		{0, "3600"},
		{time.Millisecond, "3600"},               // 3599.999 s left: rounded up
		{time.Second, "3599"},                    // exactly 3599 s left
		{time.Hour - 1500*time.Millisecond, "2"}, // 1.5 s left
		{time.Hour - time.Second, "1"},
		{time.Hour - time.Nanosecond, "1"},
		{time.Hour, "1"},             // at the deadline
		{2 * time.Hour, "1"},         // long past it
		{-time.Minute, "3660"},       // stamped after now (clock skew)
		{30 * time.Minute, "1800"},   // repeated value from the cache
		{30*time.Minute + 1, "1800"}, // 1799.999... s left: rounded up
		{30*time.Minute + time.Second, "1799"},
	} {
		ts := now.Add(-tc.age).UnixNano()
		if got := ttl.value(ts, now); got != tc.want {
			t.Errorf("age %v of max_age 1h: Nats-TTL %q, want %q", tc.age, got, tc.want)
		}
	}
}

// TestMsgTTLValueAllocates nothing while the value repeats, as it does
// for messages stamped within the same second.
func TestMsgTTLValueAllocates(t *testing.T) {
	now := time.Now()
	ttl := &msgTTL{maxAge: int64(24 * time.Hour)}
	ts := now.Add(-time.Hour).UnixNano()
	ttl.value(ts, now)
	if n := testing.AllocsPerRun(1000, func() { ttl.value(ts, now) }); n != 0 {
		t.Errorf("%v allocations per message for a repeated TTL, want 0", n)
	}
}

// BenchmarkMsgTTLValue is the per-message cost of the Nats-TTL value on
// the publish path, clock read included:
//
//	go test ./migrate -run '^$' -bench MsgTTLValue -benchmem
func BenchmarkMsgTTLValue(b *testing.B) {
	ttl := &msgTTL{maxAge: int64(24 * time.Hour)}
	ts := time.Now().Add(-time.Hour).UnixNano()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		// Messages a microsecond apart, as in a busy channel.
		ttl.value(ts+int64(i)*int64(time.Microsecond), time.Now())
	}
}
