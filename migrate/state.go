package migrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/atomicfile"
	"github.com/stanmigrate/stanmigrate/internal/digest"
	"github.com/stanmigrate/stanmigrate/internal/jsformat"
)

// Checkpoint is what the state directory remembers of one channel. The
// stream is the authority on what is stored; the checkpoint carries what
// the stream cannot (the running content hash, consumer outcomes) and lets
// `status` report without touching the servers.
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
	Sum    string `json:"sum,omitempty"`
	Copied uint64 `json:"copied"`
	Bytes  uint64 `json:"bytes"`
	Done   bool   `json:"done"`
	// Rate is the channel's recent copy rate in messages per second as
	// of Updated, for `status` to estimate when it will be done.
	Rate      float64                    `json:"rate,omitempty"`
	Consumers map[string]ConsumerOutcome `json:"consumers,omitempty"`
	Updated   time.Time                  `json:"updated"`
}

// ConsumerOutcome records how a durable was turned into a consumer.
type ConsumerOutcome struct {
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
	// a run dying mid-probe leaves the next one the client id that holds
	// the durable.
	Probe     *ProbeIntent `json:"probe,omitempty"`
	Acked     uint64       `json:"acked,omitempty"`
	SeenAgain uint64       `json:"seen_again,omitempty"`
	Created   bool         `json:"created"`
}

// ProbeIntent is a probe about to resume a durable.
type ProbeIntent struct {
	ClientID string    `json:"client_id"`
	Started  time.Time `json:"started"`
	// LastSent is the durable's last_sent before the probe.
	LastSent uint64 `json:"last_sent"`
}

// State is a directory of checkpoints, one file per stream.
type State struct{ Dir string }

func (s State) path(stream string) string { return filepath.Join(s.Dir, stream+".json") }

// Load returns the checkpoint for a stream, or nil if there is none.
func (s State) Load(stream string) (*Checkpoint, error) {
	if s.Dir == "" {
		return nil, nil
	}
	b, err := os.ReadFile(s.path(stream))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint %s: %w", s.path(stream), err)
	}
	var cp Checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		// A torn file cannot happen with atomic writes; a hand-edited
		// one can. The stream is the authority, so start from it.
		return nil, fmt.Errorf("checkpoint %s is unreadable (%v): delete it to rebuild it from the stream", s.path(stream), err)
	}
	return &cp, nil
}

// Save writes a checkpoint atomically.
func (s State) Save(cp *Checkpoint) error {
	if s.Dir == "" {
		return nil
	}
	cp.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(s.path(cp.Stream), b)
}

// All loads every checkpoint in the directory, sorted by channel.
func (s State) All() ([]*Checkpoint, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state directory %s: %w", s.Dir, err)
	}
	var out []*Checkpoint
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		cp, err := s.Load(strings.TrimSuffix(e.Name(), ".json"))
		if err != nil {
			return nil, err
		}
		if cp != nil {
			out = append(out, cp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Channel < out[j].Channel })
	return out, nil
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
