package verify

import (
	"context"
	"sync"
	"time"
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

// next returns the next message, waiting up to wait for one.
// ended, when closed, says nothing more will be put.
func (f *feed[T]) next(ctx context.Context, t *time.Timer, ended <-chan struct{}, wait time.Duration) (T, waited, error) {
	var zero T
	if f.pos == len(f.out) && !f.refill() {
		t.Reset(wait)
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
