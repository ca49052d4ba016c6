// Package source is where a migration's messages and durable state come
// from. A Source is a live STAN server read through its monitoring
// endpoint, a live server without monitoring (channels and durables listed
// in the plan by hand, bounds learned by subscribing), or a stopped
// server's file store directory. plan, migrate and verify take a Source
// and never ask which kind they have: what differs between the kinds (how
// bounds are learned, how a durable's pending set is found, whether an
// ack means anything) is decided here, once, in the implementation that
// needs it (packages live and dir).
package source

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/jsformat"
)

// Sentinel errors callers branch on.
var (
	// ErrNoChannel: the source does not hold the channel.
	ErrNoChannel = errors.New("no such channel on the STAN source")
	// ErrUnreadable: the source cannot read a channel (a damaged store
	// file); Channel.Err and read errors wrap it.
	ErrUnreadable = errors.New("channel unreadable")
	// ErrJump: a live subscription delivered past the next sequence in
	// the middle of a read. After a server restart that happens while the
	// skipped messages are still owed as redeliveries, so it is not a gap:
	// read again from the next sequence.
	ErrJump = errors.New("STAN skipped ahead mid-subscription")
	// ErrEnd: the source holds nothing more up to the channel's last
	// sequence (a store directory read to its end). Sequences before the
	// last that were never delivered do not exist.
	ErrEnd = errors.New("end of the channel")
	// ErrLost: the connection under a read was lost or moved to another
	// server (a restart, a leader change): read again from the next
	// sequence instead of waiting for the subscription to recover.
	ErrLost = errors.New("STAN connection lost")
	// ErrOwnerOnline: a durable's owner holds it, so its position cannot
	// be probed.
	ErrOwnerOnline = errors.New("durable owner is online")
)

// Source is where messages and durable state come from.
type Source interface {
	// Info describes the server (or directory) as a whole.
	Info(ctx context.Context) (Info, error)
	// Channels lists every channel with its durables.
	Channels(ctx context.Context) ([]Channel, error)
	// Channel returns one channel as it stands now, or an error wrapping
	// ErrNoChannel when the source can tell the channel does not exist.
	Channel(ctx context.Context, name string) (Channel, error)
	// Check proves that what reading needs works (a live server's STAN
	// client URL, credentials and cluster id) without changing anything,
	// for a dry run.
	Check(ctx context.Context) error
	// Connect opens what reading needs (a live server's STAN session), so
	// that bad settings surface before anything is written.
	Connect(ctx context.Context) error
	// Read delivers a channel's messages in sequence order from `from`
	// to o.Deliver until the reader is closed or stops on its own (Done;
	// Err says why).
	Read(ctx context.Context, channel string, from uint64, o ReadOptions) (Reader, error)
	// Get returns the message at seq, or nil when the channel has none
	// there.
	Get(ctx context.Context, channel string, seq uint64) (*Msg, error)
	// Position learns a durable's unacknowledged sequences: from its
	// stored state when the source holds it, by probing otherwise (an
	// offline durable is resumed as its owner would, never acknowledged,
	// and closed, not unsubscribed).
	Position(ctx context.Context, channel string, d Durable, o ProbeOptions) (Position, error)
	// Close releases connections and files.
	Close() error
}

// Info describes a source.
type Info struct {
	ClusterID string
	// Name says what the source is, for findings and errors.
	Name string
	// URL and MonitorURL locate it, without credentials ("" when there
	// is none; a directory's URL is file://).
	URL        string
	MonitorURL string
	// ServerVersion as the server reports it (or how the data was read).
	ServerVersion string
	// MaxPayload is the server's max_payload (0 = unknown).
	MaxPayload int64
	// LimitsAssumed: the store limits are not known, defaults were
	// assumed (a directory read without the server's configuration).
	// LimitsFrom names where known limits came from when that is not the
	// server itself ("" otherwise).
	LimitsAssumed bool
	LimitsFrom    string
}

// Limits are a channel's effective STAN limits (0 = unlimited).
type Limits struct {
	MaxMsgs          int
	MaxBytes         int64
	MaxAge           time.Duration
	MaxSubscriptions int
}

// Channel is one channel with its bounds, limits and subscriptions.
type Channel struct {
	Name string
	// FirstSeq and LastSeq as STAN reports them: 0/0 for a channel that
	// never held a message, FirstSeq == LastSeq+1 once all expired.
	FirstSeq, LastSeq uint64
	// Msgs and Bytes are the server's counts when Counted; otherwise
	// only the bounds are known (learned by subscribing), and Msgs is the
	// range.
	Msgs, Bytes uint64
	Counted     bool
	// MaxMsgSize is the largest stored message (0 = unknown).
	MaxMsgSize uint32
	// Limits and the STAN limits key they come from ("" = global).
	Limits     Limits
	LimitsFrom string
	// Durables and NonDurables as the server holds them. When
	// DurablesKnown is false they come from the plan, and a durable
	// missing here says nothing about the server.
	Durables      []Durable
	NonDurables   []NonDurable
	DurablesKnown bool
	// Notes are what the source worked around to read the channel.
	Notes []string
	// Err is set (wrapping ErrUnreadable, naming the file) when the
	// channel cannot be read; the rest is then zero.
	Err error
}

// Durable returns the channel's durable with the given key.
func (c *Channel) Durable(key string) (Durable, bool) {
	for _, d := range c.Durables {
		if d.Key() == key {
			return d, true
		}
	}
	return Durable{}, false
}

// Empty reports whether the channel holds no message.
func (c *Channel) Empty() bool { return c.LastSeq == 0 || c.LastSeq < c.FirstSeq }

// DurableID identifies a durable within its channel: a plain durable by
// its client id and name, a durable queue group by its group and name.
type DurableID struct {
	ClientID   string `yaml:"client_id,omitempty" json:"client_id,omitempty"`
	Durable    string `yaml:"durable" json:"durable"`
	QueueGroup string `yaml:"queue_group,omitempty" json:"queue_group,omitempty"`
}

// Key identifies the durable within its channel.
func (d DurableID) Key() string {
	if d.QueueGroup != "" {
		return "queue " + d.QueueGroup + ":" + d.Durable
	}
	return d.ClientID + ":" + d.Durable
}

// Describe names the durable for messages.
func (d DurableID) Describe(channel string) string {
	if d.QueueGroup != "" {
		return fmt.Sprintf("durable queue group %q (durable %q) on channel %q", d.QueueGroup, d.Durable, channel)
	}
	return fmt.Sprintf("durable %q of client %q on channel %q", d.Durable, d.ClientID, channel)
}

// Durable is one plain durable or one durable queue group (its members
// merged), as the source holds it.
type Durable struct {
	DurableID
	// ClientID of a queue group is one offline member (the shadow's,
	// possibly empty); Members are the online members' client ids.
	Members []string
	// Online: the owner (or a member) is connected.
	Online      bool
	MaxInflight int
	AckWait     time.Duration
	// LastSent is the highest sequence sent (for a group, the group's).
	LastSent uint64
	// PendingCount is how many messages are unacknowledged; -1 when the
	// source cannot tell (a durable listed in the plan by hand).
	PendingCount int
	// Stored is the exact position when the source holds the pending
	// set itself (a store directory); nil when only a probe can tell.
	Stored *Position
}

// NonDurable is a subscription that will not be migrated.
type NonDurable struct {
	ClientID   string
	QueueGroup string
}

// Position is a durable's exact state: where a consumer must start to
// resume it and what STAN would redeliver.
type Position struct {
	// LastSent is the highest sequence sent to the durable.
	LastSent uint64
	// Pending are the unacknowledged sequences still in the channel,
	// ascending.
	Pending []uint64
	// How says how they were learned.
	How jsformat.Position
}

// Start is where a consumer resumes the durable exactly: the lowest
// unacknowledged sequence still in the channel (from firstSeq on), else
// the one after last_sent.
func (p Position) Start(firstSeq uint64) uint64 {
	for _, s := range p.Pending {
		if s >= firstSeq {
			return s
		}
	}
	return max(p.LastSent+1, firstSeq)
}

// ProbeOptions shape a probe of a live durable.
type ProbeOptions struct {
	// ClientID probes a durable queue group (a plain durable is always
	// probed as its owner's client id).
	ClientID string
	// Intent, when set, is called with the client id a probe is about
	// to connect as, before it connects: a run that dies mid-probe can
	// then recognise its own orphaned client on the next run.
	Intent func(clientID string) error
	// Resumed, when set, is called once the probe holds the durable.
	Resumed func(clientID string)
	// TakeOver probes even a durable with nothing pending: it is held by
	// an earlier probe whose process died, and connecting as that
	// probe's client id (STAN replaces a client whose connection no
	// longer answers) releases it as a clean probe would have. A client
	// id a live connection still holds is refused: the owner is online.
	TakeOver bool
}

// Msg is one message of a channel.
type Msg struct {
	Sequence  uint64
	Subject   string
	Data      []byte
	Timestamp int64 // nanoseconds since the epoch
	// Redelivered: sent again (a live read whose ack did not arrive in
	// time); its sequence was delivered before.
	Redelivered bool
	ack         interface{ Ack() error }
	acked       *atomic.Uint64
}

// NewMsg returns a message whose Ack calls ack (nil: nothing to ack) and
// counts the ack in acked (nil: no count).
func NewMsg(seq uint64, subject string, data []byte, ts int64, redelivered bool, ack interface{ Ack() error }, acked *atomic.Uint64) Msg {
	return Msg{Sequence: seq, Subject: subject, Data: data, Timestamp: ts, Redelivered: redelivered, ack: ack, acked: acked}
}

// Ack acknowledges the message to the source. A read that does not
// acknowledge (a store directory, or ReadOptions.Acks off) makes it a
// no-op.
func (m *Msg) Ack() error {
	if m.ack == nil {
		return nil
	}
	if m.acked != nil {
		m.acked.Add(1)
	}
	return m.ack.Ack()
}

// ReadOptions shape a read.
type ReadOptions struct {
	// Deliver receives each message, one at a time, in sequence order
	// (redeliveries aside, see Msg.Redelivered). Returning false stops
	// the reader.
	Deliver func(Msg) bool
	// Acks: the caller acknowledges each message once handled, and the
	// source holds at most MaxInflight unacknowledged (a live read). Off,
	// nothing is acknowledged and the source reads in windows of
	// MaxInflight up to To (verify).
	Acks bool
	// MaxInflight bounds delivered, unacknowledged messages (without
	// Acks: each window's size; a live source keeps WindowDepth open).
	MaxInflight int
	// AckWait is how long a live server waits for an ack before sending
	// a message again.
	AckWait time.Duration
	// To is the last sequence wanted (0 = no end).
	To uint64
	// Contiguous: past the first message of the read, a sequence STAN
	// skips ends the read with ErrJump, even where a read without Acks
	// starts its next window (a read with Acks always does). Only where a
	// read starts is a skip what the channel holds; a caller that fills
	// skips as gaps (migrate) needs that, since STAN may still owe the
	// skipped messages (a server that restarted or changed leaders).
	Contiguous bool
}

// WindowDepth is how many windows of MaxInflight a read without Acks keeps
// open at once on a live server: what the caller sizes its memory by.
const WindowDepth = 2

// Reader is a read in progress.
type Reader interface {
	// Done is closed when the reader stopped on its own; Err then says
	// why (ErrEnd, ErrJump, ErrLost, ErrUnreadable, ...).
	Done() <-chan struct{}
	Err() error
	// Close stops delivering and releases the read. It waits for a
	// Deliver call in progress to return.
	Close() error
}

// ProbeClientPrefix starts the client id a probe of a durable queue group
// connects with (a plain durable is probed under its owner's id).
const ProbeClientPrefix = "stanmigrate-probe-"

// HeldByProbe reports whether the only online holders of d are probes
// of ours: a run that died mid-probe leaves its client registered on
// STAN until STAN's heartbeats give up on it, and the next migrate takes
// it over rather than waiting.
func HeldByProbe(d Durable) bool {
	ids := d.Members
	if d.QueueGroup == "" {
		ids = []string{d.ClientID}
	}
	if len(ids) == 0 {
		return false
	}
	for _, id := range ids {
		if !strings.HasPrefix(id, ProbeClientPrefix) {
			return false
		}
	}
	return true
}
