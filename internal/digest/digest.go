// Package digest computes the content hash that migrate records and
// verify recomputes: SHA-256 over (sequence, subject, payload) in sequence
// order. Both sides must hash identically, so the framing lives here once.
package digest

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
)

// Channel accumulates the digest of one channel or stream.
type Channel struct {
	h     hash.Hash
	Count uint64
	First uint64
	Last  uint64
	buf   [8]byte
	// subj reuses one buffer for subjects: hash.Hash takes []byte, and a
	// conversion per message would allocate on the hot path.
	subj []byte
}

// New returns an empty digest.
func New() *Channel { return &Channel{h: sha256.New()} }

// Add folds one message in. Lengths frame the fields so that moving bytes
// between subject and payload changes the hash.
func (c *Channel) Add(seq uint64, subject string, payload []byte) {
	binary.BigEndian.PutUint64(c.buf[:], seq)
	c.h.Write(c.buf[:])
	binary.BigEndian.PutUint64(c.buf[:], uint64(len(subject)))
	c.h.Write(c.buf[:])
	c.subj = append(c.subj[:0], subject...)
	c.h.Write(c.subj)
	binary.BigEndian.PutUint64(c.buf[:], uint64(len(payload)))
	c.h.Write(c.buf[:])
	c.h.Write(payload)
	if c.Count == 0 {
		c.First = seq
	}
	c.Last = seq
	c.Count++
}

// Sum is the hex digest so far.
func (c *Channel) Sum() string { return hex.EncodeToString(c.h.Sum(nil)) }

// State serialises the running hash so a checkpoint can resume it.
func (c *Channel) State() ([]byte, error) {
	return c.h.(encoding.BinaryMarshaler).MarshalBinary()
}

// Mark is the running hash as it stood right after message Last was
// added. Migrate hashes a message as it publishes it, while the payload
// is still in the CPU's cache, so its digest runs ahead of what
// JetStream has stored; a mark is what a checkpoint may record once
// every message up to Last is stored.
type Mark struct {
	State              []byte
	Count, First, Last uint64
}

// Mark captures the digest as it stands.
func (c *Channel) Mark() (Mark, error) {
	st, err := c.State()
	return Mark{State: st, Count: c.Count, First: c.First, Last: c.Last}, err
}

// Rewind sets the digest back to m.
func (c *Channel) Rewind(m Mark) error {
	r, err := Restore(m.State, m.Count, m.First, m.Last)
	if err != nil {
		return err
	}
	*c = *r
	return nil
}

// Restore rebuilds a digest from State and the counters saved beside it.
func Restore(state []byte, count, first, last uint64) (*Channel, error) {
	c := New()
	if len(state) == 0 {
		if count != 0 {
			return nil, fmt.Errorf("digest: %d messages recorded but no hash state", count)
		}
		return c, nil
	}
	if err := c.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("digest: restore: %w", err)
	}
	c.Count, c.First, c.Last = count, first, last
	return c, nil
}
