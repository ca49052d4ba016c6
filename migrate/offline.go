package migrate

import (
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/stanstore"
	"github.com/stanmigrate/stanmigrate/plan"
)

// The offline source: a stopped STAN server's file store directory, read
// through internal/stanstore instead of a subscription. Everything after
// reading (publish, acks from JetStream, checkpoints, consumers) is the
// same path as for a running server; there is nothing to acknowledge on
// the STAN side and no probe, because the pending sets are on disk.

// PositionStored marks a consumer whose start and pending set were read
// from the store files.
const PositionStored = "stored"

// offlineChannel returns the store's view of a channel, or a permanent
// error naming it when the directory does not have it or cannot read it.
func (r *runner) offlineChannel(c *plan.Channel) (stanstore.Channel, error) {
	ch, ok := r.o.Offline.Channel(c.Name)
	if !ok {
		return ch, permanent{fmt.Errorf("channel %q is in the plan but not in the STAN directory %s: re-run `stanmigrate plan --stan-dir`, or set skip: true for it: %w",
			c.Name, r.o.Offline.Dir(), ErrChannelGone)}
	}
	if ch.Err != nil {
		return ch, permanent{fmt.Errorf("%w: %w", ch.Err, ErrUnreadable)}
	}
	return ch, nil
}

// readStore feeds the attempt from the directory, in sequence order, until
// the target or an error.
func (a *attempt) readStore(st *stanstore.Store) {
	it, err := st.Messages(a.c.Name, a.from)
	if err != nil {
		a.fail(permanent{fmt.Errorf("%w: %w", err, ErrUnreadable)})
		return
	}
	defer it.Close()
	target := a.target.Load()
	for {
		m, err := it.Next()
		if errors.Is(err, io.EOF) {
			// Sequences at the end the store does not hold still count:
			// placeholders keep stream sequence == channel sequence.
			a.offerEnd(target)
			return
		}
		if err != nil {
			a.fail(permanent{fmt.Errorf("%w: %w", err, ErrUnreadable)})
			return
		}
		if m.Sequence > target {
			return
		}
		if !a.offer(&stan.Msg{MsgProto: *m}) {
			return
		}
	}
}

// offer is onMsg for the directory: every jump in sequence is a real gap
// in the store.
func (a *attempt) offer(m *stan.Msg) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.received.Add(1)
	seq := m.Sequence
	if seq < a.next {
		return true
	}
	if seq > a.next && !a.skipTo(seq) {
		return false
	}
	return a.publish(m, seq, false)
}

func (a *attempt) offerEnd(target uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.closed && a.next <= target && target != ^uint64(0) {
		a.skipTo(target + 1)
	}
}

// offlineDurables maps the store's durables by plan key.
func offlineDurables(ch stanstore.Channel) map[string]stanstore.Durable {
	out := map[string]stanstore.Durable{}
	for _, d := range ch.Durables() {
		out[d.Key()] = d
	}
	return out
}
