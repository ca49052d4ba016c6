// Package verify proves a migration: it compares every planned channel with
// its stream (counts, first and last sequence, a content hash per message
// and per channel) and every durable with the consumer that replaced it.
//
// It changes no message, durable or consumer. It reads the source through
// a source.Source (on a live STAN server: non-durable subscriptions of its
// own, which it never acks and which STAN records in its subscription file
// while they exist) and JetStream through ordered consumers (ephemeral,
// removed when done) and direct gets; it never acks, creates or changes
// anything durable on either server. The only thing it writes is each
// channel's verified prefix, in the run's state store when it is given
// one. It never prints and never exits: results come back as a Report,
// progress through a Reporter.
package verify

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/plan"
)

// ErrDifferences is returned, wrapped with a count, when any check fails.
var ErrDifferences = errors.New("differences found")

// DefaultParallel is how many channels are verified at once when nothing
// says: one per CPU.
var DefaultParallel = runtime.NumCPU()

// Options configure a run.
type Options struct {
	Target conn.Side
	// Sample > 0 checks that many random sequences per channel by direct
	// get on the stream and a one-message read of the source, instead of
	// streaming every message. Counts and first/last are still compared
	// in full; no channel hash is computed.
	Sample int
	// Parallel is how many channels are verified at once (0 =
	// DefaultParallel).
	Parallel int
	// State, when set, keeps each channel's verified prefix: a run checks
	// the prefix cheaply and reads only past it, then records the new one.
	State state.Store
	// Full reads every channel from its start whatever prefix is
	// recorded (the new prefix is still recorded).
	Full bool
	// Follow keeps verifying, round after round, as both sides grow
	// (beside migrate --follow), moving the verified prefix, until Finish
	// is closed or IdleFinish passes without a new message; then one last
	// round checks the tails in full and the consumers.
	Follow     bool
	Finish     <-chan struct{}
	IdleFinish time.Duration
	// Reporter, when set, receives progress.
	Reporter Reporter
}

// Reporter receives progress. Implementations must be safe for use from
// several goroutines.
type Reporter interface {
	// Begin announces how many messages the run compares (what the plan
	// says the channels hold).
	Begin(totalMsgs, totalBytes uint64)
	// Progress reports messages checked on a channel since the previous
	// call for that channel (a delta).
	Progress(channel string, msgs uint64)
}

// Run verifies every active channel of the plan against src, and the
// consumers of its durables. The error wraps ErrDifferences when the report
// has differences; any other error is a connection or usage problem,
// returned with whatever was verified before it.
func Run(ctx context.Context, src source.Source, p *plan.Plan, o Options) (*Report, error) {
	if p == nil {
		return nil, errors.New("verify: no plan")
	}
	if o.Target.Name == "" {
		o.Target.Name = "JetStream"
	}
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	chans := p.Active()
	if len(chans) == 0 {
		return &Report{Channels: []ChannelReport{}, Consumers: []ConsumerReport{}, OK: true}, nil
	}
	if o.Sample > 0 && o.Follow {
		return nil, errors.New("verify: --sample and --follow do not go together: following moves a verified prefix, which sampling does not make")
	}
	if err := p.CheckSource(ctx, src); err != nil {
		return nil, err
	}
	var extra []nats.Option
	if o.Follow {
		// Following rides out a JetStream restart or leader change.
		extra = append(extra, nats.MaxReconnects(-1))
	}
	nc, js, err := conn.JetStream(ctx, o.Target, "stanmigrate-verify", extra...)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	if err := src.Connect(ctx); err != nil {
		return nil, err
	}
	if o.Reporter != nil {
		var msgs, bytes uint64
		for _, c := range chans {
			msgs += c.Msgs
			bytes += c.Bytes
		}
		o.Reporter.Begin(msgs, bytes)
	}
	v := &verifier{src: src, js: js, o: &o, chans: chans}
	if o.Follow {
		if rep, err := v.follow(ctx); err != nil {
			return rep, err
		}
	}
	return v.round(ctx, false)
}

// verifier is one run's shared state.
type verifier struct {
	src   source.Source
	js    jetstream.JetStream
	o     *Options
	chans []*plan.Channel
}

// round verifies every channel once. A following round (tailing) checks
// each channel only as far as both sides hold it, and no consumers.
func (v *verifier) round(parent context.Context, tailing bool) (*Report, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	chans := v.chans
	type result struct {
		ch   *ChannelReport
		cons []ConsumerReport
	}
	results := make([]result, len(chans))
	var (
		errMu    sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel()
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(v.o.Parallel, len(chans)) {
		wg.Go(func() {
			for i := range next {
				if ctx.Err() != nil {
					continue
				}
				cr, cons, err := verifyChannel(ctx, v.src, v.js, chans[i], v.o, tailing)
				if err != nil {
					fail(fmt.Errorf("verify channel %q (stream %q): %w", chans[i].Name, chans[i].Stream, err))
					continue
				}
				results[i] = result{cr, cons}
			}
		})
	}
feed:
	for i := range chans {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()

	rep := &Report{Channels: []ChannelReport{}, Consumers: []ConsumerReport{}}
	badChannels, badConsumers := 0, 0
	for _, r := range results {
		if r.ch == nil {
			continue
		}
		rep.Channels = append(rep.Channels, *r.ch)
		if !r.ch.OK {
			badChannels++
			rep.Differences += int(max(1, r.ch.MissingCount+r.ch.ExtraCount+r.ch.ChangedCount))
		}
		for _, c := range r.cons {
			rep.Consumers = append(rep.Consumers, c)
			if !c.OK {
				badConsumers++
				rep.Differences++
			}
		}
	}
	rep.OK = rep.Differences == 0
	if firstErr == nil && parent.Err() != nil {
		// Cancelled between channels: what was skipped is unverified.
		firstErr = fmt.Errorf("verify: %w", parent.Err())
	}
	if firstErr != nil {
		rep.OK = false
		return rep, firstErr
	}
	if !rep.OK {
		return rep, fmt.Errorf("%w: %d in %d channel(s) and %d consumer(s)", ErrDifferences, rep.Differences, badChannels, badConsumers)
	}
	return rep, nil
}

// bounds is what the source says a channel holds when verification
// starts.
type bounds struct {
	known bool // counted by the server (false: only the range is known)
	gone  bool // the source says the channel does not exist
	first uint64
	last  uint64
	msgs  uint64
	bytes uint64
}

func (b bounds) empty() bool { return b.gone || b.last == 0 || b.last < b.first }

// verifyChannel compares one channel with its stream, then its durables
// with their consumers. The stream is looked at before the channel: what
// migrate copied, STAN held first, so a tailing round never takes a
// message the stream has not caught up with yet for one it lacks.
func verifyChannel(ctx context.Context, src source.Source, js jetstream.JetStream, c *plan.Channel, o *Options, tailing bool) (*ChannelReport, []ConsumerReport, error) {
	var sa streamAt
	var pf prefix
	var err error
	if o.Sample == 0 {
		if sa.s, sa.state, err = openStream(ctx, js, c.Stream); err != nil {
			return nil, nil, err
		}
		if pf, err = loadPrefix(ctx, o, c.Stream); err != nil {
			return nil, nil, err
		}
	}
	sc, err := src.Channel(ctx, c.Name)
	var b bounds
	switch {
	case errors.Is(err, source.ErrNoChannel):
		// Subscribing would create the channel: a verifier must not.
		b = bounds{known: true, gone: true}
		sc = source.Channel{Name: c.Name, DurablesKnown: true}
	case err != nil:
		return nil, nil, err
	case sc.Err != nil:
		return unreadable(c, sc.Err), nil, nil
	default:
		b = bounds{known: sc.Counted, first: sc.FirstSeq, last: sc.LastSeq, msgs: sc.Msgs, bytes: sc.Bytes}
	}
	if tailing {
		if sa.state == nil || sa.state.LastSeq < max(b.first, 1) || b.empty() {
			// Nothing copied yet: the next round looks again.
			return &ChannelReport{Channel: c.Name, Stream: c.Stream, OK: true}, nil, nil
		}
		// Past the stream's last, migrate has not copied yet.
		b.last = min(b.last, sa.state.LastSeq)
	}
	pf.judge(b, sa.state)
	var progress func(string, uint64)
	if o.Reporter != nil {
		progress = o.Reporter.Progress
	}
	var cr *ChannelReport
	if o.Sample > 0 {
		cr, err = sampleChannel(ctx, src, js, c, b, o.Sample, progress)
	} else {
		cr, err = fullChannel(ctx, src, js, c, b, sa, &pf, progress)
	}
	if errors.Is(err, source.ErrUnreadable) {
		return unreadable(c, err), nil, nil
	}
	if err != nil || tailing {
		return cr, nil, err
	}
	cons, err := consumers(ctx, js, c, sc)
	if err != nil {
		return nil, nil, err
	}
	return cr, cons, nil
}
