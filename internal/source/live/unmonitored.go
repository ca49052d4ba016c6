package live

import (
	"context"
	"fmt"

	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/source"
)

// Unmonitored is a live STAN server started without monitoring: the
// operator lists channels and durables in the plan by hand. A channel's
// bounds are learned by subscribing (start at the last received, then at
// the first available), every durable is probed, and whether a channel
// or durable still exists cannot be told without creating it.
type Unmonitored struct {
	base
	planned map[string]source.Channel
	order   []string
}

var _ source.Source = (*Unmonitored)(nil)

// NewUnmonitored returns the source for the planned channels and durables.
// Planned durables' pending counts are unknown (every one is probed).
func NewUnmonitored(o Options, planned []source.Channel) *Unmonitored {
	u := &Unmonitored{base: newBase(o), planned: map[string]source.Channel{}}
	for _, c := range planned {
		c.DurablesKnown, c.Counted = false, false
		for i := range c.Durables {
			c.Durables[i].PendingCount = -1
			c.Durables[i].Stored = nil
		}
		u.planned[c.Name] = c
		u.order = append(u.order, c.Name)
	}
	return u
}

// Info says what is known without monitoring.
func (u *Unmonitored) Info(context.Context) (source.Info, error) {
	in := source.Info{ClusterID: u.o.ClusterID, Name: fmt.Sprintf("STAN cluster %q", u.o.ClusterID)}
	if url, _, err := u.o.STAN.Resolved(); err == nil {
		in.URL = conn.Redact(url)
	}
	return in, nil
}

// Channels are the planned channels as planned.
func (u *Unmonitored) Channels(context.Context) ([]source.Channel, error) {
	out := make([]source.Channel, 0, len(u.order))
	for _, n := range u.order {
		out = append(out, u.planned[n])
	}
	return out, nil
}

// Channel learns the channel's bounds by subscribing. An empty channel
// says nothing, so its position comes from the plan. Subscribing creates a
// channel STAN does not have, so ErrNoChannel is never returned.
func (u *Unmonitored) Channel(ctx context.Context, name string) (source.Channel, error) {
	c, ok := u.planned[name]
	if !ok {
		c = source.Channel{Name: name}
	}
	s, err := u.session(ctx)
	if err != nil {
		return source.Channel{}, err
	}
	last, err := oneMsg(ctx, s, name, u.o.LearnTimeout, stan.StartWithLastReceived())
	if err != nil {
		return source.Channel{}, fmt.Errorf("learn the last sequence: %w", err)
	}
	switch {
	case last == nil && c.Msgs == 0:
		// Empty as planned.
	case last == nil:
		// Everything the plan saw has expired since.
		c.FirstSeq = c.LastSeq + 1
	default:
		c.LastSeq = last.Sequence
		first, err := oneMsg(ctx, s, name, u.o.LearnTimeout, stan.DeliverAllAvailable())
		if err != nil {
			return source.Channel{}, fmt.Errorf("learn the first sequence: %w", err)
		}
		c.FirstSeq = 1
		if first != nil && first.Sequence <= c.LastSeq {
			c.FirstSeq = first.Sequence
		}
	}
	c.Msgs, c.Bytes = 0, 0
	if !c.Empty() {
		// Only the range is known: STAN removes messages only from the
		// front (clustered gap-fill placeholders would make this an
		// overcount).
		c.Msgs = c.LastSeq - c.FirstSeq + 1
	}
	return c, nil
}
