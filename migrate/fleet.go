package migrate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/plan"
)

// A channel is worked on only under its lease in the state store, so
// processes that share the store (a fleet running the same command on
// several machines) share the plan's channels; a process alone simply
// holds every lease in turn.

type slotState int

const (
	waiting slotState = iota
	claimed
	finished
)

// queue hands this process's slots the channels nobody else is working
// on.
type queue struct {
	r     *runner
	chans []*plan.Channel
	sum   *Summary

	mu     sync.Mutex
	status []slotState
	// doneAtStart: complete before this run began. Such a channel is
	// still looked at under its lease (a re-run says "already
	// complete"); one another worker completes during the run is not.
	doneAtStart map[string]bool
	// waitingOn: the holder last reported for each channel, so a wait is
	// said once.
	waitingOn map[int]string
	// handedOver: what this process copied of a channel before another
	// worker took it over, still counted in its summary.
	handedOver map[int]*ChannelResult
}

// pollEvery is how often a process with nothing to claim looks again.
func (r *runner) pollEvery() time.Duration {
	return min(r.lease.TTL()/4, time.Second)
}

// giveUpAfter: a store that answers nothing but errors for this long
// stops the run (a transient fault is ridden out well within it).
const giveUpAfter = 2 * time.Minute

// runFleet migrates chans in o.Parallel slots and fills sum.Channels.
func (r *runner) runFleet(ctx context.Context, chans []*plan.Channel, sum *Summary) (changed bool, firstErr error) {
	renewCtx, stopRenew := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRenew()
	go r.lease.Renew(renewCtx)

	q := &queue{r: r, chans: chans, sum: sum, status: make([]slotState, len(chans)),
		doneAtStart: map[string]bool{}, waitingOn: map[int]string{}, handedOver: map[int]*ChannelResult{}}
	cps, err := r.cps.All(ctx)
	if err != nil {
		return false, err
	}
	for _, cp := range cps {
		q.doneAtStart[cp.Stream] = cp.Done
	}
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
	)
	record := func(err error, ch bool) {
		errMu.Lock()
		defer errMu.Unlock()
		changed = changed || ch
		if err != nil && (firstErr == nil || (errors.Is(firstErr, context.Canceled) && !errors.Is(err, context.Canceled))) {
			firstErr = err
		}
	}
	for range min(r.o.Parallel, len(chans)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i, h, err := q.next(ctx)
				if err != nil || i < 0 {
					record(err, false)
					return
				}
				res, ch, err, lost := r.leased(ctx, chans[i], h)
				if lost {
					q.requeue(i, res)
					record(nil, ch)
					continue
				}
				q.finish(i, res)
				if err != nil {
					r.obs.Phase(chans[i].Name, PhaseFailed)
					res.Status = "failed"
					if ctx.Err() != nil {
						res.Status = "interrupted"
					}
					res.Error = err.Error()
				}
				record(err, ch)
			}
		}()
	}
	wg.Wait()
	for i, c := range chans {
		if sum.Channels[i] == nil {
			sum.Channels[i] = &ChannelResult{Channel: c.Name, Stream: c.Stream, Status: "not started"}
		}
	}
	return changed, firstErr
}

// leased migrates c while h is held. lost reports that another worker
// took the channel over (this one's lease expired): not an error, the
// other worker finishes it.
func (r *runner) leased(ctx context.Context, c *plan.Channel, h *state.Held) (res *ChannelResult, changed bool, err error, lost bool) {
	r.obs.LeasesHeld(int(r.leasesHeld.Add(1)))
	defer func() { r.obs.LeasesHeld(int(r.leasesHeld.Add(-1))) }()
	cctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-h.Lost():
			cancel(state.ErrStale)
		case <-cctx.Done():
		}
	}()
	res, changed, err = r.channel(cctx, c)
	lost = ctx.Err() == nil && (errors.Is(context.Cause(cctx), state.ErrStale) || errors.Is(err, state.ErrStale))
	if err != nil && !lost && ctx.Err() == nil {
		// A worker paused past its lease wakes to failures (its STAN
		// session gone, its publishes refused) before its renewal
		// notices: ask now whether the channel is still ours.
		lost = !r.lease.Confirm(ctx, h)
	}
	cancel(nil)
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
	r.lease.Release(rctx, h)
	rcancel()
	if lost {
		r.obs.Phase(c.Name, PhaseElsewhere)
		r.o.Reporter.Event(Event{Channel: c.Name, Stream: c.Stream, Kind: EventHandedOver,
			Message: "another worker took this channel over (this process's lease expired): it continues from the stream"})
	}
	return res, changed, err, lost
}

// next claims a channel for one slot: its index and lease, or -1 when
// every channel is finished here or elsewhere (or claimed by another of
// this process's slots).
func (q *queue) next(ctx context.Context) (int, *state.Held, error) {
	var failingSince time.Time
	for {
		var lastErr error
		for i := range q.chans {
			if !q.claim(i) {
				continue
			}
			h, err := q.try(ctx, i)
			if h != nil {
				return i, h, nil
			}
			if err != nil {
				lastErr = err
			}
		}
		if !q.anyWaiting() {
			return -1, nil, nil
		}
		if lastErr != nil {
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			if time.Since(failingSince) > giveUpAfter {
				return -1, nil, fmt.Errorf("claim channels in %s: %w", q.r.o.State, lastErr)
			}
		} else {
			failingSince = time.Time{}
		}
		select {
		case <-ctx.Done():
			return -1, nil, ctx.Err()
		case <-time.After(q.r.pollEvery()):
		}
	}
}

// try asks for channel i's lease, unless another worker has completed
// the channel; without the lease the channel goes back to waiting.
func (q *queue) try(ctx context.Context, i int) (*state.Held, error) {
	c := q.chans[i]
	if q.doneElsewhere(ctx, i) {
		return nil, nil
	}
	h, holder, err := q.r.lease.Acquire(ctx, c.Stream)
	if err == nil && h != nil {
		return h, nil
	}
	q.mu.Lock()
	q.status[i] = waiting
	said := q.waitingOn[i]
	if holder != nil {
		q.waitingOn[i] = holder.Worker
	}
	q.mu.Unlock()
	if holder != nil && said != holder.Worker {
		q.r.o.Reporter.Event(Event{Channel: c.Name, Stream: c.Stream, Kind: EventWaiting,
			Message: fmt.Sprintf("worker %s is migrating it: waiting for it to finish or for its lease to expire", holder.Worker)})
	}
	return nil, err
}

// doneElsewhere: another worker completed channel i during this run.
func (q *queue) doneElsewhere(ctx context.Context, i int) bool {
	c := q.chans[i]
	if q.doneAtStart[c.Stream] {
		return false
	}
	cp, err := q.r.cps.Load(ctx, c.Stream)
	if err != nil || cp == nil || !cp.Done {
		return false
	}
	q.finish(i, &ChannelResult{Channel: c.Name, Stream: c.Stream, FirstSeq: max(c.FirstSeq, cp.FirstSeq), LastSeq: cp.LastSeq,
		Sum: cp.Sum, Worker: cp.Worker, Status: "complete elsewhere"})
	q.mu.Lock()
	q.sum.DoneElsewhere++
	q.mu.Unlock()
	q.r.obs.Phase(c.Name, PhaseElsewhere)
	q.r.o.Reporter.Event(Event{Channel: c.Name, Stream: c.Stream, Kind: EventCompleteElsewhere,
		Message: fmt.Sprintf("worker %s completed it, stream at %d..%d", cp.Worker, max(c.FirstSeq, cp.FirstSeq), cp.LastSeq)})
	return true
}

// claim marks channel i as being tried by this slot; false when it is
// finished or another slot of this process has it.
func (q *queue) claim(i int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.status[i] != waiting {
		return false
	}
	q.status[i] = claimed
	return true
}

func (q *queue) anyWaiting() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, st := range q.status {
		if st == waiting {
			return true
		}
	}
	return false
}

func (q *queue) requeue(i int, partial *ChannelResult) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.status[i] = waiting
	if prev := q.handedOver[i]; prev != nil {
		partial.Copied += prev.Copied
		partial.Bytes += prev.Bytes
		partial.AlreadyStored += prev.AlreadyStored
	}
	q.handedOver[i] = partial
}

func (q *queue) finish(i int, res *ChannelResult) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if prev := q.handedOver[i]; prev != nil {
		res.Copied += prev.Copied
		res.Bytes += prev.Bytes
		res.AlreadyStored += prev.AlreadyStored
	}
	q.status[i] = finished
	q.sum.Channels[i] = res
}
