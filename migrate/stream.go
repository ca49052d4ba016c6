package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/apilevel"
	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/plan"
)

// Short dedup window while replaying: the expected-sequence check makes
// re-runs exactly-once, the Msg-Id only has to cover retries within a run,
// and every remembered id costs server memory and time: at 100k msgs/s a
// 10 s window keeps a million ids in a map the server's GC must scan.
// 100 ms is the least the server accepts. Measured against 1 s in one
// benchmark run (median of 5 interleaved rounds, a column added for the
// purpose): 83% vs 79% of the pipelined ceiling at 128 B, 81% vs 79% at
// 1 KiB. An earlier single pair had 10 s at 56% against 1 s at 113%.
const replayDuplicateWindow = 100 * time.Millisecond

// ensureStream creates the stream positioned at the channel's first
// sequence, or checks that an existing one is ours.
func (r *runner) ensureStream(ctx context.Context, js jetstream.JetStream, c *plan.Channel) (jetstream.Stream, bool, error) {
	want := r.streamConfig(c, true)
	created := false
	var s jetstream.Stream
	var err error
	for attempt := 0; ; attempt++ {
		s, err = js.Stream(ctx, c.Stream)
		if err == nil {
			break
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			// The level header makes a server that lacks a setting
			// refuse the stream rather than drop the setting.
			s, err = apilevel.CreateStream(ctx, js, want)
			if err == nil {
				created = true
				break
			}
			if strings.Contains(err.Error(), "subjects overlap") {
				return nil, false, permanent{fmt.Errorf("stream %q (channel %q): subject overlaps a stream already on the target: %v: %w", c.Stream, c.Name, err, ErrConflict)}
			}
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue
			}
		}
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		if isLimitErr(err) {
			return nil, false, permanent{fmt.Errorf("create stream %q for channel %q: %v: the target account's limits are reached: raise them or free space, then re-run migrate: %w", c.Stream, c.Name, err, ErrStorage)}
		}
		if isPermanent(err) || attempt > 20 {
			return nil, false, fmt.Errorf("create stream %q for channel %q: %w", c.Stream, c.Name, err)
		}
		if err := r.backoff(ctx, attempt, Event{Channel: c.Name, Stream: c.Stream}, err); err != nil {
			return nil, false, err
		}
	}
	got := s.CachedInfo().Config
	if len(got.Subjects) != 1 || got.Subjects[0] != c.Name {
		return nil, false, permanent{fmt.Errorf("stream %q exists on the target with subjects %v, not [%s]: remove it or rename the stream in the plan: %w",
			c.Stream, got.Subjects, c.Name, ErrConflict)}
	}
	var placed *plan.Placement
	if pl := got.Placement; pl != nil && (pl.Cluster != "" || len(pl.Tags) > 0) {
		placed = &plan.Placement{Cluster: pl.Cluster, Tags: pl.Tags}
	}
	if !placed.Equal(c.Placement) {
		return nil, false, permanent{fmt.Errorf("stream %q exists with placement %s, the plan says %s: align the plan or remove the stream: %w",
			c.Stream, placed, c.Placement, ErrConflict)}
	}
	if got.Storage != want.Storage || got.Replicas != want.Replicas {
		return nil, false, permanent{fmt.Errorf("stream %q exists with storage %v and %d replica(s), the plan says %v and %d: align the plan or remove the stream: %w",
			c.Stream, got.Storage, got.Replicas, want.Storage, want.Replicas, ErrConflict)}
	}
	if err := ensureMsgTTL(ctx, js, s, c); err != nil {
		return nil, false, err
	}
	return s, created, nil
}

// streamConfig is the stream as planned; while replaying, limits stay off
// (JetStream counts bytes with headers, so STAN's byte limit could drop
// messages mid-copy) and the dedup window is short.
func (r *runner) streamConfig(c *plan.Channel, replaying bool) jetstream.StreamConfig {
	cfg := jetstream.StreamConfig{
		Name:        c.Stream,
		Description: fmt.Sprintf("NATS Streaming channel %q of cluster %q, migrated by stanmigrate", c.Name, r.p.Source.ClusterID),
		Subjects:    []string{c.Name},
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Duplicates:  c.DuplicateWindow.D(),
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Metadata:    jsformat.StreamMetadata(r.p.Source.ClusterID, c.Name),
		// Fast-ingest batches where the target has them: the cheapest
		// publish that still checks each message's expected sequence.
		AllowBatchPublish: r.batchable(),
		// Per-message TTLs keep STAN's deadlines (see expiry.go).
		AllowMsgTTL: originalExpiry(c),
	}
	if c.Storage == "memory" {
		cfg.Storage = jetstream.MemoryStorage
	}
	if pl := c.Placement; pl != nil && (pl.Cluster != "" || len(pl.Tags) > 0) {
		cfg.Placement = &jetstream.Placement{Cluster: pl.Cluster, Tags: pl.Tags}
	}
	if cfg.Duplicates == 0 {
		cfg.Duplicates = plan.DefaultDuplicateWindow
	}
	// JetStream takes max_consumers only at creation.
	if c.Limits.MaxConsumers > 0 {
		cfg.MaxConsumers = c.Limits.MaxConsumers
	}
	if replaying {
		cfg.Duplicates = min(cfg.Duplicates, replayDuplicateWindow)
		return cfg
	}
	if c.Limits.MaxMsgs > 0 {
		cfg.MaxMsgs = c.Limits.MaxMsgs
	}
	if c.Limits.MaxBytes > 0 {
		cfg.MaxBytes = c.Limits.MaxBytes
	}
	cfg.MaxAge = c.Limits.MaxAge.D()
	if cfg.MaxAge > 0 && cfg.Duplicates > cfg.MaxAge {
		cfg.Duplicates = cfg.MaxAge
	}
	return cfg
}

// finalizeStream applies the planned limits and dedup window once the
// channel is copied.
func (r *runner) finalizeStream(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, c *plan.Channel) (bool, []string, error) {
	info, err := s.Info(ctx)
	if err != nil {
		return false, nil, fmt.Errorf("stream %q: %w", c.Stream, err)
	}
	want := r.streamConfig(c, false)
	var notes []string
	// JetStream counts headers and subjects in max_bytes; never let the
	// limit we carry over drop messages STAN still holds.
	if want.MaxBytes > 0 && uint64(want.MaxBytes) < info.State.Bytes {
		notes = append(notes, fmt.Sprintf("max_bytes raised from %d to %d: JetStream counts headers and subjects, and the copied messages take %d bytes", want.MaxBytes, info.State.Bytes, info.State.Bytes))
		want.MaxBytes = int64(info.State.Bytes)
	}
	cur := info.Config
	if cur.MaxMsgs == want.MaxMsgs && cur.MaxBytes == want.MaxBytes && cur.MaxAge == want.MaxAge &&
		cur.Duplicates == want.Duplicates {
		return false, notes, nil
	}
	cur.MaxMsgs, cur.MaxBytes, cur.MaxAge, cur.Duplicates = want.MaxMsgs, want.MaxBytes, want.MaxAge, want.Duplicates
	if err := apilevel.UpdateStream(ctx, js, cur); err != nil {
		return false, notes, fmt.Errorf("stream %q: apply planned limits: %w", c.Stream, err)
	}
	return true, notes, nil
}
