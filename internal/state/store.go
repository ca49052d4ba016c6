// Package state is where a migration's memory lives: the plan a run
// started from, per-channel checkpoints, verified prefixes and fleet
// leases. A Store is a local directory or a key-value bucket on the
// target; migrate, verify and status use the same interface and never ask
// which they have.
package state

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrNotFound: the key holds nothing.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the key changed since the revision the writer read,
	// or it exists when the writer asked to create it. A writer that gets
	// it has a stale view and must re-read, or stop.
	ErrConflict = errors.New("changed by another writer")
)

// Store keeps values under keys, each write a compare-and-set on the
// key's revision.
type Store interface {
	// Get returns the value and its revision, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, uint64, error)
	// Put writes value if the key is still at rev (0: only if absent),
	// and returns the new revision; ErrConflict otherwise.
	Put(ctx context.Context, key string, value []byte, rev uint64, opts ...PutOption) (uint64, error)
	// Delete removes the key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Keys lists the keys of one kind (the first part of Key).
	Keys(ctx context.Context, kind string) ([]string, error)
	// Destroy removes everything the store holds.
	Destroy(ctx context.Context) error
	// String names the store for people: "directory x" or "bucket y".
	String() string
}

// PutOption adjusts one write.
type PutOption func(*putOptions)

type putOptions struct{ ttl time.Duration }

// Expire asks the store to drop the value ttl after this write unless it
// is written again. Stores that cannot expire keys keep it; readers must
// not rely on expiry alone (leases also age by revision).
func Expire(ttl time.Duration) PutOption { return func(o *putOptions) { o.ttl = ttl } }

func putOpts(opts []PutOption) putOptions {
	var o putOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Key kinds.
const (
	KindPlan       = "plan"
	KindCheckpoint = "checkpoint"
	KindLease      = "lease"
	KindVerified   = "verified"
)

// PlanKey holds the plan the first run saved.
const PlanKey = KindPlan

// Key names one record: kind, then the name escaped so that any stream
// or channel name is a legal key in both stores (key-value keys take
// letters, digits, '-', '_', '=', '/', '.'; dots separate tokens).
func Key(kind, name string) string {
	if name == "" {
		return kind
	}
	return kind + "." + escape(name)
}

// Name is the unescaped name of a key made by Key.
func Name(key string) string {
	_, n, ok := strings.Cut(key, ".")
	if !ok {
		return ""
	}
	return unescape(n)
}

// Kind is the key's kind.
func Kind(key string) string {
	k, _, _ := strings.Cut(key, ".")
	return k
}

func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "=%02X", c)
	}
	return b.String()
}

func unescape(s string) string {
	if !strings.Contains(s, "=") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '=' && i+2 < len(s) {
			if c, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(c))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Location is a parsed --state value.
type Location struct {
	// Bucket is the key-value bucket on the target ("kv:NAME"); Dir the
	// local directory otherwise.
	Bucket string
	Dir    string
}

// KVPrefix introduces a bucket in a --state value.
const KVPrefix = "kv:"

// ParseLocation reads a --state value: "kv:NAME" or a directory path.
func ParseLocation(s string) (Location, error) {
	name, ok := strings.CutPrefix(s, KVPrefix)
	if !ok {
		return Location{Dir: s}, nil
	}
	if err := validBucket(name); err != nil {
		return Location{}, err
	}
	return Location{Bucket: name}, nil
}

func validBucket(name string) error {
	if name == "" {
		return fmt.Errorf("--state kv: needs a bucket name, such as kv:stanmigrate")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("--state kv:%s: a bucket name takes letters, digits, '-' and '_' only", name)
		}
	}
	return nil
}

func (l Location) String() string {
	if l.Bucket != "" {
		return KVPrefix + l.Bucket
	}
	return l.Dir
}
