package plan

import (
	"fmt"
	"strings"

	"github.com/stanmigrate/stanmigrate/internal/apilevel"
)

// Expiry modes: when a migrated message of a channel with max_age expires.
const (
	// ExpiryOriginal: at its original STAN deadline (STAN timestamp +
	// max_age), by a per-message TTL (Nats-TTL) that migrate computes as
	// each message is copied. Needs per-message TTL on the target
	// (nats-server 2.11 and later, stream setting allow_msg_ttl).
	ExpiryOriginal = "original"
	// ExpiryMigration: max_age counted from the copy, as JetStream does
	// for any message it stores.
	ExpiryMigration = "migration"
)

// planExpiry decides, per channel with a max_age, which expiry it gets:
// the one asked for where the target can do it (its JetStream API level
// offers per-message TTL), otherwise expiry counted from the copy, and
// says so in the findings.
func planExpiry(p *Plan, t TargetState, mode string, add func(sev, obj, format string, args ...any)) {
	targetVersion, level := t.Version, apilevel.Level(t.APILevel)
	var original, fromCopy []string
	for i := range p.Channels {
		c := &p.Channels[i]
		if c.Limits.MaxAge <= 0 {
			continue
		}
		c.Expiry = ExpiryMigration
		if mode == ExpiryOriginal && level.PerMessageTTL() {
			c.Expiry = ExpiryOriginal
		}
		if c.Skip {
			continue
		}
		if c.Expiry == ExpiryOriginal {
			original = append(original, c.Name)
		} else {
			fromCopy = append(fromCopy, c.Name)
		}
	}
	if len(original) > 0 {
		add(Info, "max_age", "%d channel(s) keep STAN's deadlines (expiry: original): each message gets a per-message TTL (Nats-TTL) of max_age minus its age when copied, so it expires at its original STAN timestamp + max_age, rounded up to the next whole second; a message already past its deadline when copied is kept for 1 s, the least JetStream takes; the stream keeps max_age for new messages (%s)", len(original), sample(original))
	}
	if len(fromCopy) == 0 {
		return
	}
	why := "the plan asks for it (expiry: migration)"
	switch {
	case mode == ExpiryOriginal && targetVersion == "":
		why = fmt.Sprintf("the target's version is unknown, so per-message TTL (%s and later) cannot be relied on", apilevel.MsgTTL.Release())
	case mode == ExpiryOriginal:
		why = fmt.Sprintf("the target (nats-server %s, JetStream API level %d) has no per-message TTL, which arrived in %s: upgrade it and re-plan to keep the original deadlines", targetVersion, level, apilevel.MsgTTL.Release())
	}
	add(Info, "max_age", "JetStream counts max_age from the migration time, not from the original STAN timestamps (kept in the Nats-Streaming-Timestamp header), for %d channel(s): messages live longer than they would have on STAN; %s (%s)", len(fromCopy), why, sample(fromCopy))
}

// validExpiry checks a channel's expiry field as read from a plan file.
func validExpiry(c *Channel) string {
	switch c.Expiry {
	case "", ExpiryMigration:
		return ""
	case ExpiryOriginal:
		if c.Limits.MaxAge <= 0 {
			return fmt.Sprintf("channel %q: expiry %q needs a max_age: remove it or set limits.max_age", c.Name, c.Expiry)
		}
		return ""
	}
	return fmt.Sprintf("channel %q: expiry %q: use %s", c.Name, c.Expiry, strings.Join([]string{ExpiryOriginal, ExpiryMigration}, " or "))
}
