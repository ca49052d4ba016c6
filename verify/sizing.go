package verify

import (
	"time"

	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/plan"
)

// Timeouts are variables so tests can shorten them.
var (
	// idleTimeout bounds how long one side may stay silent while the merge
	// still expects messages from it: a channel or stream holding fewer
	// messages than announced must end in a report, not a hang.
	idleTimeout = 10 * time.Second
	// quietTimeout is how long the stream side waits for more once the
	// server said nothing is pending.
	quietTimeout = time.Second
	// rereadBudget is how long the STAN side keeps reading again from the
	// same sequence (a failover: an FT standby takes over in seconds, a
	// clustered STAN elects a leader in seconds); rereadPause is the first
	// pause before a read again, doubled up to maxRereadPause.
	rereadBudget   = time.Minute
	rereadPause    = 100 * time.Millisecond
	maxRereadPause = 2 * time.Second
	// progressInterval is the least time between two progress reports.
	progressInterval = 500 * time.Millisecond
)

const (
	// STAN sends a subscription at most MaxInflight messages it has not
	// seen acknowledged; verify reads in windows of that many (see
	// source.ReadOptions.MaxInflight), sized by bytes so that large messages cannot blow
	// memory, and large enough that the subscription churn stays rare.
	maxWindow     = 65536
	minWindow     = 64
	inflightBytes = 32 << 20
	msgOverhead   = 512 // bytes the client holds per message besides the payload
	// A hand-off to the merger holds at most maxFeed messages or about
	// feedBytes. From STAN they count against the window; from a stream
	// they come on top of its pull; a store directory has no other bound.
	maxFeed   = 1024
	minFeed   = 16
	feedBytes = 4 << 20
	// listed is how many differing sequences of each kind a report names.
	listed = 10
	// progressEvery is how many messages pass between progress checks.
	progressEvery = 1024
)

// msgCost is what the client holds per message of the channel: its
// average payload plus msgOverhead; 0 when nothing says.
func msgCost(b bounds, c *plan.Channel) uint64 {
	msgs, size := b.msgs, b.bytes
	if !b.known {
		msgs, size = c.Msgs, c.Bytes
	}
	if msgs == 0 {
		return 0
	}
	return size/msgs + msgOverhead
}

// window sizes STAN's windows so that the open ones hold about
// inflightBytes.
func window(cost uint64) int {
	if cost == 0 {
		return maxWindow
	}
	return int(max(min(maxWindow, inflightBytes/source.WindowDepth/cost), minWindow))
}

// feedLimit sizes a hand-off to the merger so that it holds about
// feedBytes.
func feedLimit(cost uint64) int {
	if cost == 0 {
		return maxFeed
	}
	return int(max(min(maxFeed, feedBytes/cost), minFeed))
}
