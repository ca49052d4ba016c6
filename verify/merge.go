package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/digest"
	"github.com/stanmigrate/stanmigrate/internal/jsread"
	"github.com/stanmigrate/stanmigrate/internal/source"
)

// merger walks both sides in sequence order. Everything per message runs
// on its goroutine, hashing included, so the client callbacks only hand
// messages over.
//
// While both sides agree, ds and dt are one digest, fed once per pair: the
// two hashes are over the same bytes until the first difference, where
// the digest is forked and each side goes on alone.
type merger struct {
	rep     *ChannelReport
	channel string
	sr      *sourceReader
	tr      *streamReader
	js      jetstream.JetStream

	stanLast, streamLast uint64
	stanPrev, streamPrev uint64
	stanDone, streamDone bool
	// streamQuiet: the last stream message read said nothing was pending.
	streamQuiet bool
	// stream and feedLen let the stream side read again from where it
	// stopped; rereads counts how often it did.
	stream    jetstream.Stream
	feedLen   int
	rereads   int
	stanFirst uint64 // first sequence read from STAN
	// src and window let the STAN side read again from where it stopped
	// (see readSTANAgain); lostSince is when it last stopped without
	// having merged anything since, lostAt the sequence it stopped after.
	src       source.Source
	window    int
	lostSince time.Time
	lostAt    uint64

	ds, dt *digest.Channel
	timer  *time.Timer
	// exp accepts messages that expired on one side (see expiry).
	exp expiry

	progress     func(string, uint64)
	sinceReport  uint64
	lastReported time.Time
}

// nextSTAN returns the next STAN message up to stanLast; ok is false once
// the side is finished (read to the end, or silent for idleTimeout).
func (m *merger) nextSTAN(ctx context.Context) (msg source.Msg, ok bool, err error) {
	for {
		msg, why, err := m.sr.feed.next(ctx, m.timer, m.sr.rd.Done(), idleTimeout)
		switch {
		case err != nil:
			return msg, false, err
		case why == sourceEnded:
			if err := m.sr.rd.Err(); !errors.Is(err, source.ErrEnd) {
				if !errors.Is(err, source.ErrLost) && !errors.Is(err, source.ErrJump) {
					m.stanDone = true
					return msg, false, fmt.Errorf("read STAN after sequence %d: %w", m.stanPrev, err)
				}
				again, rerr := m.readSTANAgain(ctx, err)
				if rerr != nil {
					m.stanDone = true
					return msg, false, fmt.Errorf("read STAN after sequence %d: %w", m.stanPrev, rerr)
				}
				if again {
					continue
				}
			}
			m.stanDone = true
			if m.stanPrev < m.stanLast {
				m.rep.notes = append(m.rep.notes, fmt.Sprintf("the STAN source holds nothing after sequence %d though the channel's last sequence is %d", m.stanPrev, m.stanLast))
			}
			return msg, false, nil
		case why == wentIdle:
			again, err := m.readSTANAgain(ctx, nil)
			if err != nil {
				m.stanDone = true
				return msg, false, err
			}
			if again {
				continue
			}
			m.stanDone = true
			m.rep.notes = append(m.rep.notes, fmt.Sprintf("STAN delivered nothing for %v after sequence %d though the channel's last sequence was %d",
				idleTimeout, m.stanPrev, m.stanLast))
			return msg, false, nil
		}
		seq := msg.Sequence
		if seq <= m.stanPrev {
			continue // merged already
		}
		if seq > m.stanLast {
			m.stanDone = true
			return msg, false, nil
		}
		if m.stanPrev == 0 {
			m.stanFirst = seq
		}
		m.stanPrev = seq
		m.stanDone = seq >= m.stanLast
		return msg, true, nil
	}
}

// readSTANAgain reads the channel again from after the last message
// merged, when the STAN read ended early (cause: ErrLost or ErrJump, a
// connection that dropped or moved, a window a failed-over server never
// finished) or went silent (cause nil) before the channel's last
// sequence. That is how migrate rides out a STAN failover, and a verify
// that gave up there would report the rest of the stream as extra. It
// goes on while reads make progress; once one has stopped at the same
// sequence for rereadBudget, again is false for a silence (the merge
// ends with a report, not a hang) and the error is returned for a failed
// read.
func (m *merger) readSTANAgain(ctx context.Context, cause error) (again bool, err error) {
	if m.lostSince.IsZero() || m.lostAt != m.stanPrev {
		m.lostSince, m.lostAt = time.Now(), m.stanPrev
	}
	if time.Since(m.lostSince) >= rereadBudget {
		return false, cause
	}
	m.sr.stop()
	m.sr = nil
	if err := m.startSTAN(ctx, m.stanPrev+1, rereadPause); err != nil {
		return false, err
	}
	return true, nil
}

// startSTAN starts reading the channel from `from`, after pause, and
// tries again, each pause twice the last up to maxRereadPause, while STAN
// cannot start a read yet (a failover in progress: no answer, a Raft
// leader lost) until rereadBudget has passed since lostSince. A damaged
// store, a missing channel or a denied subscribe is final at once.
func (m *merger) startSTAN(ctx context.Context, from uint64, pause time.Duration) error {
	for {
		if pause > 0 {
			select {
			case <-time.After(pause):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		sr, err := startSource(ctx, m.src, m.channel, from, m.stanLast, m.window, m.feedLen)
		if err == nil {
			m.sr = sr
			return nil
		}
		if ctx.Err() != nil || errors.Is(err, source.ErrUnreadable) || errors.Is(err, source.ErrNoChannel) ||
			errors.Is(err, conn.ErrPermission) || time.Since(m.lostSince) >= rereadBudget {
			return err
		}
		pause = min(max(2*pause, rereadPause), maxRereadPause)
	}
}

// nextStream is nextSTAN for the stream side. When the server says
// nothing is pending before the stream's last sequence (a stream whose last
// message was deleted keeps that sequence as its last), it waits only
// quietTimeout for more: not less, because an ordered consumer moved to a
// new stream leader mid-read reports nothing pending for a moment.
func (m *merger) nextStream(ctx context.Context) (jetstream.Msg, uint64, error) {
	for {
		wait := idleTimeout
		if m.streamQuiet {
			wait = quietTimeout
		}
		msg, why, err := m.tr.feed.next(ctx, m.timer, nil, wait)
		if err != nil {
			return nil, 0, err
		}
		if why != gotOne {
			reread, err := m.stoppedShort(ctx)
			if err != nil || !reread {
				return nil, 0, err
			}
			continue
		}
		seq, pending, ok := ackSeqs(msg.Reply())
		if !ok {
			md, err := msg.Metadata()
			if err != nil {
				return nil, 0, fmt.Errorf("stream message metadata: %w", err)
			}
			seq, pending = md.Sequence.Stream, md.NumPending
		}
		if seq <= m.streamPrev {
			continue
		}
		if seq > m.streamLast {
			m.streamDone = true
			return nil, 0, nil
		}
		m.streamPrev = seq
		m.streamDone = seq >= m.streamLast
		m.streamQuiet = pending == 0
		return msg, seq, nil
	}
}

// stoppedShort decides what the stream side does when its read gave
// nothing for a while: read again from where it stopped (reread), or end
// the stream side. Short of the stream's last sequence, either the
// messages after it were deleted, or the ordered consumer stalled or
// reported nothing pending for a moment (moved to a new stream leader,
// recreated while the meta leader changes); the stream says which.
func (m *merger) stoppedShort(ctx context.Context) (reread bool, err error) {
	if m.stream != nil && m.streamPrev < m.streamLast {
		more, err := m.holdsAfter(ctx, m.streamPrev)
		if err != nil {
			return false, err
		}
		if !more {
			m.streamDone = true
			return false, nil
		}
		if m.rereads < maxRereads {
			m.rereads++
			m.tr.stop()
			if m.tr, err = startStream(ctx, m.stream, m.streamPrev+1, m.feedLen); err != nil {
				return false, err
			}
			m.streamQuiet = false
			return true, nil
		}
	}
	m.streamDone = true
	if m.streamQuiet {
		return false, nil
	}
	if !m.js.Conn().IsConnected() {
		return false, fmt.Errorf("JetStream connection lost after stream sequence %d", m.streamPrev)
	}
	m.rep.notes = append(m.rep.notes, fmt.Sprintf("the stream delivered nothing for %v after sequence %d though its last sequence was %d",
		idleTimeout, m.streamPrev, m.streamLast))
	return false, nil
}

// holdsAfter reports whether the stream holds a message after seq (up to
// the last sequence it had when the read began).
func (m *merger) holdsAfter(ctx context.Context, seq uint64) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	next, err := jsread.NextStored(cctx, m.stream, seq+1)
	if err != nil {
		return false, fmt.Errorf("stream: look for a message after sequence %d: %w", seq, err)
	}
	return next != 0 && next <= m.streamLast, nil
}

// maxRereads bounds how often the stream side reads again after stopping
// short (see nextStream).
const maxRereads = 3

// fork gives the stream side a digest of its own at the first difference.
func (m *merger) fork() error {
	if m.dt != m.ds {
		return nil
	}
	st, err := m.ds.State()
	if err == nil {
		m.dt, err = digest.Restore(st, m.ds.Count, m.ds.First, m.ds.Last)
	}
	if err != nil {
		return fmt.Errorf("fork the channel digest: %w", err)
	}
	return nil
}

func (m *merger) run(ctx context.Context) error {
	var (
		s    source.Msg
		have bool // s holds the next STAN message
		t    jetstream.Msg
		tseq uint64
		err  error
	)
	r := m.rep
	for {
		if !have && !m.stanDone {
			if s, have, err = m.nextSTAN(ctx); err != nil {
				return err
			}
		}
		if t == nil && !m.streamDone {
			if t, tseq, err = m.nextStream(ctx); err != nil {
				return err
			}
		}
		switch {
		case !have && t == nil:
			m.report(true)
			return nil
		case t == nil || (have && s.Sequence < tseq):
			if m.exp.passed(s.Timestamp) {
				r.Expired++
				have = false
				continue
			}
			if err := m.fork(); err != nil {
				return err
			}
			r.MissingCount++
			if len(r.Missing) < listed {
				r.Missing = append(r.Missing, s.Sequence)
			}
			m.ds.Add(s.Sequence, s.Subject, s.Data)
			have = false
		case !have || tseq < s.Sequence:
			if m.exp.streamPassed(t) {
				r.Expired++
				t = nil
				continue
			}
			if err := m.fork(); err != nil {
				return err
			}
			r.ExtraCount++
			if len(r.Extra) < listed {
				r.Extra = append(r.Extra, tseq)
			}
			m.dt.Add(tseq, t.Subject(), t.Data())
			t = nil
		default:
			// Comparing the bytes decides exactly what comparing
			// digest.MessageSum would, and equal messages are hashed
			// once while the digests are shared.
			if s.Subject != t.Subject() || !bytes.Equal(s.Data, t.Data()) {
				if err := m.fork(); err != nil {
					return err
				}
				r.ChangedCount++
				if len(r.Changed) < listed {
					r.Changed = append(r.Changed, tseq)
				}
			}
			m.ds.Add(s.Sequence, s.Subject, s.Data)
			if m.dt != m.ds {
				m.dt.Add(tseq, t.Subject(), t.Data())
			}
			have, t = false, nil
		}
		if m.progress != nil {
			m.sinceReport++
			if m.sinceReport%progressEvery == 0 {
				m.report(false)
			}
		}
	}
}

func (m *merger) report(final bool) {
	if m.progress == nil || m.sinceReport == 0 {
		return
	}
	if !final && time.Since(m.lastReported) < progressInterval {
		return
	}
	m.progress(m.channel, m.sinceReport)
	m.sinceReport = 0
	m.lastReported = time.Now()
}
