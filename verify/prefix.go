package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/digest"
	"github.com/stanmigrate/stanmigrate/internal/state"
)

// prefix is a channel's verified prefix as loaded from the store, with the
// revision a save must compare against.
type prefix struct {
	o   *Options
	v   *state.Verified // nil: none recorded, or not to be used
	rev uint64
	// why says why a recorded prefix is not used; "" when it is, or when
	// there was none.
	why string
}

// loadPrefix reads a stream's verified prefix. With full set it is kept
// only for its revision: the channel is read from the start.
func loadPrefix(ctx context.Context, o *Options, stream string) (prefix, error) {
	if o.State == nil {
		return prefix{o: o}, nil
	}
	v, rev, err := state.LoadVerified(ctx, o.State, stream)
	if err != nil {
		return prefix{}, err
	}
	if o.Full {
		return prefix{o: o, rev: rev}, nil
	}
	return prefix{o: o, v: v, rev: rev}, nil
}

// judge drops the prefix when a cheap look at both sides shows it no
// longer describes them: then the channel is read in full, which names
// what changed (a purge shows as messages missing from the stream) or
// finds both sides moved alike (limits expired the oldest messages).
func (p *prefix) judge(b bounds, st *jetstream.StreamState) {
	v := p.v
	if v == nil {
		return
	}
	switch {
	case st == nil:
		p.why = "the stream no longer exists"
	case st.FirstSeq != v.StreamFirst:
		p.why = fmt.Sprintf("the stream's first sequence is %d, it was %d", st.FirstSeq, v.StreamFirst)
	case st.LastSeq < v.Seq:
		p.why = fmt.Sprintf("the stream's last sequence is %d", st.LastSeq)
	case b.gone:
		p.why = "the channel no longer exists on STAN"
	case b.first != v.Source.First && v.Source.Count > 0:
		p.why = fmt.Sprintf("STAN's first sequence is %d, it was %d", b.first, v.Source.First)
	case b.last < v.Seq:
		p.why = fmt.Sprintf("STAN's last sequence is %d", b.last)
	default:
		return
	}
	p.why = fmt.Sprintf("the prefix verified through sequence %d no longer holds (%s): read in full", v.Seq, p.why)
	p.v = nil
}

// digests resumes both sides' hashes where the prefix left them; one
// shared digest while they agree, as the merger expects.
func (p *prefix) digests() (ds, dt *digest.Channel, err error) {
	if p.v == nil {
		d := digest.New()
		return d, d, nil
	}
	s, t := p.v.Source, p.v.Target
	if ds, err = digest.Restore(s.State, s.Count, s.First, s.Last); err != nil {
		return nil, nil, err
	}
	if slices.Equal(s.State, t.State) && s.Count == t.Count && s.First == t.First && s.Last == t.Last {
		return ds, ds, nil
	}
	if dt, err = digest.Restore(t.State, t.Count, t.First, t.Last); err != nil {
		return nil, nil, err
	}
	return ds, dt, nil
}

// from is the last sequence already verified (0: none).
func (p *prefix) from() uint64 {
	if p.v == nil {
		return 0
	}
	return p.v.Seq
}

// checkCount compares the stream's messages at or below the prefix's last
// sequence, now, with what they were: the stream's count at start less
// what was read past the prefix. When fewer, the stream's deleted list
// says whether messages inside the prefix were deleted (missing from the
// stream, named) or the difference lies past it (deleted while this run
// read, which the read itself accounts for).
func (p *prefix) checkCount(ctx context.Context, s jetstream.Stream, st *jetstream.StreamState, r *ChannelReport, readTarget uint64) error {
	v := p.v
	if v == nil || st == nil {
		return nil
	}
	now := st.Msgs - min(st.Msgs, readTarget)
	switch {
	case now == v.StreamMsgs:
		return nil
	case now > v.StreamMsgs:
		r.notes = append(r.notes, fmt.Sprintf("the stream holds %d message(s) through sequence %d, %d when verified", now, v.Seq, v.StreamMsgs))
		return nil
	}
	info, err := s.Info(ctx, jetstream.WithDeletedDetails(true))
	if err != nil {
		return fmt.Errorf("stream info with deleted sequences: %w", err)
	}
	var inside []uint64
	for _, seq := range info.State.Deleted {
		if seq >= v.StreamFirst && seq <= v.Seq {
			inside = append(inside, seq)
		}
	}
	if uint64(len(inside)) <= v.StreamDeleted {
		return nil
	}
	lost := uint64(len(inside)) - v.StreamDeleted
	slices.Sort(inside)
	r.notes = append(r.notes, fmt.Sprintf("%d message(s) deleted from the stream inside the prefix verified through sequence %d", lost, v.Seq))
	r.MissingCount += lost
	r.Missing = append(inside[:min(len(inside), listed)], r.Missing...)
	if len(r.Missing) > listed {
		r.Missing = r.Missing[:listed]
	}
	r.Target.Msgs -= min(r.Target.Msgs, lost)
	r.Target.SHA256 = "" // the hash still counts what was deleted
	return nil
}

// save records the channel's new verified prefix when the channel
// matched. A conflict means another verify recorded one meanwhile: the
// further one is kept.
func (p *prefix) save(ctx context.Context, r *ChannelReport, ds, dt *digest.Channel, streamFirst uint64) error {
	o := p.o
	// A run that accepted expired messages left them out of both hashes:
	// the hash's count no longer is the stream's, which the next run's
	// count check relies on.
	if o == nil || o.State == nil || !r.OK || ds.Count == 0 || r.Source.LastSeq == p.from() || r.Expired > 0 {
		return nil
	}
	sm, err := ds.Mark()
	if err != nil {
		return err
	}
	tm, err := dt.Mark()
	if err != nil {
		return err
	}
	seq := r.Source.LastSeq
	v := &state.Verified{Channel: r.Channel, Stream: r.Stream, Seq: seq, Source: sm, Target: tm,
		StreamFirst: streamFirst, StreamMsgs: tm.Count, StreamDeleted: seq - streamFirst + 1 - tm.Count}
	for range 3 {
		rev, err := state.SaveVerified(ctx, o.State, v, p.rev)
		if err == nil {
			p.rev = rev
			return nil
		}
		if !errors.Is(err, state.ErrConflict) {
			return err
		}
		cur, rev, lerr := state.LoadVerified(ctx, o.State, r.Stream)
		if lerr != nil {
			return lerr
		}
		if cur != nil && cur.Seq >= seq {
			return nil
		}
		p.rev = rev
	}
	return fmt.Errorf("record the verified prefix of stream %q: kept changing under another verify", r.Stream)
}
