package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/plan"
)

// sampleChannel compares counts and first/last in full, and n random
// sequences message by message.
func sampleChannel(ctx context.Context, src source.Source, js jetstream.JetStream, c *plan.Channel, b bounds, n int, progress func(string, uint64)) (*ChannelReport, error) {
	r := &ChannelReport{Channel: c.Name, Stream: c.Stream}
	stream, state, err := openStream(ctx, js, c.Stream)
	if err != nil {
		return nil, err
	}
	r.Source = Side{Msgs: b.msgs, FirstSeq: b.first, LastSeq: b.last}
	if b.empty() {
		r.Source.Msgs = 0
	}
	if state != nil {
		r.Target = Side{Msgs: state.Msgs, FirstSeq: state.FirstSeq, LastSeq: state.LastSeq}
	}

	// Sample over both sides' ranges so that either side's surplus can
	// show up.
	var lo, hi uint64
	has := false
	widen := func(first, last uint64) {
		if last == 0 || last < first {
			return
		}
		first = max(first, 1)
		if !has {
			lo, hi, has = first, last, true
			return
		}
		lo, hi = min(lo, first), max(hi, last)
	}
	if !b.empty() {
		widen(b.first, b.last)
	}
	if state != nil && state.Msgs > 0 {
		widen(state.FirstSeq, state.LastSeq)
	}
	var seqs []uint64
	if has {
		seqs = pick(lo, hi, n)
	}
	var since uint64
	last := time.Now()
	for _, seq := range seqs {
		var sm *source.Msg
		if !b.empty() && seq >= b.first && seq <= b.last {
			if sm, err = src.Get(ctx, c.Name, seq); err != nil {
				return nil, fmt.Errorf("read sequence %d: %w", seq, err)
			}
		}
		var tm *jetstream.RawStreamMsg
		if state != nil && state.Msgs > 0 && seq >= state.FirstSeq && seq <= state.LastSeq {
			tm, err = stream.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				tm, err = nil, nil
			}
			if err != nil {
				return nil, fmt.Errorf("get stream sequence %d: %w", seq, err)
			}
		}
		switch {
		case sm != nil && tm == nil:
			r.MissingCount++
			if len(r.Missing) < listed {
				r.Missing = append(r.Missing, seq)
			}
		case sm == nil && tm != nil:
			r.ExtraCount++
			if len(r.Extra) < listed {
				r.Extra = append(r.Extra, seq)
			}
		case sm != nil && tm != nil:
			if sm.Subject != tm.Subject || !bytes.Equal(sm.Data, tm.Data) {
				r.ChangedCount++
				if len(r.Changed) < listed {
					r.Changed = append(r.Changed, seq)
				}
			}
		}
		r.Sampled++
		since++
		if progress != nil && time.Since(last) >= progressInterval {
			progress(c.Name, since)
			since, last = 0, time.Now()
		}
	}
	if progress != nil && since > 0 {
		progress(c.Name, since)
	}
	finish(r, b, state == nil)
	return r, nil
}

// pick returns min(n, hi-lo+1) distinct sequences in [lo, hi], ascending:
// all of them when n covers the range, otherwise a uniform random set
// (Floyd's algorithm, memory proportional to n).
func pick(lo, hi uint64, n int) []uint64 {
	size := hi - lo + 1
	if uint64(n) >= size {
		out := make([]uint64, 0, size)
		for s := lo; s <= hi; s++ {
			out = append(out, s)
		}
		return out
	}
	chosen := make(map[uint64]struct{}, n)
	for j := size - uint64(n); j < size; j++ {
		v := rand.Uint64N(j + 1)
		if _, dup := chosen[v]; dup {
			v = j
		}
		chosen[v] = struct{}{}
	}
	out := make([]uint64, 0, n)
	for v := range chosen {
		out = append(out, lo+v)
	}
	slices.Sort(out)
	return out
}
