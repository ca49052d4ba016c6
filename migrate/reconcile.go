package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/digest"
	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/plan"
)

// reconcile aligns the stream, the checkpoint and the running hash before
// an attempt. The stream wins: publishes in flight when a previous run
// died may have landed after its last checkpoint.
func (r *runner) reconcile(ctx context.Context, s jetstream.Stream, c *plan.Channel, cp *state.Checkpoint, info *jetstream.StreamInfo, d *digest.Channel) (*digest.Channel, error) {
	st := info.State
	if st.Msgs > 0 && st.LastSeq+1 < c.FirstSeq {
		// Messages that all lie before the channel's first sequence:
		// someone else's data (a conflict), or ours from a run before
		// STAN dropped them, which the purge below lets go.
		if err := r.checkOwnership(ctx, s, c, st.LastSeq); err != nil {
			return d, err
		}
	}
	if st.LastSeq+1 < c.FirstSeq {
		// Position the stream so that its next sequence is the
		// channel's first (purge works on every server version; the
		// first_seq stream setting loses data on some, see plan).
		if err := s.Purge(ctx, jetstream.WithPurgeSequence(c.FirstSeq)); err != nil {
			return d, fmt.Errorf("stream %q: position at sequence %d: %w", c.Stream, c.FirstSeq, err)
		}
		ni, err := s.Info(ctx)
		if err != nil {
			return d, err
		}
		st = ni.State
	}
	if st.LastSeq >= c.FirstSeq {
		if positioned := max(c.FirstSeq, cp.FirstSeq); !cp.Done && st.FirstSeq > positioned && !r.stanDropped(ctx, c, st.FirstSeq) && !r.expiredBefore(ctx, c, st.FirstSeq) {
			return d, permanent{fmt.Errorf("stream %q starts at %d but was positioned at %d and no limits were applied yet: the target lost messages (a restart of an affected nats-server release?): delete the stream and re-run: %w",
				c.Stream, st.FirstSeq, positioned, ErrStreamLost)}
		}
		if st.Msgs+uint64(st.NumDeleted) < st.LastSeq-st.FirstSeq+1 {
			return d, permanent{fmt.Errorf("stream %q holds %d message(s) for sequences %d..%d: the target lost messages: delete the stream and re-run: %w",
				c.Stream, st.Msgs, st.FirstSeq, st.LastSeq, ErrStreamLost)}
		}
		if err := r.checkOwnership(ctx, s, c, st.LastSeq); err != nil {
			return d, err
		}
	}
	if d == nil {
		var err error
		if d, err = cp.Digest(); err != nil {
			d = digest.New()
		}
	}
	if d.Count > 0 && (d.Last > st.LastSeq || d.First < c.FirstSeq) {
		d = digest.New() // checkpoint ahead of the stream: rebuild from the stream
	}
	from := d.Last + 1
	if d.Count == 0 {
		from = max(st.FirstSeq, c.FirstSeq)
	}
	if st.Msgs > 0 && from <= st.LastSeq {
		if err := r.rehash(ctx, s, d, from, st.LastSeq); err != nil {
			return d, fmt.Errorf("stream %q: rebuild content hash from %d: %w", c.Stream, from, err)
		}
	}
	cp.LastSeq = max(st.LastSeq, c.FirstSeq-1)
	return d, nil
}

// stanDropped reports whether STAN itself no longer has the sequences
// before first (expired or dropped by limits since planning), which is
// why a stream repositioned past them starts there.
func (r *runner) stanDropped(ctx context.Context, c *plan.Channel, first uint64) bool {
	sc, err := r.current(ctx, c)
	return err == nil && sc.FirstSeq >= first
}

// checkOwnership makes sure the last stored message is ours, so foreign
// data is never extended or counted as migrated.
func (r *runner) checkOwnership(ctx context.Context, s jetstream.Stream, c *plan.Channel, seq uint64) error {
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil // a removed gap placeholder
	}
	if err != nil {
		return fmt.Errorf("stream %q: read message %d: %w", c.Stream, seq, err)
	}
	origin, ok := jsformat.ReadStreamOrigin(s.CachedInfo().Config.Metadata)
	streamOurs := ok && origin.Channel == c.Name && origin.Cluster == r.p.Source.ClusterID
	if !jsformat.Written(m.Header, streamOurs, r.p.Source.ClusterID, c.Name, seq) {
		return permanent{fmt.Errorf("stream %q: message %d was not written by stanmigrate as sequence %d of channel %q of cluster %q (its headers: %s): the stream holds data stanmigrate did not write for this channel: remove it or rename the stream in the plan: %w",
			c.Stream, seq, seq, c.Name, r.p.Source.ClusterID, describeHeaders(m.Header), ErrConflict)}
	}
	return nil
}

// rehash folds stored messages from..to into the running hash, reading
// them back from the stream, and removes gap placeholders a crash left.
func (r *runner) rehash(ctx context.Context, s jetstream.Stream, d *digest.Channel, from, to uint64) error {
	oc, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
	})
	if err != nil {
		return err
	}
	it, err := oc.Messages()
	if err != nil {
		return err
	}
	defer it.Stop()
	for {
		// The stream holds every sequence up to `to`, so silence means a
		// problem on the target, not the end of the data.
		nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		m, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			return err
		}
		meta, err := m.Metadata()
		if err != nil {
			return err
		}
		seq := meta.Sequence.Stream
		if seq > to {
			return nil
		}
		if m.Headers().Get(jsformat.HdrGap) != "" {
			if err := s.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return err
			}
		} else {
			d.Add(seq, m.Subject(), m.Data())
		}
		if seq >= to || meta.NumPending == 0 {
			return nil
		}
	}
}

// describeHeaders names a message's provenance headers for an error.
func describeHeaders(h map[string][]string) string {
	var parts []string
	for _, k := range []string{jsformat.HdrMsgID, jsformat.HdrChannel, jsformat.HdrSequence, jsformat.HdrTimestamp} {
		if v := h[k]; len(v) > 0 {
			parts = append(parts, fmt.Sprintf("%s %q", k, v[0]))
		}
	}
	if len(parts) == 0 {
		return "none of stanmigrate's"
	}
	return strings.Join(parts, ", ")
}
