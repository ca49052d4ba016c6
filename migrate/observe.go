package migrate

import (
	"context"
	"errors"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/source"
)

// Observer is an optional extension of Reporter, for metrics: a Reporter
// that also implements it is told each channel's state as it changes.
// Calls come from the channels' goroutines at once; Copied arrives at
// most every 512 messages per channel (or when its pipeline runs dry), so
// an implementation may take a lock but must not block.
type Observer interface {
	// Phase: the channel entered a phase of its migration.
	Phase(channel string, p Phase)
	// Source: the channel's last sequence on STAN, as just read.
	Source(channel string, lastSeq uint64)
	// Copied: msgs messages (bytes of payload) of the channel were stored
	// since the previous call; the stream now holds everything up to
	// stored, and the last message copied carries the original timestamp
	// ts (zero when the call reports no message of its own).
	Copied(channel string, msgs, bytes, stored uint64, ts time.Time)
	// Checkpointed: the channel's checkpoint was written.
	Checkpointed(channel string, at time.Time)
	// Retrying: an attempt on the channel failed and will be retried;
	// failover says the cause was a server going away or a leader change
	// on either side.
	Retrying(channel string, failover bool)
	// AlreadyStored: a resend was refused because the stream holds the
	// message already (ours, same channel and sequence).
	AlreadyStored(channel string, n uint64)
	// PublishPath: the channel publishes through this path (PathBatch or
	// PathAsync) from now on; "" when it stopped publishing.
	PublishPath(channel string, path string)
	// Throttled: the channel waits this long for the rate limits
	// (Options.Rate, Options.RateBytes) before copying on.
	Throttled(channel string, wait time.Duration)
	// Reconnected: the connection to that side (SideTarget) was
	// re-established after a server went away. (The source's own
	// connections show as failovers of the channels they served.)
	Reconnected(side string)
	// LeasesHeld: how many channel leases this process holds now. Every
	// channel is worked under a lease in the state store; the figure
	// tells a fleet's processes (sharing a kv: store) apart.
	LeasesHeld(n int)
}

// Phase is where a channel's migration stands.
type Phase string

// Phases, in the order a channel goes through them (following only with
// Options.Follow; failed ends a channel that stopped on an error or an
// interruption; elsewhere, one another worker of a fleet took over or
// completed).
const (
	PhaseCopying   Phase = "copying"
	PhaseFollowing Phase = "following"
	PhaseConsumers Phase = "consumers"
	PhaseDone      Phase = "done"
	PhaseFailed    Phase = "failed"
	PhaseElsewhere Phase = "elsewhere"
)

// Phases lists every phase, for a metric that shows each.
var Phases = []Phase{PhaseCopying, PhaseFollowing, PhaseConsumers, PhaseDone, PhaseFailed, PhaseElsewhere}

// Publish paths as Observer.PublishPath names them.
const (
	PathBatch = "fast-ingest"
	PathAsync = "async"
)

// Sides as Observer.Reconnected names them.
const SideTarget = "jetstream"

// sourceEvery is how often, while following, the channels' last
// sequences are read again from the source for the observer (unless
// Options.SourceEvery says otherwise): a monitoring request listing every
// channel is cheap at that pace, and a lag figure ten seconds old is
// fresh enough to watch a cutover by.
const sourceEvery = 10 * time.Second

type nopObserver struct{}

func (nopObserver) Phase(string, Phase)                              {}
func (nopObserver) Source(string, uint64)                            {}
func (nopObserver) Copied(string, uint64, uint64, uint64, time.Time) {}
func (nopObserver) Checkpointed(string, time.Time)                   {}
func (nopObserver) Retrying(string, bool)                            {}
func (nopObserver) AlreadyStored(string, uint64)                     {}
func (nopObserver) PublishPath(string, string)                       {}
func (nopObserver) Throttled(string, time.Duration)                  {}
func (nopObserver) Reconnected(string)                               {}
func (nopObserver) LeasesHeld(int)                                   {}

// observerOf is the Reporter's Observer side, or one that does nothing. A
// Reporter that wraps another (Unwrap() Reporter, as errors do) is looked
// through, so a wrapper need not forward every Observer method.
func observerOf(rep Reporter) Observer {
	if o, ok := rep.(Observer); ok {
		return o
	}
	if u, ok := rep.(interface{ Unwrap() Reporter }); ok {
		return observerOf(u.Unwrap())
	}
	return nopObserver{}
}

// isFailover says whether an attempt failed because a server went away or
// a leader moved, on the target or on the source.
func isFailover(err error) bool {
	return errors.Is(err, errTargetMoved) || errors.Is(err, source.ErrLost) || errors.Is(err, source.ErrJump)
}

// watchSource reads the channels' last sequences every SourceEvery while
// a following run lasts, so an observer sees how far STAN has moved on.
// Without an observer, or without following, it does nothing.
func (r *runner) watchSource(ctx context.Context, names map[string]bool) {
	if _, nop := r.obs.(nopObserver); nop || !r.o.Follow {
		return
	}
	every := r.o.SourceEvery
	if every <= 0 {
		every = sourceEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		all, err := r.src.Channels(ctx)
		if err != nil {
			continue // the next tick asks again; the copy reports its own errors
		}
		for _, c := range all {
			if names[c.Name] && c.Err == nil {
				r.obs.Source(c.Name, c.LastSeq)
			}
		}
	}
}
