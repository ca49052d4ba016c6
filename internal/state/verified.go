package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/digest"
)

// Verified is the prefix of one channel that a verify found identical on
// both sides: every message up to Seq, and the stream's shape over it at
// that moment. A later verify checks the shape cheaply and hashes only
// what lies past Seq.
type Verified struct {
	Channel string `json:"channel"`
	Stream  string `json:"stream"`
	// Seq is the last sequence of the prefix, on both sides.
	Seq uint64 `json:"seq"`
	// Source and Target are the two sides' running hashes right after
	// Seq, each with its message count and first and last sequence.
	Source digest.Mark `json:"source"`
	Target digest.Mark `json:"target"`
	// StreamFirst, StreamMsgs and StreamDeleted are the stream's first
	// sequence, and its messages and deleted sequences from there up to
	// Seq: a purge moves the first, a deleted message lowers the count.
	StreamFirst   uint64    `json:"stream_first"`
	StreamMsgs    uint64    `json:"stream_msgs"`
	StreamDeleted uint64    `json:"stream_deleted"`
	Updated       time.Time `json:"updated"`
}

// LoadVerified returns a stream's verified prefix and its revision; nil
// and 0 when none was recorded.
func LoadVerified(ctx context.Context, s Store, stream string) (*Verified, uint64, error) {
	b, rev, err := s.Get(ctx, Key(KindVerified, stream))
	if errors.Is(err, ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read the verified prefix of stream %q from %s: %w", stream, s, err)
	}
	var v Verified
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, 0, fmt.Errorf("the verified prefix of stream %q in %s is unreadable (%v): delete it or run verify --full", stream, s, err)
	}
	return &v, rev, nil
}

// SaveVerified records v over revision rev (0: none yet) and returns the
// new revision. ErrConflict means another verify moved it meanwhile.
func SaveVerified(ctx context.Context, s Store, v *Verified, rev uint64) (uint64, error) {
	v.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return 0, err
	}
	nrev, err := s.Put(ctx, Key(KindVerified, v.Stream), b, rev)
	if err != nil {
		return 0, fmt.Errorf("record the verified prefix of stream %q in %s: %w", v.Stream, s, err)
	}
	return nrev, nil
}
