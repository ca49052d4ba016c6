package live

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/source"
)

// windowAckWait only matters if the consumer stalls longer than it: STAN
// then sends a window again, and the reader skips sequences it has seen.
const windowAckWait = 60 * time.Second

// windowReader reads a channel without acknowledging anything: each
// window is a non-durable subscription that starts at the window's first
// sequence with MaxInflight set to the window's length, so STAN sends the
// window and then waits for acks that never come; the window is then
// dropped. Two windows are open at a time so that STAN is already sending
// the next while the consumer reads the current one. Neither the client
// nor STAN handles an ack: on 2 cores shared with both servers, acks are
// about a third of the CPU a plain read with acks takes.
type windowReader struct {
	b       *base
	s       *session
	o       source.ReadOptions
	channel string
	start   uint64 // the read's first sequence
	size    uint64 // messages per window
	last    uint64 // the last sequence wanted
	handed  uint64 // highest sequence delivered; owned by the window in turn
	// arrived counts callbacks and delivering is set while Deliver runs:
	// the watchdog tells a silent STAN from a consumer that is busy.
	arrived    atomic.Uint64
	delivering atomic.Bool
	// stopped: Deliver said stop, or the read ended; nothing more is
	// delivered (a consumer that failed must not see later sequences,
	// which it would take for a gap).
	stopped atomic.Bool

	*source.Ending
	exited chan struct{} // closed when the goroutine behind the reader is gone
}

// window is one subscription of a windowReader: sequences from..to.
type window struct {
	from, to uint64
	sub      stan.Subscription
	prev     chan struct{} // the previous window's complete; nil for the first
	complete chan struct{} // closed once this window has delivered what it will
	// Owned by the subscription's callback goroutine.
	received uint64 // messages STAN sent this window, redeliveries aside
	seen     uint64 // the highest sequence it sent
	finished bool
	// handed is the reader's handed when the window completed, read once
	// complete is closed.
	handed uint64
}

func (b *base) readWindows(s *session, channel string, from uint64, o source.ReadOptions) (source.Reader, error) {
	if o.To == 0 {
		return nil, fmt.Errorf("channel %q: a read without acknowledgements needs a last sequence", channel)
	}
	r := &windowReader{
		b: b, s: s, o: o, channel: channel, size: uint64(max(o.MaxInflight, 1)), last: o.To,
		Ending: source.NewEnding(), exited: make(chan struct{}),
	}
	r.start = max(from, 1)
	w, err := r.open(r.start, nil)
	if err != nil {
		return nil, err
	}
	b.addReader(s, 1)
	go r.run(w)
	return r, nil
}

// open subscribes a window starting at from; prev is the window before.
func (r *windowReader) open(from uint64, prev *window) (*window, error) {
	w := &window{from: from, to: min(from+r.size-1, r.last), complete: make(chan struct{})}
	if prev != nil {
		w.prev = prev.complete
	}
	var err error
	w.sub, err = r.s.sc.SC.Subscribe(r.channel, func(m *stan.Msg) { r.deliver(w, m) },
		stan.StartAtSequence(from), stan.MaxInflight(int(r.size)), stan.SetManualAckMode(), stan.AckWait(windowAckWait))
	if err != nil {
		return nil, fmt.Errorf("subscribe to channel %q at sequence %d: %w", r.channel, from, err)
	}
	return w, nil
}

// deliver is a window's callback. A window delivers only after the
// previous one completed, so deliveries stay in sequence order; it
// completes on reaching its last sequence, or once STAN sent all it will.
func (r *windowReader) deliver(w *window, m *stan.Msg) {
	r.arrived.Add(1)
	if w.finished || r.stopped.Load() {
		return
	}
	if w.prev != nil {
		select {
		case <-w.prev:
			w.prev = nil
		case <-r.Stopping():
			return
		}
		if r.stopped.Load() {
			return // the read ended while this window waited its turn
		}
	}
	if m.Sequence <= w.seen {
		return // redelivered after AckWait
	}
	if expect, jumped := r.jumped(w, m.Sequence); jumped {
		w.finished = true
		r.end(fmt.Errorf("channel %q: expected sequence %d, got %d: %w", r.channel, expect, m.Sequence, source.ErrJump))
		return
	}
	w.seen = m.Sequence
	w.received++
	// A lower sequence was delivered by an earlier window that STAN
	// started past its range (the front of the channel expired meanwhile).
	if m.Sequence > r.handed {
		r.delivering.Store(true)
		ok := r.o.Deliver(source.NewMsg(m.Sequence, m.Subject, m.Data, m.Timestamp, false, nil, nil))
		r.delivering.Store(false)
		if !ok {
			r.end(nil)
			return
		}
		r.handed = m.Sequence
	}
	if r.handed >= w.to || w.received >= r.size {
		w.finished = true
		w.handed = r.handed
		close(w.complete)
	}
}

// run opens each window when the one two before it completes. Opening
// and dropping a subscription both make STAN sync the channel's
// subscription file, which holds up its sends on the channel meanwhile;
// so a complete window is dropped by another goroutine while the next
// one is opened, and windows are large enough that the consumer still has
// a window's worth to read through such a pause.
func (r *windowReader) run(w *window) {
	defer close(r.exited)
	var dropping sync.WaitGroup
	drop := make(chan *window, source.WindowDepth)
	go func() {
		for w := range drop {
			_ = w.sub.Unsubscribe()
			dropping.Done()
		}
	}()
	open := []*window{w}
	defer func() {
		// The windows still open are dropped in the background: after a
		// failover an unsubscribe waits out its request timeout (5 s),
		// and the next read need not wait for that. Nothing is
		// delivered meanwhile (stopped).
		dropping.Add(len(open))
		go func(open []*window) {
			for _, w := range open {
				drop <- w
			}
			close(drop)
		}(open)
	}()
	depth := source.WindowDepth
	next := w.to + 1
	// A window is opened by a goroutine of its own, one at a time, so
	// that a subscribe STAN leaves unanswered (a server going away: the
	// request waits 5 s) does not hold up the watch below. One the read
	// no longer wants is dropped where it was opened.
	opened := make(chan openResult)
	quit := make(chan struct{})
	defer close(quit)
	opening := false
	var openingAt time.Time
	var openingFrom uint64
	// A connection that drops or moves may lose what a window was sent:
	// the read ends rather than wait on it (verify can simply run again).
	reconnects := r.s.sc.NC.Stats().Reconnects
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	arrived, arrivedAt := uint64(0), time.Now()
	for {
		if !opening && len(open) < depth && next <= r.last {
			var prev *window
			if len(open) > 0 {
				prev = open[len(open)-1]
			}
			opening, openingAt, openingFrom = true, time.Now(), next
			go r.openAsync(next, prev, opened, quit)
		}
		if len(open) == 0 && !opening {
			return
		}
		var complete <-chan struct{}
		if len(open) > 0 {
			complete = open[0].complete
		}
		select {
		case res := <-opened:
			opening = false
			switch {
			case res.err != nil && res.prev != nil && !errors.Is(res.err, source.ErrLost):
				// STAN may refuse another subscription on the channel
				// (its max_subs limit): go on one window at a time,
				// each dropped before the next is opened (the window
				// open beside this one may have completed meanwhile).
				// Not after a subscribe nobody answered: STAN may have
				// made the subscription and be sending it, and a second
				// window over the same sequences would deliver beside
				// it; the read ends instead.
				depth = 1
				dropping.Wait()
			case res.err != nil:
				r.end(res.err)
				return
			default:
				open = append(open, res.w)
				next = max(next, res.w.to+1)
			}
			continue
		case <-complete:
		case <-r.Stopping():
			return
		case <-r.s.lost:
			r.end(fmt.Errorf("channel %q: STAN reported the session lost: %w", r.channel, source.ErrLost))
			return
		case <-tick.C:
			if nc := r.s.sc.NC; !nc.IsConnected() || nc.Stats().Reconnects != reconnects {
				r.end(fmt.Errorf("channel %q: the connection to STAN was interrupted: %w", r.channel, source.ErrLost))
				return
			}
			if len(open) == 0 {
				// Nothing to read until the subscribe is answered, which
				// STAN does at once: one unanswered for roomTimeout went
				// to a server going away (stan.go would wait 5 s).
				if opening && time.Since(openingAt) > roomTimeout {
					r.end(fmt.Errorf("channel %q: STAN did not answer a subscribe at sequence %d for %v: %w", r.channel, openingFrom, roomTimeout, source.ErrLost))
					return
				}
				continue
			}
			if n := r.arrived.Load(); n != arrived || r.delivering.Load() {
				arrived, arrivedAt = n, time.Now()
			} else if err := r.silent(open[0], time.Since(arrivedAt)); err != nil {
				r.end(err)
				return
			}
			continue
		}
		done := open[0]
		open = open[1:]
		dropping.Add(1)
		select {
		case drop <- done:
		case <-r.Stopping():
			dropping.Done()
			go func() { _ = done.sub.Unsubscribe() }() // as the deferred drops
			return
		}
		if depth == 1 {
			dropping.Wait()
		}
		// A window that STAN started past its range (the front expired
		// meanwhile) delivered later sequences: so start the next one there.
		next = max(next, done.handed+1)
	}
}

// openResult is a window openAsync opened, or why it could not; prev is
// the window that was open beside it (nil: none).
type openResult struct {
	w, prev *window
	err     error
}

// openAsync opens the window from `from` and hands it to run; if run has
// returned meanwhile (quit), the window is dropped here.
func (r *windowReader) openAsync(from uint64, prev *window, opened chan<- openResult, quit <-chan struct{}) {
	w, err := r.open(from, prev)
	if errors.Is(err, stan.ErrSubReqTimeout) {
		// No server answered: one went away mid-read.
		err = fmt.Errorf("%w: %w", err, source.ErrLost)
	}
	select {
	case opened <- openResult{w: w, prev: prev, err: err}:
	case <-quit:
		if w != nil {
			_ = w.sub.Unsubscribe()
		}
	}
}

// silent decides about a window STAN stopped sending while it owes
// messages, for quiet long: the server serving the channel was replaced
// without this connection noticing (an FT standby took over; a leader
// moved), and the window would be waited on for ever. STAN sends a window
// in full at once, so the read gives up after roomTimeout, as an
// acknowledged read with room does; migrate and verify both read again
// from where it ended.
func (r *windowReader) silent(w *window, quiet time.Duration) error {
	if quiet <= roomTimeout {
		return nil
	}
	// handed belongs to the delivering goroutines: name the window.
	return fmt.Errorf("channel %q: STAN sent nothing for %v though it owes part of the window of sequences %d..%d: %w",
		r.channel, roomTimeout, w.from, w.to, source.ErrLost)
}

// jumped reports a sequence STAN skipped, and the one it should have
// sent. Within one subscription STAN sends sequences in order; past the
// next one it skipped a message it still owes (a restarted server) or one
// that expired meanwhile, and only a fresh read tells which, as for an
// acknowledged read. With Contiguous, so does a window after the first
// that starts past its first sequence (or past what an earlier window,
// started late, delivered already).
func (r *windowReader) jumped(w *window, seq uint64) (expect uint64, jumped bool) {
	switch {
	case w.seen > 0:
		expect = w.seen + 1
	case r.o.Contiguous && w.from != r.start:
		expect = max(w.from, r.handed+1)
	default:
		return 0, false
	}
	return expect, seq > expect
}

// end stops delivering for good and records why the read ended.
func (r *windowReader) end(err error) {
	r.stopped.Store(true)
	r.End(err)
}

// Close stops the reader; its windows are dropped in the background. The
// consumer must first make a Deliver call in progress return (verify
// stops its feed first).
func (r *windowReader) Close() error {
	r.stopped.Store(true)
	r.Stop(func() {
		<-r.exited
		r.b.addReader(r.s, -1)
	})
	return nil
}
