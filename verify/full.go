package verify

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stanmigrate/stanmigrate/internal/digest"
	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/plan"
)

// fullChannel streams both sides in sequence order and merges them, in
// memory bounded by STAN's window, the stream's pull batch and two small
// queues, whatever the channel's size.
func fullChannel(ctx context.Context, src source.Source, js jetstream.JetStream, c *plan.Channel, b bounds, progress func(string, uint64)) (*ChannelReport, error) {
	r := &ChannelReport{Channel: c.Name, Stream: c.Stream}
	stream, state, err := openStream(ctx, js, c.Stream)
	if err != nil {
		return nil, err
	}
	d := digest.New()
	m := &merger{rep: r, channel: c.Name, js: js, ds: d, dt: d,
		progress: progress, lastReported: time.Now(), stanLast: b.last, stanDone: true, streamDone: true,
		exp: expiry{maxAge: c.Limits.MaxAge.D(), now: time.Now}}
	m.timer = time.NewTimer(idleTimeout)
	m.timer.Stop()
	cost := msgCost(b, c)
	feedLen := feedLimit(cost)
	if !b.empty() {
		m.sr, err = startSource(ctx, src, c.Name, b.first, b.last, window(cost), feedLen)
		if err != nil {
			return nil, err
		}
		defer m.sr.stop()
		m.stanDone = false
	}
	if state != nil && state.Msgs > 0 {
		m.streamLast = state.LastSeq
		m.stream, m.feedLen = stream, feedLen
		if m.tr, err = startStream(ctx, stream, 1, feedLen); err != nil {
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
		r.Source.FirstSeq = m.stanFirst
	}
	r.Target = Side{Msgs: m.dt.Count, SHA256: m.dt.Sum()}
	if state != nil {
		r.Target.FirstSeq, r.Target.LastSeq = state.FirstSeq, state.LastSeq
	}
	r.ageLimited = c.Limits.MaxAge > 0
	finish(r, b, state == nil)
	return r, nil
}
