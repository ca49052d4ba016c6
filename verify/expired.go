package verify

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/jsformat"
)

// expiry tells a message that expired on one side during the run from a
// lost one, on a channel with a max_age. STAN and the stream each drop a
// message at its deadline (its STAN timestamp + max_age) on their own
// timers, so for a moment one side may hold a message the other has
// dropped; with the expiry counted from the migration, the stream keeps
// it longer still. A message found on one side only is accepted as
// expired, and left out of both hashes, only if its deadline had passed
// when it was compared: a message missing from the stream while its
// deadline is still ahead is a loss, whatever the mode.
type expiry struct {
	maxAge time.Duration // 0: the channel has none, nothing is accepted
	now    func() time.Time
}

// passed reports whether a message stamped ts (STAN's nanoseconds since
// the epoch) is past its deadline.
func (e expiry) passed(ts int64) bool {
	if e.maxAge <= 0 || ts <= 0 {
		return false
	}
	return !e.now().Before(time.Unix(0, ts).Add(e.maxAge))
}

// streamPassed is passed for a stream message, by the original timestamp
// migrate put in its headers (without one it is never accepted).
func (e expiry) streamPassed(m jetstream.Msg) bool {
	if e.maxAge <= 0 {
		return false
	}
	ts, err := time.Parse(time.RFC3339Nano, m.Headers().Get(jsformat.HdrTimestamp))
	if err != nil {
		return false
	}
	return e.passed(ts.UnixNano())
}
