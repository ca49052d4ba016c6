package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nuid"
)

// DefaultLeaseTTL is how long a worker's claim on a channel lasts without
// renewal: long enough to ride out a JetStream leader election (renewals
// come every third of it), short enough that a dead worker's channels
// move on soon.
const DefaultLeaseTTL = 15 * time.Second

// The lease times a worker may be given: below MinLeaseTTL an election on
// the target outlasts renewals; past MaxLeaseTTL a dead worker's channels
// wait too long.
const (
	MinLeaseTTL = 3 * time.Second
	MaxLeaseTTL = 10 * time.Minute
)

// Lease is a worker's claim on one channel.
type Lease struct {
	Worker   string        `json:"worker"`
	Host     string        `json:"host"`
	PID      int           `json:"pid"`
	PIDNS    string        `json:"pid_ns,omitempty"`
	Acquired time.Time     `json:"acquired"`
	Renewed  time.Time     `json:"renewed"`
	TTL      time.Duration `json:"ttl_ns"`
}

// Held is a lease this process holds.
type Held struct {
	Name string
	key  string
	rev  uint64
	// lost closes when another worker took the lease over, or it could
	// not be renewed for a whole TTL.
	lost     chan struct{}
	lostOnce sync.Once
	renewed  time.Time
	lease    Lease
}

// Lost closes when the lease is no longer this process's.
func (h *Held) Lost() <-chan struct{} { return h.lost }

func (h *Held) lose() { h.lostOnce.Do(func() { close(h.lost) }) }

// Leaser claims channels for one worker process. A claim is a key
// created only if absent; it is renewed by compare-and-set, so a stale
// worker's renewal fails. Expiry is judged by revision: a lease whose
// revision has not moved for a whole TTL, as timed on this machine's
// monotonic clock, is expired -- no clock is compared across machines.
// Where the store expires keys by itself (nats-server 2.11+) each write
// also carries the TTL, so a dead worker's lease disappears on its own.
type Leaser struct {
	st  Store
	ttl time.Duration
	me  Lease

	mu   sync.Mutex
	held map[string]*Held
	seen map[string]observed
}

type observed struct {
	rev   uint64
	since time.Time
}

// NewLeaser makes a worker identity (host, process, a unique id).
func NewLeaser(st Store, ttl time.Duration) *Leaser {
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	host, _ := os.Hostname()
	pid := os.Getpid()
	return &Leaser{
		st: st, ttl: ttl,
		me:   Lease{Worker: fmt.Sprintf("%s/%d/%s", host, pid, nuid.Next()[14:]), Host: host, PID: pid, PIDNS: pidNamespace(), TTL: ttl},
		held: map[string]*Held{}, seen: map[string]observed{},
	}
}

// Worker is this process's worker name.
func (l *Leaser) Worker() string { return l.me.Worker }

// TTL is the lease duration.
func (l *Leaser) TTL() time.Duration { return l.ttl }

// Acquire tries to claim name. It returns the held lease, or nil and the
// current holder when another live worker has it.
func (l *Leaser) Acquire(ctx context.Context, name string) (*Held, *Lease, error) {
	key := Key(KindLease, name)
	b, rev, err := l.st.Get(ctx, key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, nil, err
	}
	var cur *Lease
	if err == nil {
		var ls Lease
		if json.Unmarshal(b, &ls) == nil {
			cur = &ls
		}
		if cur != nil && cur.Worker != l.me.Worker && !l.expired(key, rev, cur) {
			return nil, cur, nil
		}
	}
	now := time.Now().UTC()
	mine := l.me
	mine.Acquired, mine.Renewed = now, now
	nb, _ := json.Marshal(mine)
	n, err := l.st.Put(ctx, key, nb, rev, Expire(l.ttl))
	if errors.Is(err, ErrConflict) {
		// Another worker claimed it between our read and write.
		return nil, cur, nil
	}
	if err != nil {
		return nil, nil, err
	}
	h := &Held{Name: name, key: key, rev: n, lost: make(chan struct{}), renewed: time.Now(), lease: mine}
	l.mu.Lock()
	l.held[name] = h
	delete(l.seen, key)
	l.mu.Unlock()
	return h, nil, nil
}

// expired: the holder is a dead process on this machine, or its lease
// has not been renewed for a whole TTL since this worker first saw it.
func (l *Leaser) expired(key string, rev uint64, cur *Lease) bool {
	if cur.Host == l.me.Host && cur.PIDNS == l.me.PIDNS && cur.PID > 0 && !processAlive(cur.PID) {
		return true
	}
	ttl := max(cur.TTL, time.Second)
	l.mu.Lock()
	defer l.mu.Unlock()
	o, ok := l.seen[key]
	if !ok || o.rev != rev {
		l.seen[key] = observed{rev: rev, since: time.Now()}
		return false
	}
	return time.Since(o.since) >= ttl
}

// Renew keeps every held lease alive until ctx ends; a lease another
// worker has taken, or that could not be renewed for a whole TTL, is
// lost (its Lost channel closes).
func (l *Leaser) Renew(ctx context.Context) {
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		hs := make([]*Held, 0, len(l.held))
		for _, h := range l.held {
			hs = append(hs, h)
		}
		l.mu.Unlock()
		for _, h := range hs {
			l.renew(ctx, h)
		}
	}
}

func (l *Leaser) renew(ctx context.Context, h *Held) {
	ls := h.lease
	ls.Renewed = time.Now().UTC()
	b, _ := json.Marshal(ls)
	n, err := l.st.Put(ctx, h.key, b, h.rev, Expire(l.ttl))
	switch {
	case err == nil:
		l.mu.Lock()
		h.rev, h.renewed = n, time.Now()
		l.mu.Unlock()
	case errors.Is(err, ErrConflict) || time.Since(h.renewed) > l.ttl:
		l.drop(h)
		h.lose()
	}
}

// Confirm renews h now and reports whether this process still holds it
// (after a failure, to tell "the channel was taken over" from a fault).
func (l *Leaser) Confirm(ctx context.Context, h *Held) bool {
	select {
	case <-h.lost:
		return false
	default:
	}
	l.renew(ctx, h)
	select {
	case <-h.lost:
		return false
	default:
		return true
	}
}

// Release gives the lease back (the channel is finished, or this
// process stops).
func (l *Leaser) Release(ctx context.Context, h *Held) {
	l.drop(h)
	select {
	case <-h.lost:
		return // someone else's now: not ours to delete
	default:
	}
	if _, rev, err := l.st.Get(ctx, h.key); err == nil && rev == h.rev {
		_ = l.st.Delete(ctx, h.key)
	}
}

func (l *Leaser) drop(h *Held) {
	l.mu.Lock()
	if l.held[h.Name] == h {
		delete(l.held, h.Name)
	}
	l.mu.Unlock()
}

// HeldCount is how many leases this process holds now.
func (l *Leaser) HeldCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.held)
}

// Leases lists every lease in the store, for status.
func Leases(ctx context.Context, st Store) (map[string]Lease, error) {
	out := map[string]Lease{}
	err := each(ctx, st, KindLease, func(key string, b []byte) error {
		var ls Lease
		if json.Unmarshal(b, &ls) == nil {
			out[Name(key)] = ls
		}
		return nil
	})
	return out, err
}
