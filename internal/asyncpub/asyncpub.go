// Package asyncpub publishes a stream's messages asynchronously with
// their acks tracked by sequence: the per-message path of migrate (for
// targets without fast-ingest batches), and the async column of the
// fast-ingest benchmark, which measures this very code.
package asyncpub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Publisher publishes a stream's messages asynchronously and tracks their
// JetStream acks by sequence. It replaces the client library's
// async publisher on the hot path: that one allocates a future, a map
// entry and a reply token per message and decodes every ack as JSON, which
// the profile showed as a good part of the client's share of two shared
// cores. Here the reply subject carries the sequence, a ring of slots
// records which sequences were acked, and only error replies are decoded.
//
// Stream sequences are unique and increasing within an attempt, so a slot
// holding a message's own sequence means that message was answered.
type Publisher struct {
	nc     *nats.Conn
	inbox  string // "<inbox>." + sequence is each message's reply subject
	sub    *nats.Subscription
	slots  []atomic.Uint64
	signal chan struct{}

	// errs holds the rare error replies; nerrs lets the acker skip the
	// lock on every message while there are none.
	mu    sync.Mutex
	errs  map[uint64]error
	nerrs atomic.Int64

	// msg and hdr are reused for every publish: PublishMsg encodes them
	// into the connection's buffer before returning, and only the
	// callback goroutine publishes.
	msg nats.Msg
	hdr nats.Header
}

// New makes a publisher for up to window publishes awaiting their ack.
func New(nc *nats.Conn, window int) (*Publisher, error) {
	p := &Publisher{
		nc:     nc,
		inbox:  nc.NewRespInbox() + ".",
		slots:  make([]atomic.Uint64, 2*window+2),
		signal: make(chan struct{}, 1),
		errs:   map[uint64]error{},
		hdr:    make(nats.Header, 6),
	}
	sub, err := nc.Subscribe(p.inbox+"*", p.onReply)
	if err != nil {
		return nil, fmt.Errorf("subscribe for JetStream acks: %w", err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	p.sub = sub
	p.msg.Header = p.hdr
	return p, nil
}

// Close stops listening for acks.
func (p *Publisher) Close() { _ = p.sub.Unsubscribe() }

// CheckEvery is how long a publish waits for its acknowledgement before
// the waiter asks whether the target moved (see Await).
const CheckEvery = 500 * time.Millisecond

// Header is the header every publish sends: set it before Publish.
func (p *Publisher) Header() nats.Header { return p.hdr }

// Publish sends data with the Header, seqStr (the message's stream
// sequence) in the reply subject. Only one goroutine may publish.
func (p *Publisher) Publish(subject, seqStr string, data []byte) error {
	p.msg.Subject = subject
	p.msg.Reply = p.inbox + seqStr
	p.msg.Data = data
	return p.nc.PublishMsg(&p.msg)
}

// ackReply is the part of a JetStream publish reply that matters when it
// is not a plain success.
type ackReply struct {
	Error *jetstream.APIError `json:"error"`
}

var errorKey = []byte(`"error"`)

func (p *Publisher) onReply(m *nats.Msg) {
	i := len(p.inbox)
	if len(m.Subject) <= i {
		return
	}
	seq, err := strconv.ParseUint(m.Subject[i:], 10, 64)
	if err != nil {
		return
	}
	var perr error
	switch {
	case len(m.Data) == 0 && m.Header.Get("Status") == "503":
		perr = nats.ErrNoResponders
	case len(m.Data) == 0:
		perr = fmt.Errorf("empty reply from JetStream (status %q)", m.Header.Get("Status"))
	case bytes.Contains(m.Data, errorKey):
		var r ackReply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			perr = fmt.Errorf("unreadable reply from JetStream: %q", m.Data)
		} else if r.Error != nil {
			perr = r.Error
		}
	}
	if perr != nil {
		p.mu.Lock()
		p.errs[seq] = perr
		p.mu.Unlock()
		p.nerrs.Add(1)
	}
	// The slot is stored last: an acker that sees it also sees nerrs.
	p.slots[seq%uint64(len(p.slots))].Store(seq)
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

// Await waits for seq's reply, at most timeout, and returns its error.
// While it waits longer than CheckEvery, it asks moved (when not nil)
// whether the target moved under the publish (a reconnect, a new stream
// leader): then the reply will not come, and waiting out the timeout
// would only add to the failover. It does not stop on cancellation: an
// interrupted run drains what is in flight so the checkpoint covers every
// message that landed.
func (p *Publisher) Await(seq uint64, timer *time.Timer, timeout time.Duration, moved func() error) error {
	slot := &p.slots[seq%uint64(len(p.slots))]
	armed := false
	var deadline, nextCheck time.Time
	for slot.Load() != seq {
		if !armed {
			now := time.Now()
			deadline, nextCheck = now.Add(timeout), now.Add(CheckEvery)
			timer.Reset(min(timeout, CheckEvery))
			armed = true
		}
		select {
		case <-p.signal:
		case <-timer.C:
			now := time.Now()
			if !now.Before(deadline) {
				return fmt.Errorf("no acknowledgement from JetStream within %v: %w", timeout, jetstream.ErrAsyncPublishTimeout)
			}
			if moved != nil && !now.Before(nextCheck) {
				if err := moved(); err != nil {
					return err
				}
				nextCheck = time.Now().Add(CheckEvery)
			}
			timer.Reset(min(deadline.Sub(time.Now()), CheckEvery))
		}
	}
	if armed {
		timer.Stop()
	}
	if p.nerrs.Load() == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err, ok := p.errs[seq]; ok {
		delete(p.errs, seq)
		p.nerrs.Add(-1)
		return err
	}
	return nil
}
