package verify

import (
	"context"
	"errors"
	"time"
)

// Timings of verify --follow; variables so tests can shorten them.
var (
	// followInterval is the pause between two tailing rounds.
	followInterval = time.Second
	// maxFollowBackoff bounds the wait after a failed round (a STAN
	// failover, a JetStream leader change): the next round starts from
	// the verified prefix, so waiting longer only delays it.
	maxFollowBackoff = 5 * time.Second
)

// follow runs tailing rounds, each moving every channel's verified prefix
// as far as both sides hold the same messages, until Finish is closed or
// nothing new arrived for IdleFinish. A round that fails on a connection
// is tried again; one that finds a message missing, extra or changed ends
// the run with that report.
func (v *verifier) follow(ctx context.Context) (*Report, error) {
	lastNew := time.Now()
	failures := 0
	for !v.finishing() {
		rep, err := v.round(ctx, true)
		switch {
		case ctx.Err() != nil:
			return rep, err
		case errors.Is(err, ErrDifferences) && settled(rep):
			return rep, err
		case err != nil:
			// A failover, or a side caught mid-change: the prefix did
			// not move, the next round starts from it.
			failures++
		default:
			failures = 0
			if readSome(rep) {
				lastNew = time.Now()
			}
		}
		if v.finishing() || (v.o.IdleFinish > 0 && time.Since(lastNew) >= v.o.IdleFinish) {
			return nil, nil
		}
		wait := followInterval
		if failures > 0 {
			wait = min(time.Duration(failures)*followInterval, maxFollowBackoff)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-v.o.Finish:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	return nil, nil
}

func (v *verifier) finishing() bool {
	select {
	case <-v.o.Finish:
		return true
	default:
		return false
	}
}

// settled reports whether a round's differences are about messages
// (missing, extra, changed), which a later round cannot undo, rather than
// a side that stopped short for a moment.
func settled(rep *Report) bool {
	for _, c := range rep.Channels {
		if c.MissingCount+c.ExtraCount+c.ChangedCount > 0 {
			return true
		}
	}
	return false
}

func readSome(rep *Report) bool {
	for _, c := range rep.Channels {
		if c.Read > 0 {
			return true
		}
	}
	return false
}
