package migrate

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/apilevel"
	"github.com/stanmigrate/stanmigrate/plan"
)

// Channels planned with plan.ExpiryOriginal keep STAN's deadlines: each
// copied message carries a per-message TTL (Nats-TTL) of max_age minus its
// age, so it expires at its STAN timestamp + max_age. The stream allows
// per-message TTL and keeps max_age for the messages published after the
// migration.

// minMsgTTL is the least TTL JetStream accepts (whole seconds; "0" would
// mean no TTL at all). A message already past its deadline when copied
// gets it: STAN expires on a timer, so such a message can still be read,
// and copying it for a second keeps stream sequence == channel sequence
// and the copy's content hash equal to what STAN held, where dropping it
// would need a placeholder and make the stream differ from STAN until
// STAN's timer catches up.
const minMsgTTL = 1

// originalExpiry reports whether a channel's messages get per-message TTLs.
func originalExpiry(c *plan.Channel) bool {
	return c.Expiry == plan.ExpiryOriginal && c.Limits.MaxAge > 0
}

// checkExpiry refuses, before anything is written, a plan that keeps
// original deadlines on a target without per-message TTL (a plan made for
// another target, or a server downgraded since).
func (r *runner) checkExpiry(chans []*plan.Channel) error {
	if r.level.PerMessageTTL() {
		return nil
	}
	for _, c := range chans {
		if originalExpiry(c) {
			return permanent{fmt.Errorf("channel %q: the plan keeps its original expiry (expiry: original) by per-message TTL, which the target (nats-server %s, JetStream API level %d) does not offer (%s or later): re-plan against this target, or set expiry: migration in the plan: %w",
				c.Name, r.nc.ConnectedServerVersion(), r.level, apilevel.MsgTTL.Release(), ErrBlocked)}
		}
	}
	return nil
}

// ensureMsgTTL turns on per-message TTL on a stream an earlier run made
// without it (JetStream allows enabling it, never disabling), and refuses
// a stream that still does not take it: a server that does not know the
// setting drops it, and would then ignore every Nats-TTL header.
func ensureMsgTTL(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, c *plan.Channel) error {
	if !originalExpiry(c) || s.CachedInfo().Config.AllowMsgTTL {
		return nil
	}
	cfg := s.CachedInfo().Config
	cfg.AllowMsgTTL = true
	upd, err := js.UpdateStream(ctx, cfg)
	if err != nil {
		return fmt.Errorf("stream %q: allow per-message TTL (the plan keeps channel %q's original expiry): %w", c.Stream, c.Name, err)
	}
	if !upd.CachedInfo().Config.AllowMsgTTL {
		return permanent{fmt.Errorf("stream %q: the target does not keep allow_msg_ttl (nats-server 2.11 or later needed) though the plan keeps channel %q's original expiry: set expiry: migration in the plan: %w",
			c.Stream, c.Name, ErrBlocked)}
	}
	return nil
}

// expiredBefore reports whether the stream's first sequence moved to
// first because the messages before it reached their deadlines (their
// per-message TTLs), which STAN, expiring on its own timer, may not have
// acted on yet: the message before first is past its deadline on STAN.
// Deadlines rise with sequences, so the earlier ones are too.
func (r *runner) expiredBefore(ctx context.Context, c *plan.Channel, first uint64) bool {
	if !originalExpiry(c) || first <= c.FirstSeq {
		return false
	}
	m, err := r.src.Get(ctx, c.Name, first-1)
	if err != nil || m == nil {
		return false
	}
	return time.Now().UnixNano() >= m.Timestamp+int64(c.Limits.MaxAge)
}

// msgTTL computes each message's Nats-TTL value. It remembers the last
// value's text: consecutive messages mostly share it, so the hot path
// neither allocates nor formats.
type msgTTL struct {
	maxAge int64 // nanoseconds
	last   int64
	text   string
}

// value is the TTL, in whole seconds, that makes a message stamped ts
// (nanoseconds since the epoch) expire at ts + max_age: rounded up, so
// that it never goes before STAN would have dropped it, and at least
// minMsgTTL.
func (t *msgTTL) value(ts int64, now time.Time) string {
	left := ts + t.maxAge - now.UnixNano()
	secs := int64(minMsgTTL)
	if left > int64(time.Second) {
		secs = (left + int64(time.Second) - 1) / int64(time.Second)
	}
	if secs != t.last || t.text == "" {
		t.last, t.text = secs, strconv.FormatInt(secs, 10)
	}
	return t.text
}

// ttlHeadroom bounds what the Nats-TTL header adds to a message.
const ttlHeadroom = int64(len("Nats-TTL: ") + 20 + len("\r\n"))
