package verify

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/stan.go"
)

// feed hands messages from a client callback to the merger in batches:
// the callback appends under a lock, and the merger takes everything
// queued at once, so the two goroutines meet about once per batch rather
// than once per message.
type feed[T any] struct {
	mu    sync.Mutex
	in    []T
	limit int
	// ready holds a token once the queue turns non-empty; room holds one
	// once the merger took a full queue.
	ready chan struct{}
	room  chan struct{}
	done  chan struct{} // closed by stop: put gives up

	// The merger's side, touched only by it.
	out []T
	pos int
}

func newFeed[T any](limit int) *feed[T] {
	return &feed[T]{
		in: make([]T, 0, limit), out: make([]T, 0, limit), limit: limit,
		ready: make(chan struct{}, 1), room: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

// put queues x, waiting while the queue is full: a blocked client
// callback is the backpressure. It reports false once the feed stopped.
func (f *feed[T]) put(x T) bool {
	f.mu.Lock()
	for len(f.in) >= f.limit {
		f.mu.Unlock()
		select {
		case <-f.room:
		case <-f.done:
			return false
		}
		f.mu.Lock()
	}
	f.in = append(f.in, x)
	first := len(f.in) == 1
	f.mu.Unlock()
	if first {
		select {
		case f.ready <- struct{}{}:
		default:
		}
	}
	return true
}

func (f *feed[T]) stop() { close(f.done) }

// refill swaps the merger's drained batch for everything queued.
func (f *feed[T]) refill() bool {
	f.mu.Lock()
	f.out, f.in = f.in, f.out[:0]
	full := len(f.out) >= f.limit
	f.mu.Unlock()
	f.pos = 0
	if full {
		select {
		case f.room <- struct{}{}:
		default:
		}
	}
	return len(f.out) > 0
}

// waited is why next returned without a message.
type waited int

const (
	gotOne waited = iota
	wentIdle
	sourceEnded
)

// next returns the next message, waiting up to idleTimeout for one.
// ended, when closed, says nothing more will be put.
func (f *feed[T]) next(ctx context.Context, t *time.Timer, ended <-chan struct{}) (T, waited, error) {
	var zero T
	if f.pos == len(f.out) && !f.refill() {
		t.Reset(idleTimeout)
	wait:
		for {
			select {
			case <-f.ready:
				if f.refill() {
					break wait
				}
			case <-ended:
				if f.refill() {
					break wait
				}
				t.Stop()
				return zero, sourceEnded, nil
			case <-t.C:
				return zero, wentIdle, nil
			case <-ctx.Done():
				t.Stop()
				return zero, 0, ctx.Err()
			}
		}
		t.Stop()
	}
	x := f.out[f.pos]
	f.out[f.pos] = zero // the batch must not keep messages alive
	f.pos++
	return x, gotOne, nil
}

// stanReader feeds a channel's messages, in sequence order, to the merger.
//
// From a server it reads in windows without acknowledging anything: each
// window is a non-durable subscription that starts at the window's first
// sequence with MaxInflight set to the window's length, so STAN sends the
// window and then waits for acks that never come; the window is then
// dropped. Two windows are open at a time so that STAN is already sending
// the next while the merger reads the current one. Neither the client nor
// STAN handles an ack: on 2 cores shared with both servers, acks are about
// a third of the CPU a plain read with acks takes.
type stanReader struct {
	feed *feed[*stan.Msg]
	// ended is closed when nothing more will be put: a store directory
	// read to its end, or a window that could not be opened (err says
	// why). A subscription that merely stops delivering leaves it open.
	ended  chan struct{}
	err    error
	exited chan struct{} // closed when the goroutine behind the reader is gone

	sc      stan.Conn
	channel string
	size    uint64 // messages per window
	last    uint64 // the channel's last sequence when verification started
	handed  uint64 // highest sequence put; owned by the window in turn
}

// stanWindow is one subscription of a stanReader: sequences from..to.
type stanWindow struct {
	from, to uint64
	sub      stan.Subscription
	prev     chan struct{} // the previous window's complete; nil for the first
	complete chan struct{} // closed once this window has put what it will put
	// Owned by the subscription's callback goroutine.
	received uint64 // messages STAN sent this window, redeliveries aside
	seen     uint64 // the highest sequence it sent
	finished bool
	// handed is the reader's handed when the window completed, read once
	// complete is closed.
	handed uint64
}

// stanDepth is how many windows are open at once.
const stanDepth = 2

func startSTAN(sc stan.Conn, channel string, first, last uint64, window, feedLen int) (*stanReader, error) {
	r := &stanReader{
		feed: newFeed[*stan.Msg](feedLen), ended: make(chan struct{}), exited: make(chan struct{}),
		sc: sc, channel: channel, last: last, size: uint64(window),
	}
	first = max(first, 1)
	w, err := r.open(first, nil)
	if err != nil {
		close(r.exited)
		return nil, err
	}
	go r.run(w)
	return r, nil
}

// open subscribes a window starting at from; prev is the window before.
func (r *stanReader) open(from uint64, prev *stanWindow) (*stanWindow, error) {
	w := &stanWindow{from: from, to: min(from+r.size-1, r.last), complete: make(chan struct{})}
	if prev != nil {
		w.prev = prev.complete
	}
	var err error
	w.sub, err = r.sc.Subscribe(r.channel, func(m *stan.Msg) { r.deliver(w, m) },
		stan.StartAtSequence(from), stan.MaxInflight(int(r.size)), stan.SetManualAckMode(), stan.AckWait(stanAckWait))
	if err != nil {
		return nil, fmt.Errorf("subscribe to channel %q at sequence %d: %w", r.channel, from, err)
	}
	return w, nil
}

// deliver is a window's callback. A window puts only after the previous
// one completed, so puts stay in sequence order; it completes on reaching
// its last sequence, or once STAN sent all it will send it.
func (r *stanReader) deliver(w *stanWindow, m *stan.Msg) {
	if w.finished {
		return
	}
	if w.prev != nil {
		select {
		case <-w.prev:
			w.prev = nil
		case <-r.feed.done:
			return
		}
	}
	if m.Sequence <= w.seen {
		return // redelivered after AckWait
	}
	w.seen = m.Sequence
	w.received++
	// A lower sequence was put by an earlier window that STAN started
	// past its range (the front of the channel expired meanwhile).
	if m.Sequence > r.handed {
		if !r.feed.put(m) {
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
// one is opened, and windows are large enough that the merger still has
// a window's worth to read through such a pause.
func (r *stanReader) run(w *stanWindow) {
	defer close(r.exited)
	var dropping sync.WaitGroup
	drop := make(chan *stanWindow, stanDepth)
	dropped := make(chan struct{})
	go func() {
		defer close(dropped)
		for w := range drop {
			_ = w.sub.Unsubscribe()
			dropping.Done()
		}
	}()
	open := []*stanWindow{w}
	defer func() {
		for _, w := range open {
			dropping.Add(1)
			drop <- w
		}
		close(drop)
		<-dropped
	}()
	depth := stanDepth
	next := w.to + 1
	for {
		for len(open) < depth && next <= r.last {
			var prev *stanWindow
			if len(open) > 0 {
				prev = open[len(open)-1]
			}
			w, err := r.open(next, prev)
			if err != nil && len(open) > 0 {
				// STAN may refuse another subscription on the channel
				// (its max_subs limit): go on one window at a time,
				// each dropped before the next is opened.
				depth = 1
				break
			}
			if err != nil {
				r.err = err
				close(r.ended)
				return
			}
			open = append(open, w)
			next = w.to + 1
		}
		if len(open) == 0 {
			return
		}
		select {
		case <-open[0].complete:
		case <-r.feed.done:
			return
		}
		done := open[0]
		open = open[1:]
		dropping.Add(1)
		select {
		case drop <- done:
		case <-r.feed.done:
			dropping.Done()
			_ = done.sub.Unsubscribe()
			return
		}
		if depth == 1 {
			dropping.Wait()
		}
		// A window that STAN started past its range (the front expired
		// meanwhile) put later sequences: so start the next one there.
		next = max(next, done.handed+1)
	}
}

func (r *stanReader) stop() {
	if r == nil {
		return
	}
	r.feed.stop()
	<-r.exited
}

// streamReader feeds a stream's messages, in sequence order, to the merger.
type streamReader struct {
	feed *feed[jetstream.Msg]
	cc   jetstream.ConsumeContext
}

// streamBatch and streamBatchBytes size the ordered consumer's pulls: the
// client keeps that much requested, so it bounds memory like STAN's
// window does.
const (
	streamBatch      = 4096
	streamBatchBytes = 16 << 20
)

func startStream(ctx context.Context, s jetstream.Stream, feedLen int) (*streamReader, error) {
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer: %w", err)
	}
	r := &streamReader{feed: newFeed[jetstream.Msg](feedLen)}
	r.cc, err = cons.Consume(func(m jetstream.Msg) { r.feed.put(m) },
		jetstream.PullMaxMessagesWithBytesLimit(streamBatch, streamBatchBytes))
	if err != nil {
		return nil, fmt.Errorf("read stream: %w", err)
	}
	return r, nil
}

func (r *streamReader) stop() {
	if r == nil {
		return
	}
	r.feed.stop()
	r.cc.Stop()
}
