// Package seek answers "from which stream sequence on are the messages at
// or after time T" for a migrated stream, by the original STAN timestamps
// the messages carry (jsformat.HdrTimestamp). JetStream's own
// DeliverByStartTime sees the migration's timestamps, so applications that
// subscribed by time on STAN (StartAtTime, StartAtTimeDelta) start by the
// sequence this returns instead.
package seek

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/jsformat"
)

// ErrNoStream: the target has no such stream.
var ErrNoStream = errors.New("no such stream on the target")

// ErrNoTimestamp: a message the search reached carries no original
// timestamp, so the stream was not (entirely) written by stanmigrate.
var ErrNoTimestamp = errors.New("message without the original STAN timestamp")

// Result is the answer for one stream.
type Result struct {
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
	// Found: a stored message has an original timestamp at or after
	// Time; Seq is the first such, Timestamp its original time.
	Found     bool      `json:"found"`
	Seq       uint64    `json:"seq"`
	Timestamp time.Time `json:"timestamp,omitzero"`
	// Without such a message Seq is the stream's next sequence (last
	// + 1): a consumer starting there gets only messages stored later.
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	Msgs     uint64 `json:"msgs"`
	// Lookups is how many messages were read: about log2 of the
	// stream's sequence range.
	Lookups int `json:"lookups"`
}

// AtOrAfter finds the first message of the stream whose original STAN
// timestamp is at or after t, by binary search over the sequence range
// with one get per step. Deleted sequences and gap placeholders are
// stepped over (a get asks for the next stored message at or after a
// sequence). Like STAN's own start-at-time, the search relies on the
// timestamps rising with the sequence, as STAN assigns them.
func AtOrAfter(ctx context.Context, js jetstream.JetStream, stream string, t time.Time) (*Result, error) {
	s, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("stream %q: %w: check the channel or stream name (and --plan when the plan renamed it), and that migrate has run", stream, ErrNoStream)
	}
	if err != nil {
		return nil, fmt.Errorf("stream %q: %w", stream, err)
	}
	st := s.CachedInfo().State
	r := &Result{Stream: stream, Time: t, FirstSeq: st.FirstSeq, LastSeq: st.LastSeq, Msgs: st.Msgs, Seq: st.LastSeq + 1}
	if st.Msgs == 0 {
		return r, nil
	}
	lo, hi := st.FirstSeq, st.LastSeq
	for lo <= hi {
		mid := lo + (hi-lo)/2
		seq, ts, ok, err := r.next(ctx, s, mid, hi)
		if err != nil {
			return nil, err
		}
		switch {
		case !ok:
			// Nothing stored in [mid, hi].
			hi = mid - 1
		case !ts.Before(t):
			r.Found, r.Seq, r.Timestamp = true, seq, ts
			hi = mid - 1
		default:
			lo = seq + 1
		}
	}
	return r, nil
}

// next reads the first stored message at or after seq and at most hi,
// skipping gap placeholders; ok is false when there is none.
func (r *Result) next(ctx context.Context, s jetstream.Stream, seq, hi uint64) (uint64, time.Time, bool, error) {
	for seq <= hi {
		r.Lookups++
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, time.Time{}, false, nil
		}
		if err != nil {
			return 0, time.Time{}, false, fmt.Errorf("stream %q: get the message at or after sequence %d: %w", r.Stream, seq, err)
		}
		if m.Sequence > hi {
			return 0, time.Time{}, false, nil
		}
		if jsformat.IsGap(m.Header) {
			seq = m.Sequence + 1
			continue
		}
		ts, err := jsformat.ReadTimestamp(m.Header)
		if err != nil {
			return 0, time.Time{}, false, fmt.Errorf("stream %q sequence %d: %w (%v): search only streams stanmigrate wrote, whose messages keep %s",
				r.Stream, m.Sequence, ErrNoTimestamp, err, jsformat.HdrTimestamp)
		}
		return m.Sequence, ts, true, nil
	}
	return 0, time.Time{}, false, nil
}
