package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/digest"
	"github.com/stanmigrate/stanmigrate/internal/jsformat"
)

// Checkpoint is what the store remembers of one channel. The stream is
// the authority on what is stored; the checkpoint carries what the
// stream cannot (the running content hash, consumer outcomes, probe
// intents) and lets `status` report without touching STAN.
type Checkpoint struct {
	Channel string `json:"channel"`
	Stream  string `json:"stream"`
	// LastSeq is the highest sequence known durably stored in JetStream.
	LastSeq uint64 `json:"last_seq"`
	// TargetSeq is the channel's last sequence as seen when the run began.
	TargetSeq uint64 `json:"target_seq"`
	FirstSeq  uint64 `json:"first_seq"`
	// Hash is the serialised SHA-256 state over the messages hashed so
	// far (HashCount of them, HashFirst..HashLast).
	Hash      []byte `json:"hash,omitempty"`
	HashCount uint64 `json:"hash_count"`
	HashFirst uint64 `json:"hash_first"`
	HashLast  uint64 `json:"hash_last"`
	// Sum is the final hex digest, set when the channel is complete.
	Sum       string                     `json:"sum,omitempty"`
	Copied    uint64                     `json:"copied"`
	Bytes     uint64                     `json:"bytes"`
	Done      bool                       `json:"done"`
	Consumers map[string]ConsumerOutcome `json:"consumers,omitempty"`
	// Rate is the channel's recent copy rate in messages per second as
	// of Updated, for `status` to estimate when it will be done.
	Rate float64 `json:"rate,omitempty"`
	// Worker is the process that wrote this checkpoint last (a fleet
	// shares one store).
	Worker  string    `json:"worker,omitempty"`
	Updated time.Time `json:"updated"`
}

// ConsumerOutcome is how a durable was turned into a consumer: what the
// checkpoint keeps of it and what a run's summary reports.
type ConsumerOutcome struct {
	// Durable is the durable's key (client:durable, or queue group:durable).
	Durable  string            `json:"durable,omitempty"`
	Consumer string            `json:"consumer"`
	StartSeq uint64            `json:"start_seq"`
	Position jsformat.Position `json:"position"`
	Pending  []uint64          `json:"pending,omitempty"`
	// LastSent and Probed record a probe's answer before the consumer
	// exists: a probe moves the durable on STAN, so a re-run must not
	// probe again.
	LastSent uint64 `json:"last_sent,omitempty"`
	Probed   bool   `json:"probed,omitempty"`
	// Probe is a probe under way: recorded before it connects, so that
	// a run dying mid-probe leaves the next one (on any machine) the
	// client id that holds the durable.
	Probe *ProbeIntent `json:"probe,omitempty"`
	// Acked is how many messages STAN had acknowledged past the start
	// that migrate acknowledged on the consumer (exact state).
	Acked uint64 `json:"acked,omitempty"`
	// SeenAgain is how many messages STAN had acknowledged the
	// application will receive again (at-least-once positions).
	SeenAgain uint64 `json:"seen_again,omitempty"`
	Created   bool   `json:"created,omitempty"`
	// Status is this run's outcome: created, existing.
	Status string `json:"status,omitempty"`
}

// ProbeIntent is a probe about to resume a durable.
type ProbeIntent struct {
	ClientID string    `json:"client_id"`
	Started  time.Time `json:"started"`
	// LastSent is the durable's last_sent before the probe.
	LastSent uint64 `json:"last_sent"`
}

// Digest restores the running hash.
func (cp *Checkpoint) Digest() (*digest.Channel, error) {
	return digest.Restore(cp.Hash, cp.HashCount, cp.HashFirst, cp.HashLast)
}

// SetDigest stores the running hash.
func (cp *Checkpoint) SetDigest(d *digest.Channel) error {
	m, err := d.Mark()
	if err != nil {
		return err
	}
	cp.SetMark(m)
	return nil
}

// SetMark stores the running hash as it stood at m.Last.
func (cp *Checkpoint) SetMark(m digest.Mark) {
	cp.Hash, cp.HashCount, cp.HashFirst, cp.HashLast = m.State, m.Count, m.First, m.Last
}

// ErrStale: another worker wrote this channel's checkpoint after this
// one read it (its lease moved on). The stale worker stops the channel.
var ErrStale = errors.New("another worker has taken this channel over")

// Checkpoints reads and writes checkpoints in a Store, remembering each
// one's revision so every save is a compare-and-set against what this
// process last read or wrote.
type Checkpoints struct {
	st     Store
	worker string
	mu     sync.Mutex
	revs   map[string]uint64
}

// NewCheckpoints serves checkpoints from st; worker names this process
// in what it writes.
func NewCheckpoints(st Store, worker string) *Checkpoints {
	return &Checkpoints{st: st, worker: worker, revs: map[string]uint64{}}
}

// Load returns the stream's checkpoint, or nil if there is none.
func (c *Checkpoints) Load(ctx context.Context, stream string) (*Checkpoint, error) {
	key := Key(KindCheckpoint, stream)
	b, rev, err := c.st.Get(ctx, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if errors.Is(err, ErrNotFound) {
		c.revs[key] = 0
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c.revs[key] = rev
	var cp Checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		// A torn value cannot happen with atomic writes; a hand-edited
		// one can. The stream is the authority, so start from it.
		return nil, fmt.Errorf("checkpoint of stream %q in %s is unreadable (%v): delete it (`stanmigrate state rm`) to rebuild it from the stream", stream, c.st, err)
	}
	return &cp, nil
}

// Save writes the checkpoint if nobody else has since this process last
// read or wrote it; ErrStale otherwise.
func (c *Checkpoints) Save(ctx context.Context, cp *Checkpoint) error {
	key := Key(KindCheckpoint, cp.Stream)
	c.mu.Lock()
	defer c.mu.Unlock()
	cp.Updated = time.Now().UTC()
	cp.Worker = c.worker
	b, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return err
	}
	rev, known := c.revs[key]
	if !known {
		// Never read: a fresh channel for this process.
		if _, cur, err := c.st.Get(ctx, key); err == nil {
			rev = cur
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	n, err := c.st.Put(ctx, key, b, rev)
	if errors.Is(err, ErrConflict) {
		return fmt.Errorf("checkpoint of stream %q: %w", cp.Stream, ErrStale)
	}
	if err != nil {
		return fmt.Errorf("save the checkpoint of stream %q to %s: %w", cp.Stream, c.st, err)
	}
	c.revs[key] = n
	return nil
}

// All loads every checkpoint, sorted by channel.
func (c *Checkpoints) All(ctx context.Context) ([]*Checkpoint, error) {
	return AllCheckpoints(ctx, c.st)
}

// AllCheckpoints loads every checkpoint in st, sorted by channel.
func AllCheckpoints(ctx context.Context, st Store) ([]*Checkpoint, error) {
	var out []*Checkpoint
	err := each(ctx, st, KindCheckpoint, func(key string, b []byte) error {
		var cp Checkpoint
		if err := json.Unmarshal(b, &cp); err != nil {
			return fmt.Errorf("checkpoint of stream %q in %s is unreadable (%v): delete it (`stanmigrate state rm`) to rebuild it from the stream", Name(key), st, err)
		}
		out = append(out, &cp)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Channel < out[j].Channel })
	return out, err
}

// each calls f with every value of one kind (a key deleted meanwhile is
// passed over).
func each(ctx context.Context, st Store, kind string, f func(key string, value []byte) error) error {
	keys, err := st.Keys(ctx, kind)
	if err != nil {
		return err
	}
	for _, k := range keys {
		b, _, err := st.Get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err == nil {
			err = f(k, b)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
