// Package metrics turns a run's progress into Prometheus metrics and a
// health answer. It is fed through migrate's Reporter and Observer and
// verify's Reporter, so the libraries never import Prometheus; cmd serves
// it with --metrics-listen. docs/metrics.md lists every metric.
package metrics

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/verify"
)

// DefaultStallAfter is how long a channel with messages left may store
// nothing (time spent waiting for --rate aside) before /healthz calls the
// run stalled: longer than a failover and the retries that ride it out
// take, shorter than an operator's patience.
const DefaultStallAfter = 60 * time.Second

// Options describe the run being measured.
type Options struct {
	// Rate and RateBytes are the run's copy limits (0 = none), shown as
	// metrics.
	Rate      float64
	RateBytes int64
	// StallAfter: see DefaultStallAfter (0 = the default).
	StallAfter time.Duration
	// Now is the clock (nil = time.Now), for tests.
	Now func() time.Time
}

// Run holds one run's metrics. It implements migrate.Reporter and
// migrate.Observer; Verify adapts it to verify.Reporter.
type Run struct {
	o Options

	mu            sync.Mutex
	chans         map[string]*channel
	plannedMsgs   uint64
	plannedBytes  uint64
	alreadyStored uint64
	leases        int
	reconnects    map[string]uint64
	throttleWait  time.Duration
	ended         bool
	endErr        error
}

// channel is what is known of one channel.
type channel struct {
	copied, bytes, verified uint64
	sourceLast, streamLast  uint64
	lastTS                  time.Time
	retries, failovers      uint64
	checkpointAt            time.Time
	phase                   migrate.Phase
	path                    string
	// since is when the channel last showed progress: a stored sequence
	// advanced or a phase began; throttledUntil is when its current wait
	// for the rate limits ends.
	since, throttledUntil time.Time
}

// New returns an empty Run.
func New(o Options) *Run {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StallAfter <= 0 {
		o.StallAfter = DefaultStallAfter
	}
	return &Run{o: o, chans: map[string]*channel{}, reconnects: map[string]uint64{migrate.SideTarget: 0}}
}

// ch returns the channel's entry; called with mu held.
func (r *Run) ch(name string) *channel {
	c, ok := r.chans[name]
	if !ok {
		c = &channel{since: r.o.Now()}
		r.chans[name] = c
	}
	return c
}

func (r *Run) with(name string, f func(c *channel)) {
	r.mu.Lock()
	f(r.ch(name))
	r.mu.Unlock()
}

// Begin records what the plan counts.
func (r *Run) Begin(totalMsgs, totalBytes uint64) {
	r.mu.Lock()
	r.plannedMsgs, r.plannedBytes = totalMsgs, totalBytes
	r.mu.Unlock()
}

// Progress is counted per channel through Copied instead.
func (r *Run) Progress(uint64, uint64) {}

// Event carries nothing the metrics need.
func (r *Run) Event(migrate.Event) {}

// Phase records a channel's phase.
func (r *Run) Phase(name string, p migrate.Phase) {
	r.with(name, func(c *channel) { c.phase, c.since = p, r.o.Now() })
}

// Source records STAN's last sequence for a channel.
func (r *Run) Source(name string, last uint64) {
	r.with(name, func(c *channel) { c.sourceLast = last })
}

// Copied counts messages stored and records how far the stream holds.
func (r *Run) Copied(name string, msgs, bytes, stored uint64, ts time.Time) {
	r.with(name, func(c *channel) {
		c.copied += msgs
		c.bytes += bytes
		if stored > c.streamLast {
			c.streamLast, c.since = stored, r.o.Now()
		}
		if !ts.IsZero() {
			c.lastTS = ts
		}
	})
}

// Checkpointed records when the channel's checkpoint was written.
func (r *Run) Checkpointed(name string, at time.Time) {
	r.with(name, func(c *channel) { c.checkpointAt = at })
}

// Retrying counts a failed attempt, and failovers among them.
func (r *Run) Retrying(name string, failover bool) {
	r.with(name, func(c *channel) {
		c.retries++
		if failover {
			c.failovers++
		}
	})
}

// AlreadyStored counts resends the stream refused as already stored.
func (r *Run) AlreadyStored(_ string, n uint64) {
	r.mu.Lock()
	r.alreadyStored += n
	r.mu.Unlock()
}

// PublishPath records the path a channel publishes through.
func (r *Run) PublishPath(name, path string) {
	r.with(name, func(c *channel) { c.path = path })
}

// Throttled records a wait for the rate limits.
func (r *Run) Throttled(name string, wait time.Duration) {
	r.with(name, func(c *channel) {
		r.throttleWait += wait
		c.throttledUntil = r.o.Now().Add(wait)
	})
}

// Reconnected counts a connection re-established to a side.
func (r *Run) Reconnected(side string) {
	r.mu.Lock()
	r.reconnects[side]++
	r.mu.Unlock()
}

// LeasesHeld records how many channel leases the process holds (fleets).
func (r *Run) LeasesHeld(n int) {
	r.mu.Lock()
	r.leases = n
	r.mu.Unlock()
}

// End records that the run returned, with its error.
func (r *Run) End(err error) {
	r.mu.Lock()
	r.ended, r.endErr = true, err
	r.mu.Unlock()
}

// Verify adapts the Run to verify's Reporter.
func (r *Run) Verify() verify.Reporter { return verifyReporter{r} }

type verifyReporter struct{ r *Run }

func (v verifyReporter) Begin(msgs, bytes uint64) { v.r.Begin(msgs, bytes) }
func (v verifyReporter) Progress(name string, msgs uint64) {
	v.r.with(name, func(c *channel) { c.verified += msgs; c.since = v.r.o.Now() })
}

// lag is how many messages the channel still has to copy: up to STAN's
// last sequence as last read.
func (c *channel) lag() uint64 {
	if c.sourceLast > c.streamLast {
		return c.sourceLast - c.streamLast
	}
	return 0
}

// lagSeconds is how far behind STAN's clock the copy is: 0 when nothing
// is left to copy, else the age of the last message copied (false when
// none was copied yet, so it is not known).
func (c *channel) lagSeconds(now time.Time) (float64, bool) {
	if c.lag() == 0 {
		return 0, true
	}
	if c.lastTS.IsZero() {
		return 0, false
	}
	return max(now.Sub(c.lastTS).Seconds(), 0), true
}

// copying reports whether the channel is in a phase that copies.
func (c *channel) copying() bool {
	return c.phase == migrate.PhaseCopying || c.phase == migrate.PhaseFollowing
}

// Health says whether the run is progressing (see docs/metrics.md): no
// channel that is copying with messages left has gone StallAfter without
// storing one (time it was told to wait for the rate limits aside), and
// the run has not ended on an error. detail is one line saying why.
func (r *Run) Health() (ok bool, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.o.Now()
	if r.ended {
		if r.endErr != nil {
			return false, "the run ended: " + r.endErr.Error()
		}
		return true, "the run is complete"
	}
	var stalled []string
	copying, done, verified := 0, 0, 0
	for name, c := range r.chans {
		switch {
		case c.phase == migrate.PhaseDone:
			done++
		case c.copying():
			copying++
		}
		if c.verified > 0 {
			verified++
		}
		if !c.copying() || c.lag() == 0 {
			continue
		}
		since := c.since
		if c.throttledUntil.After(since) {
			since = c.throttledUntil
		}
		if idle := now.Sub(since); idle >= r.o.StallAfter {
			stalled = append(stalled, fmt.Sprintf("%q (%d message(s) left, nothing stored for %v)", name, c.lag(), idle.Round(time.Second)))
		}
	}
	if len(stalled) > 0 {
		sort.Strings(stalled)
		return false, "stalled: " + strings.Join(stalled, ", ")
	}
	if verified > 0 {
		return true, fmt.Sprintf("progressing: %d channel(s) compared so far", verified)
	}
	return true, fmt.Sprintf("progressing: %d channel(s) copying, %d done", copying, done)
}

// names returns the channels in order; called with mu held.
func (r *Run) names() []string {
	out := make([]string, 0, len(r.chans))
	for n := range r.chans {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
