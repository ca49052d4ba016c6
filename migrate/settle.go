package migrate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/jsread"
	"github.com/stanmigrate/stanmigrate/plan"
)

const (
	// settleBatch is how many messages one fetch asks for while settling.
	settleBatch = 256
	// settleAckWait keeps held messages from being redelivered to the
	// migrator itself while it walks a long acknowledged range.
	settleAckWait = 5 * time.Minute
	// settleIdle is how long settling waits for the next message before
	// asking the server whether anything is left to deliver.
	settleIdle = 2 * time.Second
)

// settle creates the consumer and reproduces STAN's acknowledged set on
// it: every message between the start and last_sent that STAN had
// acknowledged is delivered to the migrator and acked, the pending ones are
// held and then handed back for redelivery. The application then sees
// exactly what STAN would have redelivered, in order, followed by the
// messages STAN had not sent yet. The consumer carries MetaSettled "no"
// until the end so a crash in between is detected and the consumer
// rebuilt. It returns how many messages it acknowledged.
func (r *runner) settle(ctx context.Context, js jetstream.JetStream, c *plan.Channel, d *plan.Durable, final jetstream.ConsumerConfig, lastSent uint64, pending []uint64) (uint64, error) {
	last, err := lastStoredAtOrBelow(ctx, js, c.Stream, lastSent, final.OptStartSeq)
	if err != nil {
		return 0, err
	}
	work := final
	work.Metadata = maps.Clone(final.Metadata)
	work.Metadata[jsformat.MetaSettled] = jsformat.SettledNo
	work.AckWait = max(final.AckWait, settleAckWait)
	final.Metadata = maps.Clone(final.Metadata)
	final.Metadata[jsformat.MetaSettled] = jsformat.SettledYes

	s := settler{pending: pending, last: last, seen: final.OptStartSeq - 1}
	if d.Mode == plan.ModePush {
		err = s.push(ctx, r.nc, js, c.Stream, work, final)
	} else {
		err = s.pull(ctx, js, c.Stream, work, final)
	}
	return s.acked, err
}

// lastStoredAtOrBelow finds the highest sequence at or below lastSent that
// the stream holds, so settling knows where to stop even when the
// durable's last_sent was a sequence STAN skipped.
func lastStoredAtOrBelow(ctx context.Context, js jetstream.JetStream, stream string, lastSent, floor uint64) (uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %q: %w", stream, err)
	}
	for seq := lastSent; seq >= floor && seq > 0; seq-- {
		_, err := s.GetMsg(ctx, seq)
		if err == nil {
			return seq, nil
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, fmt.Errorf("stream %q: read sequence %d: %w", stream, seq, err)
		}
	}
	return 0, nil
}

// settler walks one consumer from its start to last: acks what is not
// pending, holds the rest.
type settler struct {
	pending []uint64 // sorted
	last    uint64   // stop once this sequence has been delivered
	seen    uint64   // highest stream sequence delivered so far
	acked   uint64
	held    int
	// dseq is the highest consumer sequence received: deliveries the
	// server made that never arrived are the difference to its count.
	dseq uint64
}

func (s *settler) isPending(seq uint64) bool {
	_, ok := slices.BinarySearch(s.pending, seq)
	return ok
}

// take handles one delivery (stream and consumer sequence, delivery
// count): it acks what STAN had acknowledged and reports whether the
// message is newly held.
func (s *settler) take(seq, dseq, delivered uint64, ack func() error) (held bool, err error) {
	s.dseq = max(s.dseq, dseq)
	if seq <= s.seen && delivered > 1 {
		// A held message come back: it stays held.
		return false, nil
	}
	s.seen = max(s.seen, seq)
	if seq > s.last || s.isPending(seq) {
		s.held++
		return true, nil
	}
	if err := ack(); err != nil {
		return false, fmt.Errorf("ack sequence %d: %w", seq, err)
	}
	s.acked++
	return false, nil
}

// want is how many messages to ask for next without running past last
// (exact unless the stream has deleted sequences before last).
func (s *settler) want() int {
	return int(min(settleBatch, s.last-s.seen))
}

func (s *settler) pull(ctx context.Context, js jetstream.JetStream, stream string, work, final jetstream.ConsumerConfig) error {
	work.MaxAckPending = max(final.MaxAckPending, len(s.pending)+settleBatch)
	cons, err := js.CreateConsumer(ctx, stream, work)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	var held []jetstream.Msg
fetch:
	for s.seen < s.last {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch, err := cons.Fetch(s.want(), jetstream.FetchMaxWait(settleIdle))
		if err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("message metadata: %w", err)
			}
			h, err := s.take(md.Sequence.Stream, md.Sequence.Consumer, md.NumDelivered, m.Ack)
			if err != nil {
				return err
			}
			if h {
				held = append(held, m)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("fetch: %w", err)
		}
		if n == 0 {
			done, err := nothingLeft(ctx, js, stream, cons, s.seen+1, s.last)
			if err != nil {
				return err
			}
			if done {
				break fetch
			}
		}
	}
	// Naks in ascending order: the held messages come back in that order,
	// ahead of anything not yet delivered.
	for _, m := range held {
		if err := m.Nak(); err != nil {
			return fmt.Errorf("hand back pending messages: %w", err)
		}
	}
	if err := s.waitAcksApplied(ctx, cons); err != nil {
		return err
	}
	if _, err := js.UpdateConsumer(ctx, stream, final); err != nil {
		return fmt.Errorf("apply the durable's ack wait and max inflight: %w", err)
	}
	return nil
}

// push settles a push consumer through a private deliver subject, then
// points it at the planned one. Changing the deliver subject makes the
// server redeliver everything pending, in sequence order. A push consumer
// sends ahead of acks, so a few messages past last_sent may reach the
// migrator and be redelivered to the application with a delivery count of
// 2; MaxAckPending keeps that number small.
func (s *settler) push(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, stream string, work, final jetstream.ConsumerConfig) error {
	inbox := nats.NewInbox()
	var sub *nats.Subscription
	var err error
	if work.DeliverGroup != "" {
		sub, err = nc.QueueSubscribeSync(inbox, work.DeliverGroup)
	} else {
		sub, err = nc.SubscribeSync(inbox)
	}
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	work.DeliverSubject = inbox
	work.MaxAckPending = len(s.pending) + 32
	cons, err := js.CreatePushConsumer(ctx, stream, work)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	next := func() (*nats.Msg, error) {
		c, cancel := context.WithTimeout(ctx, settleIdle)
		defer cancel()
		return sub.NextMsgWithContext(c)
	}
	for s.seen < s.last {
		m, err := next()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			done, err := nothingLeft(ctx, js, stream, cons, s.seen+1, s.last)
			if err != nil {
				return err
			}
			if done {
				break
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("message metadata: %w", err)
		}
		// Held messages need no handle: changing the deliver subject
		// hands them back.
		if _, err := s.take(md.Sequence.Stream, md.Sequence.Consumer, md.NumDelivered, func() error { return m.Ack() }); err != nil {
			return err
		}
	}
	// The server pushes ahead of acks: stop receiving before pointing the
	// consumer elsewhere (the server refuses while the old subject has
	// interest).
	if err := sub.Unsubscribe(); err != nil {
		return fmt.Errorf("unsubscribe: %w", err)
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := nc.FlushWithContext(fctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if err := s.waitAcksApplied(ctx, cons); err != nil {
		return err
	}
	if _, err := js.UpdatePushConsumer(ctx, stream, final); err != nil {
		return fmt.Errorf("apply the planned deliver subject, ack wait and max inflight: %w", err)
	}
	return nil
}

type infoer interface {
	Info(context.Context) (*jetstream.ConsumerInfo, error)
}

// nothingLeft tells whether the consumer has nothing more to deliver up
// to the last sequence to settle (messages between may have been deleted).
// The consumer's pending count alone is not enough: right after a stream
// or consumer leader change it can read zero for a moment, and settling
// with messages left would leave some STAN had acknowledged unacknowledged.
// So the stream is asked too whether it holds any message in from..to.
func nothingLeft(ctx context.Context, js jetstream.JetStream, stream string, cons infoer, from, to uint64) (bool, error) {
	info, err := cons.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("consumer info: %w", err)
	}
	if info.NumPending != 0 {
		return false, nil
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return false, fmt.Errorf("stream %q: %w", stream, err)
	}
	next, err := jsread.NextStored(ctx, s, from)
	if err != nil {
		return false, fmt.Errorf("stream %q: look for a message from sequence %d: %w", stream, from, err)
	}
	return next == 0 || next > to, nil
}

// waitAcksApplied waits until the server has applied every ack sent: what
// stays unacknowledged is the held messages plus deliveries that never
// reached the migrator. Acks travel apart from API requests, so without
// this wait the final configuration could go live before the last acks.
func (s *settler) waitAcksApplied(ctx context.Context, cons infoer) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			return fmt.Errorf("consumer info: %w", err)
		}
		expect := s.held + int(info.Delivered.Consumer-min(info.Delivered.Consumer, s.dseq))
		if info.NumAckPending <= expect {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server still holds %d unacknowledged message(s), expected %d", info.NumAckPending, expect)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
