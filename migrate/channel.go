package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/digest"
	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/plan"
)

// js is a JetStream client for the target's API (its domain or API
// prefix included).
func (r *runner) js(opts ...jetstream.JetStreamOpt) (jetstream.JetStream, error) {
	return conn.NewJetStream(r.nc, r.o.Target, append([]jetstream.JetStreamOpt{jetstream.WithDefaultTimeout(apiTimeout)}, opts...)...)
}

// goneAfter is how long a channel must stay missing from the source
// before it counts as gone: a clustered or FT STAN changing leaders can
// answer, for a moment, from a server that does not list it yet.
const goneAfter = 5 * time.Second

// current is the channel as the source holds it now; a channel gone or
// unreadable is a permanent error naming it.
func (r *runner) current(ctx context.Context, c *plan.Channel) (source.Channel, error) {
	sc, err := r.src.Channel(ctx, c.Name)
	for missing := time.Now(); errors.Is(err, source.ErrNoChannel) && time.Since(missing) < goneAfter; {
		select {
		case <-ctx.Done():
			return sc, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		sc, err = r.src.Channel(ctx, c.Name)
	}
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
func (r *runner) channel(ctx context.Context, c *plan.Channel) (*ChannelResult, bool, error) {
	j, err := r.openChannel(ctx, c)
	if err == nil {
		err = j.copy(ctx)
	}
	if err == nil {
		err = j.finish(ctx)
	}
	return j.res, j.changed, err
}

// channelRun is one channel's migration: its checkpoint, its stream, how
// far to copy, and what the attempts so far did.
type channelRun struct {
	r      *runner
	c      *plan.Channel
	res    *ChannelResult
	cp     *state.Checkpoint
	d      *digest.Channel
	js     jetstream.JetStream
	stream jetstream.Stream
	// target is the last sequence to copy (^0 while following).
	target uint64
	// retargeted: target is the channel's last sequence once a follow
	// was told to finish.
	retargeted bool
	fin        *finisher
	ev         Event
	// changed: something was written to the target.
	changed bool
	// failures counts consecutive failed attempts; an attempt that copied
	// something (a failover mid-run) starts the count again.
	failures int
	// landed are publishes an earlier attempt stopped waiting for; those
	// the stream holds now were copied all the same.
	landed []unconfirmed
	// refused: the stream refused fast-ingest batches (made without
	// allow_batched, or the server took a batch as plain publishes).
	refused bool
}

// openChannel loads the channel's checkpoint, makes or finds its stream
// and reads how far the channel goes now.
func (r *runner) openChannel(ctx context.Context, c *plan.Channel) (*channelRun, error) {
	j := &channelRun{r: r, c: c, fin: newFinisher(r.o), ev: Event{Channel: c.Name, Stream: c.Stream},
		res: &ChannelResult{Channel: c.Name, Stream: c.Stream, FirstSeq: c.FirstSeq, Status: "running"}}
	cp, err := r.cps.Load(ctx, c.Stream)
	if err != nil {
		return j, err
	}
	if cp == nil || cp.Channel != c.Name {
		cp = &state.Checkpoint{Channel: c.Name, Stream: c.Stream, FirstSeq: c.FirstSeq}
	}
	j.cp = cp
	if j.js, err = r.js(); err != nil {
		return j, err
	}
	if j.stream, j.changed, err = r.ensureStream(ctx, j.js, c); err != nil {
		return j, err
	}
	target, err := r.lastSeqNow(ctx, c)
	if err != nil {
		return j, err
	}
	j.target = max(target, c.FirstSeq-1)
	cp.TargetSeq = j.target
	r.obs.Source(c.Name, j.target)
	return j, nil
}

// copy replays the channel until the stream holds the target: attempt
// after attempt, each from where the stream actually stands.
func (j *channelRun) copy(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		info, ok, err := j.standing(ctx)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		last := max(info.State.LastSeq, j.c.FirstSeq-1)
		j.countLanded(last)
		if err := j.followTarget(ctx, last); err != nil {
			return err
		}
		if last >= j.target {
			if j.r.o.Follow {
				j.r.o.Reporter.Event(Event{Channel: j.c.Name, Stream: j.c.Stream, Kind: EventCaughtUp,
					Message: fmt.Sprintf("through sequence %d", j.target)})
			}
			return nil
		}
		if attempt == 0 {
			j.announce(last)
		}
		if err := j.attempt(ctx, info, last, attempt == 0); err != nil {
			return err
		}
	}
}

// standing reads the stream and reconciles the checkpoint with it; ok is
// false after a transient fault was waited out (try again).
func (j *channelRun) standing(ctx context.Context) (*jetstream.StreamInfo, bool, error) {
	r, c := j.r, j.c
	info, err := j.stream.Info(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		return nil, false, j.wait(ctx, fmt.Errorf("stream %q info: %w", c.Stream, err))
	}
	if j.d, err = r.reconcile(ctx, j.stream, c, j.cp, info, j.d); err != nil {
		if isPermanent(err) || ctx.Err() != nil {
			return nil, false, firstErr(err, r.saveCheckpoint(j.cp, j.d))
		}
		return nil, false, j.wait(ctx, err)
	}
	return info, true, nil
}

// wait backs off after a transient fault.
func (j *channelRun) wait(ctx context.Context, cause error) error {
	if err := j.r.backoff(ctx, j.failures, j.ev, cause); err != nil {
		return err
	}
	j.failures++
	return nil
}

// countLanded counts the publishes an earlier attempt gave up on that
// the stream holds after all.
func (j *channelRun) countLanded(last uint64) {
	r, c := j.r, j.c
	r.obs.Copied(c.Name, 0, 0, last, time.Time{})
	var msgs, bytes uint64
	for _, u := range j.landed {
		if u.seq <= last {
			msgs++
			bytes += uint64(u.size)
		}
	}
	j.landed = nil
	if msgs > 0 {
		j.res.Copied += msgs
		j.res.Bytes += bytes
		r.o.Reporter.Progress(msgs, bytes)
		r.obs.Copied(c.Name, msgs, bytes, last, time.Time{})
	}
}

// followTarget: a follow first copies the history up to the channel's
// last sequence when it started, as a bounded copy (which reads fastest,
// see readOptions), and then has no end; once told to finish, the end is
// the channel's last sequence now.
func (j *channelRun) followTarget(ctx context.Context, last uint64) error {
	switch {
	case !j.r.o.Follow:
	case !j.fin.finished():
		if j.target != ^uint64(0) && last >= j.target {
			j.target = ^uint64(0)
			j.r.obs.Phase(j.c.Name, PhaseFollowing)
		}
	case !j.retargeted:
		return j.retarget(ctx)
	}
	return nil
}

// retarget copies up to the channel's last sequence as it is now.
func (j *channelRun) retarget(ctx context.Context) error {
	target, err := j.r.lastSeqNow(ctx, j.c)
	if err != nil {
		return err
	}
	j.target = target
	j.retargeted = true
	j.cp.TargetSeq = target
	j.r.obs.Source(j.c.Name, target)
	return nil
}

// announce says the copy starts or resumes, and from where.
func (j *channelRun) announce(last uint64) {
	ev := j.ev
	ev.Kind = EventStarted
	if last >= j.c.FirstSeq {
		ev.Kind = EventResumed
	}
	ev.Message = fmt.Sprintf("sequences %d..%d", last+1, j.target)
	switch {
	case j.target == ^uint64(0):
		ev.Message = fmt.Sprintf("from sequence %d, following", last+1)
	case j.r.o.Follow && !j.retargeted:
		ev.Message = fmt.Sprintf("sequences %d..%d, then following", last+1, j.target)
	}
	j.r.o.Reporter.Event(ev)
	j.r.obs.Phase(j.c.Name, copyPhase(j.target))
}

// attempt replays from last+1 through one subscription and decides what
// its outcome means: done for now, try again, or stop.
func (j *channelRun) attempt(ctx context.Context, info *jetstream.StreamInfo, last uint64, first bool) error {
	r, c := j.r, j.c
	batched := r.batchable() && !j.refused && info.Config.AllowBatchPublish
	if first && r.batchable() && !batched {
		r.o.Reporter.Event(Event{Channel: c.Name, Stream: c.Stream, Kind: EventPublishing,
			Message: fmt.Sprintf("each message asynchronously: stream %q was not made with allow_batched, so it takes no fast-ingest batches", c.Stream)})
	}
	r.obs.PublishPath(c.Name, publishPath(batched))
	a := r.newAttempt(c, j.cp, j.d, last+1, j.target, j.fin, info, batched)
	err := a.run(ctx)
	j.res.Copied += a.copied
	j.res.Bytes += a.bytes
	j.res.AlreadyStored += a.already
	j.landed = a.unconfirmed
	if a.copied > 0 {
		j.changed = true
		j.failures = 0
	}
	switch {
	case a.finishedFollow:
		if err := j.retarget(ctx); err != nil {
			return err
		}
		r.obs.Phase(c.Name, PhaseCopying)
		return nil
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return firstErr(ctx.Err(), r.saveCheckpoint(j.cp, j.d))
	case batched && noBatches(err):
		j.refused = true
		r.o.Reporter.Event(Event{Channel: c.Name, Stream: c.Stream, Kind: EventPublishing,
			Message: fmt.Sprintf("each message asynchronously from now on: %v", err)})
		return nil
	case isPermanent(err):
		return firstErr(err, r.saveCheckpoint(j.cp, j.d))
	}
	if err := j.wait(ctx, err); err != nil {
		return firstErr(err, r.saveCheckpoint(j.cp, j.d))
	}
	return nil
}

// finish settles the stream's final settings and the consumers, and
// marks the channel done.
func (j *channelRun) finish(ctx context.Context) error {
	r, c, res, cp := j.r, j.c, j.res, j.cp
	r.obs.PublishPath(c.Name, "")
	r.obs.Phase(c.Name, PhaseConsumers)
	res.FirstSeq = max(c.FirstSeq, cp.FirstSeq)
	res.LastSeq = max(j.target, res.FirstSeq-1)
	if j.d == nil {
		j.d = digest.New()
	}
	res.Sum = j.d.Sum()
	cp.Sum = res.Sum
	cp.LastSeq = max(cp.LastSeq, res.LastSeq)
	cp.Copied += res.Copied
	cp.Bytes += res.Bytes
	var fch bool
	var notes []string
	err := r.retry(ctx, j.ev, func() (err error) {
		fch, notes, err = r.finalizeStream(ctx, j.js, j.stream, c)
		return err
	})
	if err != nil {
		return firstErr(err, r.saveCheckpoint(cp, j.d))
	}
	j.changed = j.changed || fch
	res.Notes = append(res.Notes, notes...)
	cch, err := r.consumers(ctx, j.js, c, cp, res)
	j.changed = j.changed || cch
	if err != nil {
		return firstErr(err, r.saveCheckpoint(cp, j.d))
	}
	cp.Done = true
	if err := r.saveCheckpoint(cp, j.d); err != nil {
		return err
	}
	r.obs.Phase(c.Name, PhaseDone)
	res.Status = "complete"
	if !j.changed {
		res.Status = "already complete"
	}
	ev := j.ev
	ev.Kind, ev.Message = EventComplete, fmt.Sprintf("%d message(s) copied, stream at %d..%d", res.Copied, c.FirstSeq, res.LastSeq)
	r.o.Reporter.Event(ev)
	return nil
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
	err := r.cps.Save(ctx, cp)
	if err == nil {
		r.obs.Checkpointed(cp.Channel, time.Now())
	}
	return err
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

// copyPhase is the phase of a copy up to target.
func copyPhase(target uint64) Phase {
	if target == ^uint64(0) {
		return PhaseFollowing
	}
	return PhaseCopying
}

func publishPath(batched bool) string {
	if batched {
		return PathBatch
	}
	return PathAsync
}
