package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/jsread"
	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/plan"
)

// consumers checks each planned durable's consumer: it exists, starts
// where STAN would resume the durable, and carries the planned ack wait
// and max ack pending. sc is the channel as the source holds it now.
func consumers(ctx context.Context, js jetstream.JetStream, c *plan.Channel, sc source.Channel) ([]ConsumerReport, error) {
	var out []ConsumerReport
	for i := range c.Durables {
		d := &c.Durables[i]
		if d.Skip {
			continue
		}
		r := ConsumerReport{Channel: c.Name, Stream: c.Stream, Durable: d.Key(), Consumer: d.Consumer}
		var problems []string
		say := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
		l, known := sc.Durable(d.Key())
		if sc.DurablesKnown && !known {
			say("STAN no longer has this durable")
		}
		known = known && sc.DurablesKnown
		// A source that holds the pending set (a store directory) gives
		// the lowest unacknowledged sequence exactly: it is then the
		// expected start, whatever the consumer recorded.
		var exact uint64
		haveExact := known && l.Stored != nil
		if haveExact {
			exact = l.Stored.Start(sc.FirstSeq)
		}

		ci, err := jsread.ConsumerInfo(ctx, js, c.Stream, d.Consumer)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
			r.Expected = expectedExact(d, l, known, c)
			if haveExact {
				r.Expected = exact
			}
			say("consumer not found")
		case err != nil:
			return nil, fmt.Errorf("consumer %q on stream %q: %w", d.Consumer, c.Stream, err)
		default:
			cfg := ci.Config
			origin, ours := jsformat.ReadConsumerOrigin(cfg.Metadata)
			r.Actual = cfg.OptStartSeq
			r.Position = string(origin.Position)
			if ours && !origin.Made(c.Name, d.Durable, d.QueueGroup) {
				say("its metadata names channel %q, durable %q, queue group %q: it was not made for this durable",
					origin.Channel, origin.Durable, origin.QueueGroup)
			}
			if origin.Settled == jsformat.SettledNo {
				say("migrate stopped while reproducing STAN's acknowledged set on it: re-run migrate")
			}
			switch {
			case haveExact:
				r.Expected = exact
			case origin.Position == jsformat.Probed || origin.Position == jsformat.Stored:
				// A probe (or the store files, for a migration from a
				// directory) gave the lowest unacknowledged sequence,
				// which monitoring cannot show; trust the recorded start
				// while STAN's durable still agrees with it.
				if !origin.StartValid() {
					say("metadata %s is %q, not a sequence", jsformat.MetaStart, origin.StartText)
				}
				r.Expected = origin.Start
				if known {
					if l.Online {
						say("the durable's owner is online on STAN, so its position may have moved since the probe")
					}
					if l.PendingCount == 0 && l.LastSent+1 < origin.Start {
						say("STAN has nothing pending and would resume at sequence %d, before the probed start %d", l.LastSent+1, origin.Start)
					}
				}
			default:
				r.Expected = expectedExact(d, l, known, c)
			}
			if cfg.DeliverPolicy != jetstream.DeliverByStartSequencePolicy {
				say("delivers by policy %q, not from a start sequence (expected sequence %d)", cfg.DeliverPolicy.String(), r.Expected)
			} else if r.Actual != r.Expected {
				say("starts at sequence %d, expected %d", r.Actual, r.Expected)
			}
			if d.AckWait > 0 && cfg.AckWait != d.AckWait.D() {
				say("ack wait %v, the plan says %v", cfg.AckWait, d.AckWait.D())
			}
			if d.MaxInflight > 0 && cfg.MaxAckPending != d.MaxInflight {
				say("max ack pending %d, the plan's max_inflight is %d", cfg.MaxAckPending, d.MaxInflight)
			}
		}
		r.OK = len(problems) == 0
		if !r.OK {
			r.Problem = fmt.Sprintf("consumer %q on stream %q for %s: %s", d.Consumer, c.Stream, d.Describe(c.Name), strings.Join(problems, "; "))
		}
		out = append(out, r)
	}
	return out, nil
}

// expectedExact is where STAN resumes a durable with nothing pending.
// The channel's first sequence is the plan's: migrate positioned the
// stream and the consumer with it.
func expectedExact(d *plan.Durable, l source.Durable, known bool, c *plan.Channel) uint64 {
	lastSent := d.LastSent
	if known {
		lastSent = l.LastSent
	}
	return max(lastSent+1, c.FirstSeq)
}
