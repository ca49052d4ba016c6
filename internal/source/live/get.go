package live

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/source"
)

// Get reads the message at seq with a one-message subscription; nil when
// STAN sends none there within getTimeout.
func (b *base) Get(ctx context.Context, channel string, seq uint64) (*source.Msg, error) {
	s, err := b.session(ctx)
	if err != nil {
		return nil, err
	}
	m, err := oneMsg(ctx, s, channel, getTimeout, stan.StartAtSequence(seq))
	if err != nil || m == nil || m.Sequence != seq {
		return nil, err
	}
	msg := source.NewMsg(m.Sequence, m.Subject, m.Data, m.Timestamp, false, nil, nil)
	return &msg, nil
}

// oneMsg subscribes at a start position and returns the first message
// delivered, or nil after wait.
func oneMsg(ctx context.Context, s *session, channel string, wait time.Duration, start stan.SubscriptionOption) (*stan.Msg, error) {
	got := make(chan *stan.Msg, 1)
	sub, err := s.sc.SC.Subscribe(channel, func(m *stan.Msg) {
		select {
		case got <- m:
		default:
		}
	}, start, stan.MaxInflight(1))
	if err != nil {
		return nil, fmt.Errorf("channel %q: subscribe: %w", channel, err)
	}
	// A non-durable subscription: unsubscribing drops only our cursor.
	defer func() { _ = sub.Unsubscribe() }()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case m := <-got:
		return m, nil
	case <-t.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
