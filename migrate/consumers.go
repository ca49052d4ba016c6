package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/conn"
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
	if r.o.Monitor != nil {
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
		out, created, err := r.consumer(ctx, js, c, d, live)
		if err != nil {
			return changed, err
		}
		changed = changed || created
		cp.Consumers[d.Key()] = ConsumerOutcome{Consumer: d.Consumer, StartSeq: out.StartSeq, Position: out.Position, Pending: out.Pending, Created: true}
		res.Consumers = append(res.Consumers, out)
		r.o.Reporter.Event(Event{Channel: c.Name, Stream: c.Stream, Kind: "consumer",
			Message: fmt.Sprintf("%s %q for %s at sequence %d (%s)", out.Status, d.Consumer, d.Key(), out.StartSeq, out.Position)})
	}
	return changed, nil
}

func (r *runner) consumer(ctx context.Context, js jetstream.JetStream, c *plan.Channel, d *plan.Durable, live map[string]plan.Durable) (ConsumerResult, bool, error) {
	out := ConsumerResult{Durable: d.Key(), Consumer: d.Consumer}
	if existing, err := js.Consumer(ctx, c.Stream, d.Consumer); err == nil {
		ci := existing.CachedInfo()
		if ci.Config.Metadata[MetaChannel] != c.Name || ci.Config.Metadata[MetaDurable] != d.Durable ||
			ci.Config.Metadata[MetaQueue] != d.QueueGroup {
			return out, false, permanent{fmt.Errorf("consumer %q on stream %q exists but was not created by stanmigrate for %s: remove it or rename the consumer in the plan: %w",
				d.Consumer, c.Stream, d.Describe(c.Name), ErrConflict)}
		}
		out.StartSeq = ci.Config.OptStartSeq
		out.Position = ci.Config.Metadata[MetaPosition]
		out.Status = "existing"
		return out, false, nil
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
	if pending > 0 || !known {
		seqs, err := r.probe(ctx, c, d)
		if err != nil {
			return out, false, err
		}
		out.Position = PositionProbed
		out.Pending = seqs
		if len(seqs) > 0 {
			out.StartSeq = max(seqs[0], c.FirstSeq)
		}
	}
	cfg := jetstream.ConsumerConfig{
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
	var err error
	if d.Mode == plan.ModePush {
		cfg.DeliverSubject = d.DeliverTo
		cfg.DeliverGroup = d.QueueGroup
		_, err = js.CreatePushConsumer(ctx, c.Stream, cfg)
	} else {
		_, err = js.CreateConsumer(ctx, c.Stream, cfg)
	}
	if err != nil {
		return out, false, fmt.Errorf("create consumer %q on stream %q for %s: %w", d.Consumer, c.Stream, d.Describe(c.Name), err)
	}
	out.Status = "created"
	return out, true, nil
}

// probe learns a durable's unacknowledged sequences by resuming it the way
// its owner would: same client id (for a plain durable), same durable
// name, the durable's own max_inflight and ack_wait (the server stores
// whatever the resuming subscriber asks for), manual acks, never acking.
// STAN redelivers every pending message in ascending order. Close, never
// Unsubscribe: Unsubscribe would delete the durable.
func (r *runner) probe(ctx context.Context, c *plan.Channel, d *plan.Durable) ([]uint64, error) {
	clientID := d.ClientID
	if d.QueueGroup != "" {
		clientID = "stanmigrate-probe-" + nuid.Next()[:10]
	}
	sc, err := conn.ConnectSTAN(ctx, r.o.Source, r.o.ClusterID, clientID, nil)
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", d.Describe(c.Name), err)
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
		return nil, fmt.Errorf("probe %s: resume durable: %v: is the owner still connected? %w", d.Describe(c.Name), err, ErrOwnerOnline)
	}
	var seqs []uint64
	idle := time.NewTimer(2 * time.Second)
	defer idle.Stop()
	for {
		select {
		case m := <-got:
			if !m.Redelivered {
				// New messages follow the redelivered ones: the pending
				// set is complete.
				slices.Sort(seqs)
				return slices.Compact(seqs), nil
			}
			seqs = append(seqs, m.Sequence)
			if len(seqs) >= d.Pending && d.Pending > 0 {
				slices.Sort(seqs)
				return slices.Compact(seqs), nil
			}
			idle.Reset(time.Second)
		case <-idle.C:
			slices.Sort(seqs)
			return slices.Compact(seqs), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
