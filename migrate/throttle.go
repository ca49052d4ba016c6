package migrate

import (
	"context"
	"time"

	"golang.org/x/time/rate"
)

// throttle caps the copy rate of a whole run, across its channels, in
// messages and in payload bytes per second (Options.Rate, RateBytes).
// Each channel takes its allowance from the shared limiters in chunks
// (about a twentieth of a second's worth) and spends it message by
// message, so the shared limiter is touched a few times a second per
// channel, not once per message.
type throttle struct {
	msgs, bytes          *rate.Limiter
	msgChunk, bytesChunk int
}

// newThrottle returns nil when neither limit is set. maxMsg bounds a
// single message's payload (the target's max_payload): a byte limiter
// must allow at least that much at once.
func newThrottle(msgsPerSec float64, bytesPerSec int64, maxMsg int64) *throttle {
	if msgsPerSec <= 0 && bytesPerSec <= 0 {
		return nil
	}
	t := &throttle{}
	if msgsPerSec > 0 {
		t.msgChunk = int(min(max(msgsPerSec/20, 1), 1000))
		t.msgs = emptyLimiter(rate.Limit(msgsPerSec), t.msgChunk)
	}
	if bytesPerSec > 0 {
		t.bytesChunk = int(min(max(bytesPerSec/20, 1), 8<<20))
		t.bytes = emptyLimiter(rate.Limit(bytesPerSec), int(max(int64(t.bytesChunk), maxMsg, 1)))
	}
	return t
}

// emptyLimiter starts with no tokens, so that the messages copied in any
// span from the start never exceed the rate times that span: a run's
// average is at or below its limit, not above it by a first burst.
func emptyLimiter(r rate.Limit, burst int) *rate.Limiter {
	l := rate.NewLimiter(r, burst)
	l.ReserveN(time.Now(), burst)
	return l
}

// allowance is one channel attempt's share taken from the throttle and
// not yet spent. Only the attempt's delivering goroutine uses it.
type allowance struct {
	t           *throttle
	channel     string
	obs         Observer
	msgs, bytes int
}

// take waits until one message of size bytes may be copied.
func (a *allowance) take(ctx context.Context, size int) error {
	if a.t.msgs != nil {
		if a.msgs == 0 {
			if err := a.wait(ctx, a.t.msgs, a.t.msgChunk); err != nil {
				return err
			}
			a.msgs = a.t.msgChunk
		}
		a.msgs--
	}
	if a.t.bytes != nil && size > 0 {
		if a.bytes < size {
			need := max(a.t.bytesChunk, size-a.bytes)
			if err := a.wait(ctx, a.t.bytes, need); err != nil {
				return err
			}
			a.bytes += need
		}
		a.bytes -= size
	}
	return nil
}

func (a *allowance) wait(ctx context.Context, l *rate.Limiter, n int) error {
	res := l.ReserveN(time.Now(), min(n, l.Burst()))
	d := res.Delay()
	if d <= 0 {
		return nil
	}
	a.obs.Throttled(a.channel, d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		res.Cancel()
		return ctx.Err()
	}
}
