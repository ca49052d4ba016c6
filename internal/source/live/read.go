package live

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/source"
)

// Read delivers a channel's messages from `from` on. With acknowledgements
// it is one subscription with manual acks (a migration); without, it reads
// in unacknowledged windows (see windows.go).
func (b *base) Read(ctx context.Context, channel string, from uint64, o source.ReadOptions) (source.Reader, error) {
	s, err := b.session(ctx)
	if err != nil {
		return nil, err
	}
	if !o.Acks {
		rd, err := b.readWindows(s, channel, from, o)
		if err != nil {
			// As below: a denied subscribe only shows as a timeout.
			if perr := conn.PermissionErr(b.o.STAN, s.sc.NC); perr != nil {
				return nil, perr
			}
			return nil, err
		}
		return rd, nil
	}
	r := &ackedReader{b: b, s: s, o: o, channel: channel, Ending: source.NewEnding(),
		reconnects: s.sc.NC.Stats().Reconnects}
	sub, err := s.sc.SC.Subscribe(channel, r.onMsg,
		stan.StartAtSequence(from),
		stan.SetManualAckMode(),
		stan.MaxInflight(max(o.MaxInflight, 1)),
		stan.AckWait(max(o.AckWait, time.Second)))
	if err != nil {
		// A denied subscribe only shows as a timeout; the server told the
		// connection why.
		if perr := conn.PermissionErr(b.o.STAN, s.sc.NC); perr != nil {
			return nil, perr
		}
		return nil, fmt.Errorf("channel %q: subscribe from sequence %d: %w", channel, from, err)
	}
	r.sub = sub
	b.addReader(s, 1)
	go r.watch(ctx)
	return r, nil
}

// ackedReader is one subscription with manual acks. STAN sends at most
// MaxInflight unacknowledged messages and sends a message again after
// AckWait without an ack, so sequences can come twice; within one
// subscription they otherwise come in order, and a jump past the next
// sequence after the first message is not a gap but messages still owed
// (after a server restart): the read stops with ErrJump.
type ackedReader struct {
	b       *base
	s       *session
	o       source.ReadOptions
	channel string
	sub     stan.Subscription

	mu sync.Mutex // the delivery goroutine, and stopping
	// highest is the highest sequence delivered (0: none yet).
	highest uint64
	stopped bool
	// delivering is set while Deliver runs: a reader blocked on its
	// consumer is not stalled.
	delivering atomic.Bool
	reconnects uint64
	// delivered and acked count messages handed out and acknowledged:
	// their difference is what STAN holds against MaxInflight.
	delivered, acked atomic.Uint64

	*source.Ending
}

func (r *ackedReader) onMsg(m *stan.Msg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	seq := m.Sequence
	started := r.highest > 0
	again := started && seq <= r.highest
	if started && seq > r.highest+1 {
		r.finish(fmt.Errorf("channel %q: expected sequence %d, got %d: %w", r.channel, r.highest+1, seq, source.ErrJump))
		return
	}
	if !again {
		r.highest = seq
	}
	r.delivering.Store(true)
	r.delivered.Add(1)
	ok := r.o.Deliver(source.NewMsg(seq, m.Subject, m.Data, m.Timestamp, again || m.Redelivered, m, &r.acked))
	r.delivering.Store(false)
	if !ok {
		r.finish(nil)
	}
}

// finish stops delivering with err as the reason; called with mu held.
func (r *ackedReader) finish(err error) {
	if r.stopped {
		return
	}
	r.stopped = true
	r.End(err)
}

// watch ends the read when its session is lost or its connection moved
// (a restart or a leader change: the subscription would wait for
// redeliveries), or when no message comes while one is due.
func (r *ackedReader) watch(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	last, lastAt := uint64(0), time.Now()
	for {
		select {
		case <-r.Stopping():
			return
		case <-r.Done():
			return
		case <-ctx.Done():
			r.end(ctx.Err())
			return
		case <-r.s.lost:
			r.end(fmt.Errorf("channel %q: STAN reported the session lost: %w", r.channel, source.ErrLost))
			return
		case <-tick.C:
		}
		nc := r.s.sc.NC
		if !nc.IsConnected() || nc.Stats().Reconnects != r.reconnects {
			r.end(fmt.Errorf("channel %q: the connection to STAN was interrupted: %w", r.channel, source.ErrLost))
			return
		}
		if n := r.delivered.Load(); n != last || r.delivering.Load() {
			last, lastAt = n, time.Now()
			continue
		}
		r.mu.Lock()
		started := r.highest > 0
		due := !started || r.highest < r.o.To
		next := r.highest + 1
		r.mu.Unlock()
		if r.o.To == 0 || !due {
			continue
		}
		if !started && time.Since(lastAt) > firstTimeout {
			r.end(fmt.Errorf("channel %q: STAN sent nothing for %v after subscribing: %w", r.channel, firstTimeout, source.ErrLost))
			return
		}
		// STAN sends while fewer than MaxInflight messages wait for an
		// ack. Silence while there is room means the server serving the
		// channel went away (a leader or active server replaced without
		// this connection noticing): read again rather than wait.
		if unacked := r.delivered.Load() - min(r.acked.Load(), r.delivered.Load()); unacked < uint64(max(r.o.MaxInflight, 2))/2 && time.Since(lastAt) > roomTimeout {
			r.end(fmt.Errorf("channel %q: STAN sent nothing for %v at sequence %d though %d of %d messages may be unacknowledged: %w",
				r.channel, roomTimeout, next, unacked, r.o.MaxInflight, source.ErrLost))
			return
		}
		if time.Since(lastAt) > stallTimeout {
			// The session may be wedged: the next read opens another.
			r.b.drop(r.s)
			r.end(fmt.Errorf("channel %q: no message from STAN for %v at sequence %d: %w", r.channel, stallTimeout, next, source.ErrLost))
			return
		}
	}
}

func (r *ackedReader) end(err error) {
	r.mu.Lock()
	r.finish(err)
	r.mu.Unlock()
}

// Close drops the subscription: for a non-durable one that is only the
// reader's own cursor; the channel and every durable stay as they were.
func (r *ackedReader) Close() error {
	r.Stop(func() {
		r.mu.Lock()
		r.stopped = true
		r.mu.Unlock()
		_ = r.sub.Unsubscribe()
		r.b.addReader(r.s, -1)
	})
	return nil
}
