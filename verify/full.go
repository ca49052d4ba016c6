package verify

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/plan"
)

// streamAt is the stream as found when the channel's check began: nil
// state when it does not exist.
type streamAt struct {
	s     jetstream.Stream
	state *jetstream.StreamState
}

// fullChannel streams both sides in sequence order, past the verified
// prefix if there is one, and merges them, in memory bounded by STAN's
// window, the stream's pull batch and two small queues, whatever the
// channel's size.
func fullChannel(ctx context.Context, src source.Source, js jetstream.JetStream, c *plan.Channel, b bounds, sa streamAt, pf *prefix, progress func(string, uint64)) (*ChannelReport, error) {
	r := &ChannelReport{Channel: c.Name, Stream: c.Stream, PrefixNote: pf.why}
	stream, state := sa.s, sa.state
	ds, dt, err := pf.digests()
	if err != nil {
		return nil, err
	}
	from := pf.from()
	m := &merger{rep: r, channel: c.Name, js: js, ds: ds, dt: dt, stanPrev: from, streamPrev: from,
		progress: progress, lastReported: time.Now(), stanLast: b.last, stanDone: true, streamDone: true,
		exp: expiry{maxAge: c.Limits.MaxAge.D(), now: time.Now}}
	m.timer = time.NewTimer(idleTimeout)
	m.timer.Stop()
	cost := msgCost(b, c)
	feedLen := feedLimit(cost)
	if !b.empty() && b.last > from {
		m.src, m.window, m.feedLen = src, window(cost), feedLen
		// Right after a failover STAN may not take a read yet.
		m.lostSince, m.lostAt = time.Now(), from
		if err := m.startSTAN(ctx, max(b.first, from+1), 0); err != nil {
			return nil, err
		}
		defer func() { m.sr.stop() }() // the one reading at the end
		m.stanDone = false
	}
	if state != nil && state.Msgs > 0 && state.LastSeq > from {
		m.streamLast = state.LastSeq
		m.stream, m.feedLen = stream, feedLen
		if m.tr, err = startStream(ctx, stream, from+1, feedLen); err != nil {
			return nil, err
		}
		defer func() { m.tr.stop() }()
		m.streamDone = false
	}
	if err := m.run(ctx); err != nil {
		return nil, err
	}

	r.Source = Side{Msgs: m.ds.Count, FirstSeq: b.first, LastSeq: b.last, SHA256: m.ds.Sum()}
	if !b.known && m.ds.Count > 0 {
		r.Source.FirstSeq = m.ds.First
	}
	r.Target = Side{Msgs: m.dt.Count, SHA256: m.dt.Sum()}
	if state != nil {
		r.Target.FirstSeq, r.Target.LastSeq = state.FirstSeq, state.LastSeq
	}
	if pf.v != nil {
		r.Earlier, r.EarlierSeq = pf.v.Source.Count, pf.v.Seq
		if err := pf.checkCount(ctx, stream, state, r, m.dt.Count-pf.v.Target.Count); err != nil {
			return nil, err
		}
	}
	r.Read = m.ds.Count - r.Earlier
	r.ageLimited = c.Limits.MaxAge > 0
	finish(r, b, state == nil)
	if state != nil {
		if err := pf.save(ctx, r, m.ds, m.dt, state.FirstSeq); err != nil {
			return nil, err
		}
	}
	return r, nil
}
