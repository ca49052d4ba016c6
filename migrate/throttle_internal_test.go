package migrate

import (
	"context"
	"testing"
	"time"
)

// countingObserver counts the waits a throttle reports.
type countingObserver struct {
	nopObserver
	waits int
}

func (c *countingObserver) Throttled(string, time.Duration) { c.waits++ }

// TestThrottleHoldsTheRateFromAnEmptyStart: under a cap of 200 messages
// per second, 100 messages take at least half a second (the limiter
// starts empty, so no first burst goes through for free), and the shared
// limiter is asked once per chunk, not once per message.
func TestThrottleHoldsTheRateFromAnEmptyStart(t *testing.T) {
	obs := &countingObserver{}
	th := newThrottle(200, 0, 1<<20)
	a := &allowance{t: th, channel: "c", obs: obs}
	start := time.Now()
	for range 100 {
		if err := a.take(context.Background(), 100); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 490*time.Millisecond {
		t.Errorf("100 messages under 200 msgs/s took %v, want at least 0.5 s", el)
	}
	if th.msgChunk != 10 || obs.waits > 100/th.msgChunk {
		t.Errorf("chunk %d, %d waits for 100 messages: want chunks of 10 and at most 10 waits", th.msgChunk, obs.waits)
	}
}

// BenchmarkAllowanceTake is the per-message cost of a throttle whose cap
// is never reached (the hot path when --rate is set high).
func BenchmarkAllowanceTake(b *testing.B) {
	a := &allowance{t: newThrottle(1e9, 1<<40, 1<<20), channel: "c", obs: nopObserver{}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := a.take(ctx, 256); err != nil {
			b.Fatal(err)
		}
	}
}
