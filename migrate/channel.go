package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/digest"
	"github.com/stanmigrate/stanmigrate/internal/fastingest"
	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/plan"
)

func (r *runner) js(opts ...jetstream.JetStreamOpt) (jetstream.JetStream, error) {
	return jetstream.New(r.nc, opts...)
}

// current is the channel as the source holds it now; a channel gone or
// unreadable is a permanent error naming it.
func (r *runner) current(ctx context.Context, c *plan.Channel) (source.Channel, error) {
	sc, err := r.src.Channel(ctx, c.Name)
	if errors.Is(err, source.ErrNoChannel) {
		return sc, permanent{fmt.Errorf("channel %q is in the plan but not on %s: re-run `stanmigrate plan`, or set skip: true for it: %w", c.Name, r.srcName(ctx), ErrChannelGone)}
	}
	if err != nil {
		return sc, err
	}
	if sc.Err != nil {
		return sc, permanent{fmt.Errorf("%w: %w", sc.Err, ErrUnreadable)}
	}
	return sc, nil
}

// lastSeqNow is the channel's last sequence at this moment.
func (r *runner) lastSeqNow(ctx context.Context, c *plan.Channel) (uint64, error) {
	sc, err := r.current(ctx, c)
	return sc.LastSeq, err
}

// channel migrates one channel and its durables. changed reports whether
// anything was written.
func (r *runner) channel(ctx context.Context, c *plan.Channel) (res *ChannelResult, changed bool, err error) {
	res = &ChannelResult{Channel: c.Name, Stream: c.Stream, FirstSeq: c.FirstSeq, Status: "running"}
	cp, err := r.cps.Load(ctx, c.Stream)
	if err != nil {
		return res, false, err
	}
	if cp == nil || cp.Channel != c.Name {
		cp = &state.Checkpoint{Channel: c.Name, Stream: c.Stream, FirstSeq: c.FirstSeq}
	}
	js, err := r.js()
	if err != nil {
		return res, false, err
	}
	stream, created, err := r.ensureStream(ctx, js, c)
	if err != nil {
		return res, false, err
	}
	changed = created
	target, err := r.lastSeqNow(ctx, c)
	if err != nil {
		return res, changed, err
	}
	if target < c.FirstSeq-1 {
		target = c.FirstSeq - 1
	}
	cp.TargetSeq = target
	ev := Event{Channel: c.Name, Stream: c.Stream}

	var d *digest.Channel
	fin := newFinisher(r.o)
	// failures counts consecutive failed attempts; an attempt that copied
	// something (a failover mid-run) starts the count again.
	failures := 0
	// landed are publishes an earlier attempt stopped waiting for; those
	// the stream holds now were copied all the same.
	var landed []unconfirmed
	// refused: the stream refused fast-ingest batches (made without
	// allow_batched, or the server took a batch as plain publishes).
	refused := false
	for attempt := 0; ; attempt++ {
		info, err := stream.Info(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return res, changed, ctx.Err()
			}
			if err := r.backoff(ctx, failures, ev, fmt.Errorf("stream %q info: %w", c.Stream, err)); err != nil {
				return res, changed, err
			}
			failures++
			continue
		}
		if d, err = r.reconcile(ctx, stream, c, cp, info, d); err != nil {
			if isPermanent(err) || ctx.Err() != nil {
				return res, changed, firstErr(err, r.saveCheckpoint(cp, d))
			}
			if err := r.backoff(ctx, failures, ev, err); err != nil {
				return res, changed, err
			}
			failures++
			continue
		}
		last := max(info.State.LastSeq, c.FirstSeq-1)
		var landedMsgs, landedBytes uint64
		for _, u := range landed {
			if u.seq <= last {
				landedMsgs++
				landedBytes += uint64(u.size)
			}
		}
		landed = nil
		if landedMsgs > 0 {
			res.Copied += landedMsgs
			res.Bytes += landedBytes
			r.o.Reporter.Progress(landedMsgs, landedBytes)
		}
		if r.o.Follow && !fin.finished() {
			target = ^uint64(0)
		} else if r.o.Follow && target == ^uint64(0) {
			if target, err = r.lastSeqNow(ctx, c); err != nil {
				return res, changed, err
			}
			cp.TargetSeq = target
		}
		if last >= target {
			break
		}
		if attempt == 0 {
			kind := "started"
			if last >= c.FirstSeq {
				kind = "resumed"
			}
			ev.Kind, ev.Message = kind, fmt.Sprintf("sequences %d..%d", last+1, target)
			if target == ^uint64(0) {
				ev.Message = fmt.Sprintf("from sequence %d, following", last+1)
			}
			r.o.Reporter.Event(ev)
		}
		batched := r.batchable() && !refused && fastingest.Usable(r.apiLevel, &info.Config)
		if attempt == 0 && r.batchable() && !batched {
			r.o.Reporter.Event(Event{Channel: c.Name, Stream: c.Stream, Kind: "publishing",
				Message: fmt.Sprintf("each message asynchronously: stream %q was not made with allow_batched, so it takes no fast-ingest batches", c.Stream)})
		}
		a := r.newAttempt(c, cp, d, last+1, target, fin, info, batched)
		err = a.run(ctx)
		res.Copied += a.copied
		res.Bytes += a.bytes
		res.AlreadyStored += a.already
		landed = a.unconfirmed
		if a.copied > 0 {
			changed = true
			failures = 0
		}
		if a.finishedFollow {
			target, err = r.lastSeqNow(ctx, c)
			if err != nil {
				return res, changed, err
			}
			cp.TargetSeq = target
			continue
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return res, changed, firstErr(ctx.Err(), r.saveCheckpoint(cp, d))
		}
		if batched && noBatches(err) {
			refused = true
			r.o.Reporter.Event(Event{Channel: c.Name, Stream: c.Stream, Kind: "publishing",
				Message: fmt.Sprintf("each message asynchronously from now on: %v", err)})
			continue
		}
		if isPermanent(err) {
			return res, changed, firstErr(err, r.saveCheckpoint(cp, d))
		}
		if err := r.backoff(ctx, failures, ev, err); err != nil {
			return res, changed, firstErr(err, r.saveCheckpoint(cp, d))
		}
		failures++
	}
	if r.o.Follow {
		// The cutover window's first stage ends here for this channel.
		r.o.Reporter.Event(Event{Channel: c.Name, Stream: c.Stream, Kind: EventCaughtUp,
			Message: fmt.Sprintf("through sequence %d", target)})
	}
	res.FirstSeq = max(c.FirstSeq, cp.FirstSeq)
	res.LastSeq = max(target, res.FirstSeq-1)
	if d == nil {
		d = digest.New()
	}
	res.Sum = d.Sum()
	cp.Sum = res.Sum
	cp.LastSeq = max(cp.LastSeq, res.LastSeq)
	cp.Copied += res.Copied
	cp.Bytes += res.Bytes
	var fch bool
	var notes []string
	err = r.retry(ctx, ev, func() error {
		fch, notes, err = r.finalizeStream(ctx, js, stream, c)
		return err
	})
	if err != nil {
		return res, changed, firstErr(err, r.saveCheckpoint(cp, d))
	}
	changed = changed || fch
	res.Notes = append(res.Notes, notes...)
	cch, err := r.consumers(ctx, js, c, cp, res)
	changed = changed || cch
	if err != nil {
		return res, changed, firstErr(err, r.saveCheckpoint(cp, d))
	}
	cp.Done = true
	if err := r.saveCheckpoint(cp, d); err != nil {
		return res, changed, err
	}
	res.Status = "complete"
	if !changed {
		res.Status = "already complete"
	}
	ev.Kind, ev.Message = "complete", fmt.Sprintf("%d message(s) copied, stream at %d..%d", res.Copied, c.FirstSeq, res.LastSeq)
	r.o.Reporter.Event(ev)
	return res, changed, nil
}

// saveCheckpoint records cp with d's running hash. It is also called
// when the run is stopping, so it does not stop with the run's context.
func (r *runner) saveCheckpoint(cp *state.Checkpoint, d *digest.Channel) error {
	if d != nil {
		if err := cp.SetDigest(d); err != nil {
			return fmt.Errorf("checkpoint of stream %q: %w", cp.Stream, err)
		}
	}
	return r.save(cp)
}

// save writes cp to the store, even after the run was interrupted.
func (r *runner) save(cp *state.Checkpoint) error {
	ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
	defer cancel()
	return r.cps.Save(ctx, cp)
}

// saveTimeout bounds a checkpoint write (a key-value put rides out a
// leader election well within it).
const saveTimeout = 30 * time.Second

// firstErr is err, or else the error of the save that followed it.
func firstErr(err, saveErr error) error {
	if err != nil {
		return err
	}
	return saveErr
}
