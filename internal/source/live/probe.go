package live

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nuid"
	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/source"
)

// Position is exact from last_sent when nothing is pending; otherwise the
// durable is probed. A durable whose pending count is unknown (listed in
// the plan by hand) is always probed, and the probe then also tells its
// last_sent.
func (b *base) Position(ctx context.Context, channel string, d source.Durable, o source.ProbeOptions) (source.Position, error) {
	if d.Stored != nil {
		return *d.Stored, nil
	}
	if d.PendingCount == 0 && !o.TakeOver {
		return source.Position{LastSent: d.LastSent, How: jsformat.Exact}, nil
	}
	pr, err := b.probe(ctx, channel, d, o)
	if err != nil {
		return source.Position{}, err
	}
	lastSent := d.LastSent
	if d.PendingCount < 0 && pr.lastSent > 0 {
		lastSent = pr.lastSent
	}
	if n := len(pr.pending); n > 0 {
		lastSent = max(lastSent, pr.pending[n-1])
	}
	return source.Position{LastSent: lastSent, Pending: pr.pending, How: jsformat.Probed}, nil
}

// probeResult is what a probe learned: the pending set, and last_sent as
// the sequence before the first new message STAN sent (0 if none came).
type probeResult struct {
	pending  []uint64
	lastSent uint64
}

// probe learns a durable's unacknowledged sequences by resuming it the
// way its owner would: same client id (for a plain durable), same durable
// name, the durable's own max_inflight and ack_wait (the server stores
// whatever the resuming subscriber asks for), manual acks, never acking.
// STAN redelivers every pending message in ascending order. Close, never
// Unsubscribe: Unsubscribe would delete the durable.
func (b *base) probe(ctx context.Context, channel string, d source.Durable, o source.ProbeOptions) (probeResult, error) {
	clientID := d.ClientID
	if d.QueueGroup != "" {
		clientID = o.ClientID
		if clientID == "" {
			clientID = source.ProbeClientPrefix + nuid.Next()
		}
	}
	if o.Intent != nil {
		if err := o.Intent(clientID); err != nil {
			return probeResult{}, fmt.Errorf("probe %s: record the probe before it starts: %w", d.Describe(channel), err)
		}
	}
	sc, err := conn.ConnectSTAN(ctx, b.o.STAN, b.o.ClusterID, clientID, nil)
	if err != nil && strings.Contains(err.Error(), "clientID already registered") {
		// STAN asked the registered client whether it is alive, and it
		// answered: the owner (or whoever holds the client id) is online.
		return probeResult{}, fmt.Errorf("%s: client id %q is held by a live connection: stop the application, then re-run migrate: %w", d.Describe(channel), clientID, source.ErrOwnerOnline)
	}
	if err != nil {
		return probeResult{}, fmt.Errorf("probe %s: %w", d.Describe(channel), b.unanswered(err))
	}
	defer sc.Close()
	got := make(chan *stan.Msg, d.MaxInflight+16)
	cb := func(m *stan.Msg) {
		select {
		case got <- m:
		default:
		}
	}
	opts := []stan.SubscriptionOption{
		stan.DurableName(d.Durable), stan.SetManualAckMode(),
		stan.MaxInflight(d.MaxInflight), stan.AckWait(max(d.AckWait, time.Second)), stan.DeliverAllAvailable(),
	}
	if d.QueueGroup != "" {
		_, err = sc.SC.QueueSubscribe(channel, d.QueueGroup, cb, opts...)
	} else {
		_, err = sc.SC.Subscribe(channel, cb, opts...)
	}
	if err != nil {
		return probeResult{}, fmt.Errorf("probe %s: resume durable: %v: is the owner still connected? %w", d.Describe(channel), err, source.ErrOwnerOnline)
	}
	if o.Resumed != nil {
		o.Resumed(clientID)
	}
	var seqs []uint64
	done := func(lastSent uint64) (probeResult, error) {
		slices.Sort(seqs)
		return probeResult{pending: slices.Compact(seqs), lastSent: lastSent}, nil
	}
	idle := time.NewTimer(probeIdle)
	defer idle.Stop()
	for {
		select {
		case m := <-got:
			if !m.Redelivered {
				// New messages follow the redelivered ones: the pending
				// set is complete.
				return done(m.Sequence - 1)
			}
			seqs = append(seqs, m.Sequence)
			if len(seqs) >= d.PendingCount && d.PendingCount > 0 {
				return done(0)
			}
			idle.Reset(time.Second)
		case <-idle.C:
			return done(0)
		case <-ctx.Done():
			return probeResult{}, ctx.Err()
		}
	}
}
