package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/stanstore"
	"github.com/stanmigrate/stanmigrate/plan"
)

// Consumer metadata keys recording where a consumer came from; verify
// reads them back.
const (
	MetaChannel  = metaPrefix + "channel"
	MetaClientID = metaPrefix + "client_id"
	MetaDurable  = metaPrefix + "durable"
	MetaQueue    = metaPrefix + "queue_group"
	MetaStart    = metaPrefix + "start_seq"
	MetaPosition = metaPrefix + "position"
	// MetaSettled is "no" while migrate reproduces STAN's acknowledged set
	// on a new consumer and "yes" once done; a consumer left at "no" by a
	// crash is migrate's own half-built artifact and is rebuilt.
	MetaSettled = metaPrefix + "settled"
)

// Position values recorded on consumers.
const (
	PositionExact  = "exact"
	PositionProbed = "probed"
)

// consumers creates one consumer per durable, after its channel is
// complete, starting at the durable's lowest unacknowledged sequence.
func (r *runner) consumers(ctx context.Context, js jetstream.JetStream, c *plan.Channel, cp *Checkpoint, res *ChannelResult) (bool, error) {
	if cp.Consumers == nil {
		cp.Consumers = map[string]ConsumerOutcome{}
	}
	var live map[string]plan.Durable
	var stored map[string]stanstore.Durable
	if r.o.Offline != nil {
		ch, err := r.offlineChannel(c)
		if err != nil {
			return false, err
		}
		live, stored = plan.DurablesByKey(plan.Channelz(ch)), offlineDurables(ch)
	} else if r.o.Monitor != nil {
		cz, err := r.o.Monitor.Channel(ctx, c.Name)
		if err != nil {
			return false, fmt.Errorf("channel %q: read durables: %w", c.Name, err)
		}
		live = plan.DurablesByKey(cz)
	}
	changed := false
	for i := range c.Durables {
		d := &c.Durables[i]
		if d.Skip {
			continue
		}
		out, created, err := r.consumer(ctx, js, c, d, live, stored, cp)
		if err != nil {
			return changed, err
		}
		changed = changed || created
		prev := cp.Consumers[d.Key()]
		cp.Consumers[d.Key()] = ConsumerOutcome{Consumer: d.Consumer, StartSeq: out.StartSeq, Position: out.Position,
			Pending: out.Pending, LastSent: prev.LastSent, Probed: prev.Probed, Acked: out.Acked, SeenAgain: out.SeenAgain, Created: true}
		res.Consumers = append(res.Consumers, out)
		msg := fmt.Sprintf("%s %q for %s at sequence %d (%s)", out.Status, d.Consumer, d.Key(), out.StartSeq, out.Position)
		switch {
		case out.Acked > 0:
			msg += fmt.Sprintf(", %d message(s) STAN had acknowledged past the start acked, %d pending redelivered", out.Acked, len(out.Pending))
		case out.SeenAgain > 0:
			msg += fmt.Sprintf(", up to %d message(s) STAN had acknowledged will be delivered again (at-least-once)", out.SeenAgain)
		}
		r.o.Reporter.Event(Event{Channel: c.Name, Stream: c.Stream, Kind: "consumer", Message: msg})
	}
	return changed, nil
}

func (r *runner) consumer(ctx context.Context, js jetstream.JetStream, c *plan.Channel, d *plan.Durable, live map[string]plan.Durable, stored map[string]stanstore.Durable, cp *Checkpoint) (ConsumerResult, bool, error) {
	out := ConsumerResult{Durable: d.Key(), Consumer: d.Consumer}
	if ci, err := ConsumerInfo(ctx, js, c.Stream, d.Consumer); err == nil {
		if ci.Config.Metadata[MetaChannel] != c.Name || ci.Config.Metadata[MetaDurable] != d.Durable ||
			ci.Config.Metadata[MetaQueue] != d.QueueGroup {
			return out, false, permanent{fmt.Errorf("consumer %q on stream %q exists but was not created by stanmigrate for %s: remove it or rename the consumer in the plan: %w",
				d.Consumer, c.Stream, d.Describe(c.Name), ErrConflict)}
		}
		if ci.Config.Metadata[MetaSettled] != "no" {
			if diff := configDiff(ci.Config, d); diff != "" {
				return out, false, permanent{fmt.Errorf("consumer %q on stream %q for %s exists with %s: remove the consumer or align the plan, then re-run migrate: %w",
					d.Consumer, c.Stream, d.Describe(c.Name), diff, ErrConflict)}
			}
			prev := cp.Consumers[d.Key()]
			out.StartSeq = ci.Config.OptStartSeq
			out.Position = ci.Config.Metadata[MetaPosition]
			out.Pending, out.Acked, out.SeenAgain = prev.Pending, prev.Acked, prev.SeenAgain
			out.Status = "existing"
			return out, false, nil
		}
		// A run died while acknowledging on this consumer: nobody has
		// consumed from it, so build it again from the recorded probe.
		if err := js.DeleteConsumer(ctx, c.Stream, d.Consumer); err != nil {
			return out, false, fmt.Errorf("remove half-built consumer %q on stream %q: %w", d.Consumer, c.Stream, err)
		}
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return out, false, fmt.Errorf("consumer %q on stream %q: %w", d.Consumer, c.Stream, err)
	}

	lastSent, pending, online := d.LastSent, d.Pending, d.Online
	known := false
	if live != nil {
		l, ok := live[d.Key()]
		if !ok {
			return out, false, permanent{fmt.Errorf("%s is no longer on STAN: re-run `stanmigrate plan`, or set skip: true for it: %w", d.Describe(c.Name), ErrChannelGone)}
		}
		lastSent, pending, online, known = l.LastSent, l.Pending, l.Online, true
	}
	if online {
		return out, false, permanent{fmt.Errorf("%s: owner is online: stop the application, then re-run migrate: %w", d.Describe(c.Name), ErrOwnerOnline)}
	}
	out.StartSeq = max(lastSent+1, c.FirstSeq)
	out.Position = PositionExact
	if sd, ok := stored[d.Key()]; ok {
		// The store files hold the pending set: nothing to probe. Only
		// what is still in the channel can be delivered again.
		lastSent, out.Position = sd.LastSent, PositionStored
		for _, s := range sd.Pending {
			if s >= c.FirstSeq {
				out.Pending = append(out.Pending, s)
			}
		}
	} else if prev, ok := cp.Consumers[d.Key()]; ok && prev.Probed {
		// An earlier run probed already. Probing again would see the
		// messages the first probe was sent as pending too, so the
		// first answer is the true one.
		lastSent, out.Pending, out.Position = prev.LastSent, prev.Pending, PositionProbed
	} else if pending > 0 || !known {
		pr, err := r.probe(ctx, c, d)
		if err != nil {
			return out, false, err
		}
		out.Position = PositionProbed
		out.Pending = pr.pending
		if !known && pr.lastSent > 0 {
			lastSent = pr.lastSent
		}
		if n := len(pr.pending); n > 0 {
			lastSent = max(lastSent, pr.pending[n-1])
		}
		cp.Consumers[d.Key()] = ConsumerOutcome{Consumer: d.Consumer, Position: PositionProbed, Pending: pr.pending, LastSent: lastSent, Probed: true}
		if err := r.state.Save(cp); err != nil {
			return out, false, fmt.Errorf("record the probe of %s: %w", d.Describe(c.Name), err)
		}
	}
	if len(out.Pending) > 0 {
		out.StartSeq = max(out.Pending[0], c.FirstSeq)
	}
	// Between the start and last_sent lie the pending messages, which
	// STAN would redeliver, and the ones it had acknowledged.
	acked := uint64(0)
	if lastSent >= out.StartSeq {
		acked = lastSent - out.StartSeq + 1 - uint64(countIn(out.Pending, out.StartSeq, lastSent))
	}
	settle := acked > 0 && !r.o.AtLeastOnce
	if acked > 0 && r.o.AtLeastOnce {
		out.SeenAgain = acked
	}

	final := jetstream.ConsumerConfig{
		Durable:       d.Consumer,
		Description:   "migrated from " + d.Describe(c.Name),
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   out.StartSeq,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       d.AckWait.D(),
		MaxAckPending: d.MaxInflight,
		Metadata: map[string]string{
			MetaChannel:  c.Name,
			MetaClientID: d.ClientID,
			MetaDurable:  d.Durable,
			MetaQueue:    d.QueueGroup,
			MetaStart:    strconv.FormatUint(out.StartSeq, 10),
			MetaPosition: out.Position,
		},
	}
	if d.Mode == plan.ModePush {
		final.DeliverSubject = d.DeliverTo
		final.DeliverGroup = d.QueueGroup
	}
	if !settle {
		var err error
		if d.Mode == plan.ModePush {
			_, err = js.CreatePushConsumer(ctx, c.Stream, final)
		} else {
			_, err = js.CreateConsumer(ctx, c.Stream, final)
		}
		if isLimitErr(err) {
			return out, false, permanent{fmt.Errorf("create consumer %q on stream %q for %s: %v: the target account's limits are reached: raise them, then re-run migrate: %w",
				d.Consumer, c.Stream, d.Describe(c.Name), err, ErrStorage)}
		}
		if err != nil {
			return out, false, fmt.Errorf("create consumer %q on stream %q for %s: %w", d.Consumer, c.Stream, d.Describe(c.Name), err)
		}
		out.Status = "created"
		return out, true, nil
	}
	n, err := r.settle(ctx, js, c, d, final, lastSent, out.Pending)
	if err != nil {
		return out, true, fmt.Errorf("consumer %q on stream %q for %s: reproduce STAN's acknowledged set: %w", d.Consumer, c.Stream, d.Describe(c.Name), err)
	}
	out.Acked = n
	out.Status = "created"
	return out, true, nil
}

func countIn(sorted []uint64, lo, hi uint64) int {
	n := 0
	for _, s := range sorted {
		if s >= lo && s <= hi {
			n++
		}
	}
	return n
}

// probe learns a durable's unacknowledged sequences by resuming it the way
// its owner would: same client id (for a plain durable), same durable
// name, the durable's own max_inflight and ack_wait (the server stores
// whatever the resuming subscriber asks for), manual acks, never acking.
// STAN redelivers every pending message in ascending order. Close, never
// Unsubscribe: Unsubscribe would delete the durable.
// probeResult is what a probe learned: the pending set, and last_sent as
// the sequence before the first new message STAN sent (0 if none came).
type probeResult struct {
	pending  []uint64
	lastSent uint64
}

func (r *runner) probe(ctx context.Context, c *plan.Channel, d *plan.Durable) (probeResult, error) {
	clientID := d.ClientID
	if d.QueueGroup != "" {
		clientID = "stanmigrate-probe-" + nuid.Next()[:10]
	}
	sc, err := conn.ConnectSTAN(ctx, r.o.Source, r.o.ClusterID, clientID, nil)
	if err != nil {
		return probeResult{}, fmt.Errorf("probe %s: %w", d.Describe(c.Name), err)
	}
	defer sc.Close()
	got := make(chan *stan.Msg, d.MaxInflight+16)
	cb := func(m *stan.Msg) {
		select {
		case got <- m:
		default:
		}
	}
	ackWait := max(d.AckWait.D(), time.Second)
	opts := []stan.SubscriptionOption{
		stan.DurableName(d.Durable), stan.SetManualAckMode(),
		stan.MaxInflight(d.MaxInflight), stan.AckWait(ackWait), stan.DeliverAllAvailable(),
	}
	if d.QueueGroup != "" {
		_, err = sc.SC.QueueSubscribe(c.Name, d.QueueGroup, cb, opts...)
	} else {
		_, err = sc.SC.Subscribe(c.Name, cb, opts...)
	}
	if err != nil {
		return probeResult{}, fmt.Errorf("probe %s: resume durable: %v: is the owner still connected? %w", d.Describe(c.Name), err, ErrOwnerOnline)
	}
	var seqs []uint64
	done := func(lastSent uint64) (probeResult, error) {
		slices.Sort(seqs)
		return probeResult{pending: slices.Compact(seqs), lastSent: lastSent}, nil
	}
	idle := time.NewTimer(2 * time.Second)
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
			if len(seqs) >= d.Pending && d.Pending > 0 {
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

// ConsumerInfo reads a consumer's info whether it is pull or push (the
// client library opens each kind through its own call).
func ConsumerInfo(ctx context.Context, js jetstream.JetStream, stream, name string) (*jetstream.ConsumerInfo, error) {
	c, err := js.Consumer(ctx, stream, name)
	if err == nil {
		return c.CachedInfo(), nil
	}
	if !errors.Is(err, jetstream.ErrNotPullConsumer) {
		return nil, err
	}
	pc, err := js.PushConsumer(ctx, stream, name)
	if err != nil {
		return nil, err
	}
	return pc.CachedInfo(), nil
}

// configDiff says how an existing consumer differs from what the plan
// asks for ("" if it does not), so a re-run never silently keeps a
// consumer with another ack wait, window or delivery.
func configDiff(cfg jetstream.ConsumerConfig, d *plan.Durable) string {
	var diffs []string
	if d.AckWait > 0 && cfg.AckWait != d.AckWait.D() {
		diffs = append(diffs, fmt.Sprintf("ack wait %v (the plan says %v)", cfg.AckWait, d.AckWait.D()))
	}
	if d.MaxInflight > 0 && cfg.MaxAckPending != d.MaxInflight {
		diffs = append(diffs, fmt.Sprintf("max ack pending %d (the plan's max_inflight is %d)", cfg.MaxAckPending, d.MaxInflight))
	}
	wantSubject, wantGroup := "", ""
	if d.Mode == plan.ModePush {
		wantSubject, wantGroup = d.DeliverTo, d.QueueGroup
	}
	if cfg.DeliverSubject != wantSubject || cfg.DeliverGroup != wantGroup {
		diffs = append(diffs, fmt.Sprintf("deliver subject %q group %q (the plan says %q %q)", cfg.DeliverSubject, cfg.DeliverGroup, wantSubject, wantGroup))
	}
	return strings.Join(diffs, ", ")
}
