package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/jsread"
	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/plan"
)

// consumers creates one consumer per durable, after its channel is
// complete, starting at the durable's lowest unacknowledged sequence.
func (r *runner) consumers(ctx context.Context, js jetstream.JetStream, c *plan.Channel, cp *state.Checkpoint, res *ChannelResult) (bool, error) {
	if cp.Consumers == nil {
		cp.Consumers = map[string]state.ConsumerOutcome{}
	}
	sc, err := r.current(ctx, c)
	if err != nil {
		return false, fmt.Errorf("channel %q: read durables: %w", c.Name, err)
	}
	changed := false
	for i := range c.Durables {
		d := &c.Durables[i]
		if d.Skip {
			continue
		}
		out, created, err := r.consumer(ctx, js, c, d, sc, cp)
		// A failover on either side is ridden out like one mid-copy.
		for attempt := 0; err != nil && !isPermanent(err) && ctx.Err() == nil; attempt++ {
			if berr := r.backoff(ctx, attempt, Event{Channel: c.Name, Stream: c.Stream}, err); berr != nil {
				return changed, berr
			}
			if sc, err = r.current(ctx, c); err == nil {
				out, created, err = r.consumer(ctx, js, c, d, sc, cp)
			}
		}
		if err != nil {
			return changed, err
		}
		changed = changed || created
		prev := cp.Consumers[d.Key()]
		out.LastSent, out.Probed, out.Created = prev.LastSent, prev.Probed, true
		cp.Consumers[d.Key()] = out
		res.Consumers = append(res.Consumers, out)
		msg := fmt.Sprintf("%s %q for %s at sequence %d (%s)", out.Status, d.Consumer, d.Key(), out.StartSeq, out.Position)
		switch {
		case out.Acked > 0:
			msg += fmt.Sprintf(", %d message(s) STAN had acknowledged past the start acked, %d pending redelivered", out.Acked, len(out.Pending))
		case out.SeenAgain > 0:
			msg += fmt.Sprintf(", up to %d message(s) STAN had acknowledged will be delivered again (at-least-once)", out.SeenAgain)
		}
		r.o.Reporter.Event(Event{Channel: c.Name, Stream: c.Stream, Kind: EventConsumer, Message: msg})
	}
	return changed, nil
}

func (r *runner) consumer(ctx context.Context, js jetstream.JetStream, c *plan.Channel, d *plan.Durable, sc source.Channel, cp *state.Checkpoint) (ConsumerResult, bool, error) {
	out := ConsumerResult{Durable: d.Key(), Consumer: d.Consumer}
	if done, err := r.existingConsumer(ctx, js, c, d, cp, &out); done || err != nil {
		return out, false, err
	}
	cur, err := currentDurable(c, d, sc)
	if err != nil {
		return out, false, err
	}
	pos, err := r.position(ctx, c, d, cur, cp)
	if err != nil {
		return out, false, err
	}
	return r.createConsumer(ctx, js, c, d, pos, out)
}

// existingConsumer looks at a consumer already on the target: done when
// it is ours and finished (out says so); a half-built one of ours is
// removed to be built again; anything else is a conflict.
func (r *runner) existingConsumer(ctx context.Context, js jetstream.JetStream, c *plan.Channel, d *plan.Durable, cp *state.Checkpoint, out *ConsumerResult) (bool, error) {
	ci, err := jsread.ConsumerInfo(ctx, js, c.Stream, d.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("consumer %q on stream %q: %w", d.Consumer, c.Stream, err)
	}
	origin, _ := jsformat.ReadConsumerOrigin(ci.Config.Metadata)
	if !origin.Made(c.Name, d.Durable, d.QueueGroup) {
		return false, permanent{fmt.Errorf("consumer %q on stream %q exists but was not created by stanmigrate for %s: remove it or rename the consumer in the plan: %w",
			d.Consumer, c.Stream, d.Describe(c.Name), ErrConflict)}
	}
	if origin.Settled != jsformat.SettledNo {
		if diff := configDiff(ci.Config, d); diff != "" {
			return false, permanent{fmt.Errorf("consumer %q on stream %q for %s exists with %s: remove the consumer or align the plan, then re-run migrate: %w",
				d.Consumer, c.Stream, d.Describe(c.Name), diff, ErrConflict)}
		}
		prev := cp.Consumers[d.Key()]
		out.StartSeq = ci.Config.OptStartSeq
		out.Position = origin.Position
		out.Pending, out.Acked, out.SeenAgain = prev.Pending, prev.Acked, prev.SeenAgain
		out.Status = "existing"
		return true, nil
	}
	// A run died while acknowledging on this consumer: nobody has
	// consumed from it, so build it again from the recorded probe.
	if err := js.DeleteConsumer(ctx, c.Stream, d.Consumer); err != nil {
		return false, fmt.Errorf("remove half-built consumer %q on stream %q: %w", d.Consumer, c.Stream, err)
	}
	return false, nil
}

// currentDurable is the durable as STAN shows it now, or as the plan
// describes it where the source cannot list durables.
func currentDurable(c *plan.Channel, d *plan.Durable, sc source.Channel) (source.Durable, error) {
	cur, found := sc.Durable(d.Key())
	if !found && sc.DurablesKnown {
		return cur, permanent{fmt.Errorf("%s is no longer on STAN: re-run `stanmigrate plan`, or set skip: true for it: %w", d.Describe(c.Name), ErrChannelGone)}
	}
	if !found {
		cur = source.Durable{DurableID: d.DurableID, Online: d.Online, MaxInflight: d.MaxInflight, AckWait: d.AckWait.D(),
			LastSent: d.LastSent, PendingCount: -1}
	}
	return cur, nil
}

// position learns the durable's position: from an earlier run's probe,
// from monitoring when nothing is pending, else by probing (taking over
// the probe of a run that died mid-probe).
func (r *runner) position(ctx context.Context, c *plan.Channel, d *plan.Durable, cur source.Durable, cp *state.Checkpoint) (source.Position, error) {
	prev := cp.Consumers[d.Key()]
	probeID, takeOver, err := r.probeHolder(c, d, cur, prev)
	if err != nil {
		return source.Position{}, err
	}
	if prev.Probed {
		// An earlier run probed already. Probing again would see the
		// messages the first probe was sent as pending too, so the
		// first answer is the true one.
		return source.Position{LastSent: prev.LastSent, Pending: prev.Pending, How: jsformat.Probed}, nil
	}
	po := source.ProbeOptions{
		ClientID: probeID,
		TakeOver: takeOver,
		Intent: func(clientID string) error {
			intent := prev
			intent.Consumer = d.Consumer
			intent.Probe = &state.ProbeIntent{ClientID: clientID, Started: time.Now().UTC(), LastSent: cur.LastSent}
			cp.Consumers[d.Key()] = intent
			return r.save(cp)
		},
		Resumed: func(clientID string) {
			r.o.Reporter.Event(Event{Channel: c.Name, Stream: c.Stream, Kind: EventProbing,
				Message: fmt.Sprintf("%s resumed as client %q to learn its unacknowledged messages", d.Key(), clientID)})
		},
	}
	pos, err := r.src.Position(ctx, c.Name, cur, po)
	if errors.Is(err, source.ErrOwnerOnline) {
		err = permanent{fmt.Errorf("%w: %w", err, ErrOwnerOnline)}
	}
	if err != nil {
		return pos, err
	}
	if pos.How == jsformat.Probed {
		// A probe moves the durable on STAN: record its answer before
		// the consumer exists, so a re-run never probes again.
		cp.Consumers[d.Key()] = state.ConsumerOutcome{Consumer: d.Consumer, Position: jsformat.Probed, Pending: pos.Pending, LastSent: pos.LastSent, Probed: true}
		if err := r.save(cp); err != nil {
			return pos, fmt.Errorf("record the probe of %s: %w", d.Describe(c.Name), err)
		}
	}
	return pos, nil
}

// probeHolder: an online durable is refused, unless the holder is our
// own probe of a run that died mid-probe (its client stays registered
// until STAN's heartbeats fail), which the probe then takes over. The
// checkpoint names it; without one (the state was lost, or a fresh run)
// a queue group held only by a client id of ours is ours too.
func (r *runner) probeHolder(c *plan.Channel, d *plan.Durable, cur source.Durable, prev state.ConsumerOutcome) (string, bool, error) {
	probeID := ""
	if prev.Probe != nil {
		probeID = prev.Probe.ClientID
	}
	if !cur.Online {
		return probeID, false, nil
	}
	switch {
	case probeID != "" && heldOnlyBy(cur, probeID):
	case source.HeldByProbe(cur):
		probeID = cur.Members[0]
	default:
		return "", false, permanent{fmt.Errorf("%s: owner is online: stop the application, then re-run migrate: %w", d.Describe(c.Name), ErrOwnerOnline)}
	}
	r.o.Reporter.Event(Event{Channel: c.Name, Stream: c.Stream, Kind: EventProbing,
		Message: fmt.Sprintf("%s is held by client %q, the probe of a run that stopped mid-probe: taking it over", d.Key(), probeID)})
	return probeID, true, nil
}

// createConsumer makes the consumer at the durable's position and, for
// exact state, acknowledges what STAN had acknowledged past its start.
func (r *runner) createConsumer(ctx context.Context, js jetstream.JetStream, c *plan.Channel, d *plan.Durable, pos source.Position, out ConsumerResult) (ConsumerResult, bool, error) {
	// Only what is still in the channel can be delivered again.
	for _, s := range pos.Pending {
		if s >= c.FirstSeq {
			out.Pending = append(out.Pending, s)
		}
	}
	out.Position = pos.How
	out.StartSeq = pos.Start(c.FirstSeq)
	lastSent := pos.LastSent
	// Between the start and last_sent lie the pending messages, which
	// STAN would redeliver, and the ones it had acknowledged.
	acked := uint64(0)
	if lastSent >= out.StartSeq {
		acked = lastSent - out.StartSeq + 1 - uint64(countIn(out.Pending, out.StartSeq, lastSent))
	}
	final := consumerConfig(c, d, out)
	if acked > 0 && !r.o.AtLeastOnce {
		n, err := r.settle(ctx, js, c, d, final, lastSent, out.Pending)
		if err != nil {
			return out, true, fmt.Errorf("consumer %q on stream %q for %s: reproduce STAN's acknowledged set: %w", d.Consumer, c.Stream, d.Describe(c.Name), err)
		}
		out.Acked = n
		out.Status = "created"
		return out, true, nil
	}
	out.SeenAgain = acked
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

// consumerConfig is the consumer a durable becomes, at out's start.
func consumerConfig(c *plan.Channel, d *plan.Durable, out ConsumerResult) jetstream.ConsumerConfig {
	final := jetstream.ConsumerConfig{
		Durable:       d.Consumer,
		Description:   "migrated from " + d.Describe(c.Name),
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   out.StartSeq,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       d.AckWait.D(),
		MaxAckPending: d.MaxInflight,
		Metadata: jsformat.ConsumerOrigin{
			Channel: c.Name, ClientID: d.ClientID, Durable: d.Durable, QueueGroup: d.QueueGroup,
			Start: out.StartSeq, Position: out.Position,
		}.Metadata(),
	}
	if d.Mode == plan.ModePush {
		final.DeliverSubject = d.DeliverTo
		final.DeliverGroup = d.QueueGroup
	}
	return final
}

// heldOnlyBy reports whether the only online holder of the durable is
// the given client id (a plain durable's owner id, or every online member
// of a queue group).
func heldOnlyBy(d source.Durable, clientID string) bool {
	if d.QueueGroup == "" {
		return d.ClientID == clientID
	}
	if len(d.Members) == 0 {
		return false
	}
	for _, m := range d.Members {
		if m != clientID {
			return false
		}
	}
	return true
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
