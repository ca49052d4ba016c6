package migrate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/digest"
	"github.com/stanmigrate/stanmigrate/internal/state"
)

// acker resolves publishes in order: only after JetStream stored a
// message is it acknowledged on STAN and counted in the checkpoint.
func (a *attempt) acker(ctx context.Context) {
	// Checkpoints are written (with two fsyncs) by a goroutine of their
	// own: in the acker they stalled the pipeline once a second. A
	// snapshot the saver is too busy to take is skipped; the next one
	// supersedes it, and the final save below is synchronous.
	saves := make(chan state.Checkpoint, 1)
	saverDone := make(chan struct{})
	go func() {
		defer close(saverDone)
		for snap := range saves {
			if err := a.r.save(&snap); errors.Is(err, state.ErrStale) {
				// Another worker owns the channel now: stop copying.
				a.fail(permanent{err})
			}
		}
	}()
	// confirmed is the latest mark of the running hash known to be stored
	// in full; checkpoints record it, not the digest, which is ahead.
	confirmed := a.mark.Load()
	defer func() {
		close(saves)
		<-saverDone
		// Publishing has stopped. Hashed messages that never got
		// stored are taken back out: the digest goes back to the last
		// stored mark, and the next attempt's reconcile rehashes the
		// rest from the stream.
		if a.d.Last > a.cp.LastSeq && confirmed != nil {
			if err := a.d.Rewind(*confirmed); err != nil {
				*a.d = *digest.New()
			}
		}
		a.saveErr = a.r.saveCheckpoint(a.cp, a.d)
	}()
	lastSave := time.Now()
	timer := time.NewTimer(publishTimeout)
	defer timer.Stop()
	var progMsgs, progBytes uint64
	// lastTS is the original timestamp of the last message stored.
	var lastTS int64
	flushProgress := func() {
		if progMsgs > 0 {
			a.r.o.Reporter.Progress(progMsgs, progBytes)
		}
		var ts time.Time
		if lastTS != 0 {
			ts = time.Unix(0, lastTS)
		}
		a.r.obs.Copied(a.c.Name, progMsgs, progBytes, a.stored.Load(), ts)
		progMsgs, progBytes = 0, 0
	}
	defer flushProgress()
	broken := false
	moved := a.targetMoved // a method value allocates: once, not per message
	for it := range a.inflight {
		if broken {
			if !it.gap {
				a.unconfirmed = append(a.unconfirmed, unconfirmed{seq: it.seq, size: it.size})
			}
			continue
		}
		err := a.pub.await(it.seq, timer, publishTimeout, moved)
		if err != nil && a.alreadyStored(ctx, it.seq, err) {
			a.already++
			a.r.obs.AlreadyStored(a.c.Name, 1)
			err = nil
		}
		if err != nil {
			broken = true
			if !it.gap {
				a.unconfirmed = append(a.unconfirmed, unconfirmed{seq: it.seq, size: it.size})
			}
			a.fail(a.classifyPublishErr(it.seq, err))
			continue
		}
		if it.gap {
			if err := a.deleteGap(ctx, it.seq); err != nil {
				broken = true
				a.fail(err)
				continue
			}
		} else {
			_ = it.msg.Ack()
			a.copied++
			a.bytes += uint64(it.size)
			progMsgs++
			progBytes += uint64(it.size)
			lastTS = it.msg.Timestamp
		}
		a.stored.Store(it.seq)
		a.cp.LastSeq = it.seq
		// The clock and the progress callback every 512 messages, or
		// when the pipeline runs dry (a trickle while following).
		if progMsgs < 512 && len(a.inflight) > 0 && !it.gap && it.seq < a.target.Load() {
			continue
		}
		flushProgress()
		if time.Since(lastSave) >= checkpointEvery {
			if m := a.mark.Load(); m != nil && m.Last <= it.seq {
				confirmed = m
			}
			a.cp.Rate = a.rate.update(it.seq, time.Now())
			if confirmed != nil {
				snap := *a.cp
				snap.SetMark(*confirmed)
				select {
				case saves <- snap:
				default:
				}
			}
			a.wantMark.Store(true)
			lastSave = time.Now()
		}
		if it.seq >= a.target.Load() {
			a.compOnce.Do(func() { close(a.complete) })
		}
	}
}

func (a *attempt) deleteGap(ctx context.Context, seq uint64) error {
	s, err := a.js.Stream(ctx, a.c.Stream)
	if err == nil {
		err = s.DeleteMsg(ctx, seq)
	}
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("channel %q: remove gap placeholder at sequence %d: %w", a.c.Name, seq, err)
	}
	return nil
}

// classifyPublishErr decides whether a failed publish stops the run.
func (a *attempt) classifyPublishErr(seq uint64, err error) error {
	base := fmt.Errorf("channel %q sequence %d: %w", a.c.Name, seq, err)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
			// Something else wrote to the stream, or an earlier publish
			// landed after all: the next attempt starts from the stream's
			// actual last sequence and checks whose message it is.
			return base
		}
	}
	if isLimitErr(err) {
		return permanent{fmt.Errorf("stream %q (channel %q) at sequence %d: %v: the target is full or a limit was reached: free space or raise the limit, then re-run migrate: %w",
			a.c.Stream, a.c.Name, seq, err, ErrStorage)}
	}
	if strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
		return permanent{fmt.Errorf("%w: %w", base, conn.ErrPermission)}
	}
	return base
}

// alreadyStored recognises a resend of a message the stream holds: the
// answer "wrong last sequence" naming a last sequence at or past the
// message's own (nats-server 2.12 and later check the expected sequence
// before the dedup id; 2.10 and 2.11 answer a duplicate acknowledgement
// instead, which needs nothing). It happens when a publish of an attempt
// that stopped waiting lands after the next attempt resent the message;
// the stored message must be ours for this channel and sequence.
func (a *attempt) alreadyStored(ctx context.Context, seq uint64, err error) bool {
	last, ok := wrongLastSeq(err)
	if !ok || last < seq {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, serr := a.js.Stream(cctx, a.c.Stream)
	return serr == nil && a.r.checkOwnership(cctx, s, a.c, seq) == nil
}

// wrongLastSeq reads the stream's last sequence from a "wrong last
// sequence" answer.
func wrongLastSeq(err error) (uint64, bool) {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return 0, false
	}
	switch apiErr.ErrorCode {
	case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
	default:
		return 0, false
	}
	_, num, ok := strings.Cut(apiErr.Description, "wrong last sequence: ")
	if !ok {
		return 0, false
	}
	last, perr := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
	return last, perr == nil
}

// targetMoved reports, as an error, that the target moved under the
// attempt: the connection to JetStream was re-established (its server
// went away), or the stream has another leader than when the attempt
// began. Publishes in flight then get no answer, and the attempt ends at
// once; the next one reconciles with what the stream holds and resumes,
// so a failover costs about the election, not the acknowledgement
// timeout.
func (a *attempt) targetMoved() error {
	if n := a.r.nc.Stats().Reconnects; n != a.reconnects {
		return fmt.Errorf("channel %q: the connection to JetStream was interrupted: %w", a.c.Name, errTargetMoved)
	}
	if a.leader == "" {
		return nil // not a clustered stream
	}
	ctx, cancel := context.WithTimeout(a.ctx, time.Second)
	defer cancel()
	s, err := a.js.Stream(ctx, a.c.Stream)
	if err != nil {
		// No answer from the stream's leader: an election in progress
		// or a server going away; the acknowledgement timeout decides.
		return nil
	}
	if cl := s.CachedInfo().Cluster; cl != nil && cl.Leader != a.leader {
		to := cl.Leader
		if to == "" {
			to = "none yet"
		}
		return fmt.Errorf("stream %q: its leader moved from %s to %s: %w", a.c.Stream, a.leader, to, errTargetMoved)
	}
	return nil
}

// unconfirmed is a message published but not confirmed stored when an
// attempt ended: it may have landed all the same, which the next
// attempt's look at the stream tells.
type unconfirmed struct {
	seq  uint64
	size int
}

// errTargetMoved: publishes in flight went to a server or stream leader
// that is gone; the next attempt resumes from what the stream holds.
var errTargetMoved = errors.New("the JetStream target moved")
