// Package verify proves a migration: it compares every planned channel with
// its stream (counts, first and last sequence, a content hash per message
// and per channel) and every durable with the consumer that replaced it.
//
// It changes no message, durable or consumer. On STAN it uses non-durable
// subscriptions of its own, which it never acks (see stanReader) and which
// STAN records in its subscription file while they exist; on JetStream it reads through
// ordered consumers (ephemeral, removed when done) and direct gets, and
// never acks, creates or changes anything durable. It never prints and
// never exits: results come back as a Report.
package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/digest"
	"github.com/stanmigrate/stanmigrate/internal/monitor"
	"github.com/stanmigrate/stanmigrate/internal/stanstore"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/plan"
)

// ErrDifferences is returned, wrapped with a count, when any check fails.
var ErrDifferences = errors.New("differences found")

// Timeouts are variables so tests can shorten them.
var (
	// idleTimeout bounds how long one side may stay silent while the merge
	// still expects messages from it: a channel or stream holding fewer
	// messages than announced must end in a report, not a hang.
	idleTimeout = 10 * time.Second
	// learnTimeout is how long to wait for the one message that reveals a
	// channel's first or last sequence when there is no monitoring; an
	// empty channel answers with silence, so this is paid once per empty
	// channel.
	learnTimeout = 2 * time.Second
	// sampleTimeout is how long to wait for a sampled STAN message that
	// must exist (the sequence lies inside the channel's range).
	sampleTimeout = 5 * time.Second
)

const (
	// STAN sends a subscription at most MaxInflight messages it has not
	// seen acknowledged; verify reads in windows of that many (see
	// stanReader), sized by bytes so that large messages cannot blow
	// memory, and large enough that the subscription churn stays rare.
	maxWindow     = 65536
	minWindow     = 64
	inflightBytes = 32 << 20
	msgOverhead   = 512 // bytes the client holds per message besides the payload
	// A hand-off to the merger holds at most maxFeed messages or about
	// feedBytes. From STAN they count against the window; from a stream
	// they come on top of its pull; a store directory has no other bound.
	maxFeed   = 1024
	minFeed   = 16
	feedBytes = 4 << 20
	// stanAckWait only matters if the merger stalls longer than it: STAN
	// then redelivers a window, and the reader skips sequences it has
	// seen. verify never acks.
	stanAckWait = 60 * time.Second
	// listed is how many differing sequences of each kind a report names.
	listed = 10
	// progressEvery is how many messages pass between progress checks.
	progressEvery    = 1024
	progressInterval = 500 * time.Millisecond
)

// Options configure a run.
type Options struct {
	// ClusterID of the STAN source; empty means the plan's.
	ClusterID string
	Source    conn.Side
	Target    conn.Side
	// Monitor is the STAN monitoring client; nil when STAN runs without
	// monitoring (first and last sequences are then learned by
	// subscribing, and durable positions come from the plan).
	Monitor *monitor.Client
	// Store, when set, is the STAN side: a stopped server's store
	// directory (stanstore.Open) read directly instead of through a
	// connection, so Source and Monitor are unused. Each durable's start
	// is then checked against the exact one its stored pending set gives,
	// and a channel the directory cannot read is reported as a difference
	// while the other channels are verified.
	Store *stanstore.Store
	// Sample > 0 checks that many random sequences per channel by direct
	// get on the stream and a one-message STAN subscription, instead of
	// streaming every message. Counts and first/last are still compared
	// in full; no channel hash is computed.
	Sample int
	// Parallel is how many channels are verified at once (0 = NumCPU).
	Parallel int
	// Progress, when set, is called periodically from several goroutines
	// with the number of messages checked on a channel since the previous
	// call for that channel (a delta, like migrate's Reporter.Progress).
	Progress func(channel string, msgs uint64)
}

// Report is the outcome of a run.
type Report struct {
	Channels    []ChannelReport  `json:"channels"`
	Consumers   []ConsumerReport `json:"consumers"`
	Differences int              `json:"differences"`
	OK          bool             `json:"ok"`
}

// Side is what one side holds for a channel.
type Side struct {
	Msgs     uint64 `json:"msgs"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	// SHA256 is the digest.Channel sum over every message read; empty in
	// sample mode.
	SHA256 string `json:"sha256,omitempty"`
}

// ChannelReport compares one channel with its stream. The stream's name is
// "stream_name" in JSON because "stream" holds the stream side.
type ChannelReport struct {
	Channel string `json:"channel"`
	Stream  string `json:"stream_name"`
	Source  Side   `json:"stan"`
	Target  Side   `json:"stream"`
	// The first differing sequences of each kind, ascending: Missing are
	// on STAN but not in the stream, Extra in the stream but not on STAN,
	// Changed in both with a different subject or payload.
	Missing      []uint64 `json:"missing,omitempty"`
	Extra        []uint64 `json:"extra,omitempty"`
	Changed      []uint64 `json:"changed,omitempty"`
	MissingCount uint64   `json:"missing_count"`
	ExtraCount   uint64   `json:"extra_count"`
	ChangedCount uint64   `json:"changed_count"`
	OK           bool     `json:"ok"`
	// Problem is a one-line summary when !OK, naming the channel and the
	// first differing sequences.
	Problem string `json:"problem,omitempty"`
	// Sampled is how many sequences were checked in sample mode.
	Sampled int `json:"sampled,omitempty"`

	notes []string // facts that make the channel differ beyond sequences
}

// ConsumerReport compares one durable with its consumer.
type ConsumerReport struct {
	Channel  string `json:"channel"`
	Stream   string `json:"stream"`
	Durable  string `json:"durable"` // plan.Durable.Key()
	Consumer string `json:"consumer"`
	// Expected and Actual are start sequences: where STAN would resume the
	// durable, and the consumer's DeliverByStartSequence.
	Expected uint64 `json:"expected_start"`
	Actual   uint64 `json:"actual_start"`
	Position string `json:"position,omitempty"`
	OK       bool   `json:"ok"`
	Problem  string `json:"problem,omitempty"`
}

// Run verifies every active channel of the plan and the consumers of its
// durables. The error wraps ErrDifferences when the report has differences;
// any other error is a connection or usage problem, returned with whatever
// was verified before it.
func Run(ctx context.Context, p *plan.Plan, o Options) (*Report, error) {
	if p == nil {
		return nil, errors.New("verify: no plan")
	}
	if o.ClusterID == "" {
		o.ClusterID = p.Source.ClusterID
	}
	if o.Source.Name == "" {
		o.Source.Name = "STAN"
	}
	if o.Target.Name == "" {
		o.Target.Name = "JetStream"
	}
	if o.Parallel <= 0 {
		o.Parallel = runtime.NumCPU()
	}
	rep := &Report{Channels: []ChannelReport{}, Consumers: []ConsumerReport{}}
	chans := p.Active()
	if len(chans) == 0 {
		rep.OK = true
		return rep, nil
	}
	nc, js, err := conn.JetStream(ctx, o.Target, "stanmigrate-verify")
	if err != nil {
		return nil, err
	}
	defer nc.Close()

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		ch   *ChannelReport
		cons []ConsumerReport
	}
	results := make([]result, len(chans))
	var (
		errMu    sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel()
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(o.Parallel, len(chans)) {
		wg.Go(func() {
			// One STAN session per worker: each session is one TCP
			// connection read by one goroutine, which would cap parallel
			// channels if shared.
			var sc *conn.STAN
			defer func() {
				if sc != nil {
					sc.Close()
				}
			}()
			for i := range next {
				if ctx.Err() != nil {
					continue
				}
				src := source{st: o.Store}
				if o.Store == nil {
					if sc == nil {
						s, err := conn.ConnectSTAN(ctx, o.Source, o.ClusterID, "stanmigrate-verify-"+nuid.Next(), nil)
						if err != nil {
							fail(err)
							continue
						}
						sc = s
					}
					src.sc = sc.SC
				}
				cr, cons, err := verifyChannel(ctx, src, js, chans[i], &o)
				if err != nil {
					fail(fmt.Errorf("verify channel %q (stream %q): %w", chans[i].Name, chans[i].Stream, err))
					continue
				}
				results[i] = result{cr, cons}
			}
		})
	}
feed:
	for i := range chans {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()

	badChannels, badConsumers := 0, 0
	for _, r := range results {
		if r.ch == nil {
			continue
		}
		rep.Channels = append(rep.Channels, *r.ch)
		if !r.ch.OK {
			badChannels++
			rep.Differences += int(max(1, r.ch.MissingCount+r.ch.ExtraCount+r.ch.ChangedCount))
		}
		for _, c := range r.cons {
			rep.Consumers = append(rep.Consumers, c)
			if !c.OK {
				badConsumers++
				rep.Differences++
			}
		}
	}
	rep.OK = rep.Differences == 0
	if firstErr == nil && parent.Err() != nil {
		// Cancelled between channels: what was skipped is unverified.
		firstErr = fmt.Errorf("verify: %w", parent.Err())
	}
	if firstErr != nil {
		rep.OK = false
		return rep, firstErr
	}
	if !rep.OK {
		return rep, fmt.Errorf("%w: %d in %d channel(s) and %d consumer(s)", ErrDifferences, rep.Differences, badChannels, badConsumers)
	}
	return rep, nil
}

// bounds is what STAN says a channel holds when verification starts.
type bounds struct {
	known bool // from monitoring
	gone  bool // monitoring says the channel does not exist
	first uint64
	last  uint64
	msgs  uint64
	bytes uint64
}

func (b bounds) empty() bool { return b.gone || b.last == 0 || b.last < b.first }

func verifyChannel(ctx context.Context, src source, js jetstream.JetStream, c *plan.Channel, o *Options) (*ChannelReport, []ConsumerReport, error) {
	var (
		b      bounds
		cz     *monitor.Channelz
		starts map[string]uint64
	)
	if o.Store != nil {
		var broken error
		b, cz, starts, broken = dirBounds(o.Store, c.Name)
		if broken != nil {
			return unreadable(c, broken), nil, nil
		}
	} else if o.Monitor != nil {
		var err error
		cz, err = o.Monitor.Channel(ctx, c.Name)
		switch {
		case errors.Is(err, monitor.ErrNotFound):
			// Subscribing would create the channel: a verifier must not.
			b = bounds{known: true, gone: true}
			cz = nil
		case err != nil:
			return nil, nil, err
		default:
			b = bounds{known: true, first: cz.FirstSeq, last: cz.LastSeq, msgs: uint64(max(cz.Msgs, 0)), bytes: cz.Bytes}
		}
	}
	var (
		cr  *ChannelReport
		err error
	)
	if o.Sample > 0 {
		cr, err = sampleChannel(ctx, src, js, c, b, o.Sample, o.Progress)
	} else {
		cr, err = fullChannel(ctx, src, js, c, b, o.Progress)
	}
	if err != nil {
		if src.st != nil && errors.Is(err, stanstore.ErrBroken) {
			return unreadable(c, err), nil, nil
		}
		return nil, nil, err
	}
	cons, err := consumers(ctx, js, c, cz, o.Monitor != nil || o.Store != nil, starts)
	if err != nil {
		return nil, nil, err
	}
	return cr, cons, nil
}

// Channel compares one channel with its stream in full, learning the
// channel's first and last sequence by subscribing (no monitoring).
// clusterID only names the source in errors.
func Channel(ctx context.Context, stanConn stan.Conn, js jetstream.JetStream, clusterID string, c *plan.Channel) (*ChannelReport, error) {
	cr, err := fullChannel(ctx, source{sc: stanConn}, js, c, bounds{}, nil)
	if err != nil {
		return nil, fmt.Errorf("verify channel %q of cluster %q (stream %q): %w", c.Name, clusterID, c.Stream, err)
	}
	return cr, nil
}

// learnBounds finds the channel's last sequence without monitoring. An
// empty channel says nothing, so its position comes from the plan.
func learnBounds(ctx context.Context, sc stan.Conn, c *plan.Channel) (bounds, error) {
	m, err := oneMsg(ctx, sc, c.Name, learnTimeout, stan.StartWithLastReceived())
	if err != nil {
		return bounds{}, fmt.Errorf("learn last sequence: %w", err)
	}
	if m == nil {
		if c.Msgs == 0 {
			return bounds{first: c.FirstSeq, last: c.LastSeq}, nil
		}
		// Everything the plan saw has expired since.
		return bounds{first: c.LastSeq + 1, last: c.LastSeq}, nil
	}
	// first is learned from the first message the read delivers, or by
	// learnFirst.
	return bounds{first: 1, last: m.Sequence}, nil
}

// learnFirst finds the first sequence of a channel that learnBounds found
// not empty.
func learnFirst(ctx context.Context, sc stan.Conn, c *plan.Channel, b bounds, wait time.Duration) (bounds, error) {
	if b.empty() {
		return b, nil
	}
	m, err := oneMsg(ctx, sc, c.Name, wait, stan.DeliverAllAvailable())
	if err != nil {
		return bounds{}, fmt.Errorf("learn first sequence: %w", err)
	}
	if m != nil && m.Sequence <= b.last {
		b.first = m.Sequence
	}
	return b, nil
}

// oneMsg subscribes at a start position and returns the first message
// delivered, or nil after wait.
func oneMsg(ctx context.Context, sc stan.Conn, channel string, wait time.Duration, start stan.SubscriptionOption) (*stan.Msg, error) {
	got := make(chan *stan.Msg, 1)
	sub, err := sc.Subscribe(channel, func(m *stan.Msg) {
		select {
		case got <- m:
		default:
		}
	}, start, stan.MaxInflight(1))
	if err != nil {
		return nil, err
	}
	// A non-durable subscription: unsubscribing drops only our cursor.
	defer func() { _ = sub.Unsubscribe() }()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case m := <-got:
		return m, nil
	case <-t.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// openStream returns the stream and its state at start; nil when the
// stream does not exist.
func openStream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, *jetstream.StreamState, error) {
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("stream info: %w", err)
	}
	st := s.CachedInfo().State
	return s, &st, nil
}

// msgCost is what the client holds per message of the channel: its
// average payload plus msgOverhead; 0 when nothing says.
func msgCost(b bounds, c *plan.Channel) uint64 {
	msgs, size := b.msgs, b.bytes
	if !b.known {
		msgs, size = c.Msgs, c.Bytes
	}
	if msgs == 0 {
		return 0
	}
	return size/msgs + msgOverhead
}

// window sizes STAN's windows so that the open ones hold about
// inflightBytes.
func window(cost uint64) int {
	if cost == 0 {
		return maxWindow
	}
	return int(max(min(maxWindow, inflightBytes/stanDepth/cost), minWindow))
}

// feedLimit sizes a hand-off to the merger so that it holds about
// feedBytes.
func feedLimit(cost uint64) int {
	if cost == 0 {
		return maxFeed
	}
	return int(max(min(maxFeed, feedBytes/cost), minFeed))
}

// merger walks both sides in sequence order. Everything per message runs
// on its goroutine, hashing included, so the client callbacks only hand
// messages over.
//
// While both sides agree, ds and dt are one digest, fed once per pair: the
// two hashes are over the same bytes until the first difference, where
// the digest is forked and each side goes on alone.
type merger struct {
	rep     *ChannelReport
	channel string
	sr      *stanReader
	tr      *streamReader
	sc      stan.Conn
	js      jetstream.JetStream

	stanLast, streamLast uint64
	stanPrev, streamPrev uint64
	stanDone, streamDone bool
	stanFirst            uint64 // first sequence read from STAN

	ds, dt *digest.Channel
	timer  *time.Timer

	progress     func(string, uint64)
	sinceReport  uint64
	lastReported time.Time
}

// nextSTAN returns the next STAN message up to stanLast, or nil once the
// side is finished (read to the end, or silent for idleTimeout).
func (m *merger) nextSTAN(ctx context.Context) (*stan.Msg, error) {
	for {
		msg, why, err := m.sr.feed.next(ctx, m.timer, m.sr.ended)
		switch {
		case err != nil:
			return nil, err
		case why == sourceEnded:
			m.stanDone = true
			if m.sr.err != nil {
				return nil, m.sr.err
			}
			if m.stanPrev < m.stanLast {
				m.rep.notes = append(m.rep.notes, fmt.Sprintf("the STAN directory holds nothing after sequence %d though the channel's last sequence is %d", m.stanPrev, m.stanLast))
			}
			return nil, nil
		case why == wentIdle:
			m.stanDone = true
			if m.sc != nil && !m.sc.NatsConn().IsConnected() {
				return nil, fmt.Errorf("STAN connection lost after sequence %d", m.stanPrev)
			}
			m.rep.notes = append(m.rep.notes, fmt.Sprintf("STAN delivered nothing for %v after sequence %d though the channel's last sequence was %d",
				idleTimeout, m.stanPrev, m.stanLast))
			return nil, nil
		}
		seq := msg.Sequence
		if seq <= m.stanPrev {
			continue // merged already
		}
		if seq > m.stanLast {
			m.stanDone = true
			return nil, nil
		}
		if m.stanPrev == 0 {
			m.stanFirst = seq
		}
		m.stanPrev = seq
		m.stanDone = seq >= m.stanLast
		return msg, nil
	}
}

// nextStream is nextSTAN for the stream side. It also stops when the
// server says nothing is pending: a stream whose last message was deleted
// keeps that sequence as its last, and would otherwise never finish.
func (m *merger) nextStream(ctx context.Context) (jetstream.Msg, uint64, error) {
	for {
		msg, why, err := m.tr.feed.next(ctx, m.timer, nil)
		if err != nil {
			return nil, 0, err
		}
		if why != gotOne {
			m.streamDone = true
			if !m.js.Conn().IsConnected() {
				return nil, 0, fmt.Errorf("JetStream connection lost after stream sequence %d", m.streamPrev)
			}
			m.rep.notes = append(m.rep.notes, fmt.Sprintf("the stream delivered nothing for %v after sequence %d though its last sequence was %d",
				idleTimeout, m.streamPrev, m.streamLast))
			return nil, 0, nil
		}
		seq, pending, ok := ackSeqs(msg.Reply())
		if !ok {
			md, err := msg.Metadata()
			if err != nil {
				return nil, 0, fmt.Errorf("stream message metadata: %w", err)
			}
			seq, pending = md.Sequence.Stream, md.NumPending
		}
		if seq <= m.streamPrev {
			continue
		}
		if seq > m.streamLast {
			m.streamDone = true
			return nil, 0, nil
		}
		m.streamPrev = seq
		m.streamDone = seq >= m.streamLast || pending == 0
		return msg, seq, nil
	}
}

// fork gives the stream side a digest of its own at the first difference.
func (m *merger) fork() error {
	if m.dt != m.ds {
		return nil
	}
	st, err := m.ds.State()
	if err == nil {
		m.dt, err = digest.Restore(st, m.ds.Count, m.ds.First, m.ds.Last)
	}
	if err != nil {
		return fmt.Errorf("fork the channel digest: %w", err)
	}
	return nil
}

func (m *merger) run(ctx context.Context) error {
	var (
		s    *stan.Msg
		t    jetstream.Msg
		tseq uint64
		err  error
	)
	r := m.rep
	for {
		if s == nil && !m.stanDone {
			if s, err = m.nextSTAN(ctx); err != nil {
				return err
			}
		}
		if t == nil && !m.streamDone {
			if t, tseq, err = m.nextStream(ctx); err != nil {
				return err
			}
		}
		switch {
		case s == nil && t == nil:
			m.report(true)
			return nil
		case t == nil || (s != nil && s.Sequence < tseq):
			if err := m.fork(); err != nil {
				return err
			}
			r.MissingCount++
			if len(r.Missing) < listed {
				r.Missing = append(r.Missing, s.Sequence)
			}
			m.ds.Add(s.Sequence, s.Subject, s.Data)
			s = nil
		case s == nil || tseq < s.Sequence:
			if err := m.fork(); err != nil {
				return err
			}
			r.ExtraCount++
			if len(r.Extra) < listed {
				r.Extra = append(r.Extra, tseq)
			}
			m.dt.Add(tseq, t.Subject(), t.Data())
			t = nil
		default:
			// Comparing the bytes decides exactly what comparing
			// digest.MessageSum would, and equal messages are hashed
			// once while the digests are shared.
			if s.Subject != t.Subject() || !bytes.Equal(s.Data, t.Data()) {
				if err := m.fork(); err != nil {
					return err
				}
				r.ChangedCount++
				if len(r.Changed) < listed {
					r.Changed = append(r.Changed, tseq)
				}
			}
			m.ds.Add(s.Sequence, s.Subject, s.Data)
			if m.dt != m.ds {
				m.dt.Add(tseq, t.Subject(), t.Data())
			}
			s, t = nil, nil
		}
		if m.progress != nil {
			m.sinceReport++
			if m.sinceReport%progressEvery == 0 {
				m.report(false)
			}
		}
	}
}

func (m *merger) report(final bool) {
	if m.progress == nil || m.sinceReport == 0 {
		return
	}
	if !final && time.Since(m.lastReported) < progressInterval {
		return
	}
	m.progress(m.channel, m.sinceReport)
	m.sinceReport = 0
	m.lastReported = time.Now()
}

// ackSeqs reads the stream sequence and the pending count from a JetStream
// ack subject without allocating, as the client's Metadata would:
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
//	$JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[.<token>]
func ackSeqs(reply string) (seq, pending uint64, ok bool) {
	if !strings.HasPrefix(reply, "$JS.ACK.") {
		return 0, 0, false
	}
	n := strings.Count(reply, ".") + 1
	seqPos, pendPos := 5, 8
	switch {
	case n == 9:
	case n >= 11:
		seqPos, pendPos = 7, 10
	default:
		return 0, 0, false
	}
	for i := 0; i <= pendPos; i++ {
		var tok string
		tok, reply, _ = strings.Cut(reply, ".")
		switch i {
		case seqPos:
			if seq, ok = parseNum(tok); !ok {
				return 0, 0, false
			}
		case pendPos:
			if pending, ok = parseNum(tok); !ok {
				return 0, 0, false
			}
		}
	}
	return seq, pending, true
}

func parseNum(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + uint64(s[i]-'0')
	}
	return n, true
}

// fullChannel streams both sides in sequence order and merges them, in
// memory bounded by STAN's window, the stream's pull batch and two small
// queues, whatever the channel's size.
func fullChannel(ctx context.Context, src source, js jetstream.JetStream, c *plan.Channel, b bounds, progress func(string, uint64)) (*ChannelReport, error) {
	r := &ChannelReport{Channel: c.Name, Stream: c.Stream}
	sc := src.sc
	if !b.known {
		var err error
		if b, err = learnBounds(ctx, sc, c); err != nil {
			return nil, err
		}
		// Reading from sequence 1 gets what the channel holds in any
		// case, but windows that start before the first sequence send
		// messages twice: worth a subscription when the range is longer
		// than a window.
		if b.last > uint64(window(msgCost(b, c))) {
			if b, err = learnFirst(ctx, sc, c, b, learnTimeout); err != nil {
				return nil, err
			}
		}
	}
	stream, state, err := openStream(ctx, js, c.Stream)
	if err != nil {
		return nil, err
	}
	d := digest.New()
	m := &merger{rep: r, channel: c.Name, sc: sc, js: js, ds: d, dt: d,
		progress: progress, lastReported: time.Now(), stanLast: b.last, stanDone: true, streamDone: true}
	m.timer = time.NewTimer(idleTimeout)
	m.timer.Stop()
	cost := msgCost(b, c)
	if !b.empty() {
		if src.st != nil {
			m.sr, err = startDir(src.st, c.Name, b.first, feedLimit(cost))
		} else {
			m.sr, err = startSTAN(sc, c.Name, b.first, b.last, window(cost), feedLimit(cost))
		}
		if err != nil {
			return nil, err
		}
		defer m.sr.stop()
		m.stanDone = false
	}
	if state != nil && state.Msgs > 0 {
		m.streamLast = state.LastSeq
		if m.tr, err = startStream(ctx, stream, feedLimit(cost)); err != nil {
			return nil, err
		}
		defer m.tr.stop()
		m.streamDone = false
	}
	if err := m.run(ctx); err != nil {
		return nil, err
	}

	r.Source = Side{Msgs: m.ds.Count, FirstSeq: b.first, LastSeq: b.last, SHA256: m.ds.Sum()}
	if !b.known && m.ds.Count > 0 {
		r.Source.FirstSeq = m.stanFirst
	}
	r.Target = Side{Msgs: m.dt.Count, SHA256: m.dt.Sum()}
	if state != nil {
		r.Target.FirstSeq, r.Target.LastSeq = state.FirstSeq, state.LastSeq
	}
	finish(r, b, state == nil)
	return r, nil
}

// finish decides OK and writes the one-line summary.
func finish(r *ChannelReport, b bounds, noStream bool) {
	if b.gone {
		r.notes = append([]string{"the channel no longer exists on STAN"}, r.notes...)
	}
	if noStream {
		r.notes = append([]string{fmt.Sprintf("stream %q does not exist on the target", r.Stream)}, r.notes...)
	}
	sameShape := r.Source.Msgs == r.Target.Msgs && r.Source.FirstSeq == r.Target.FirstSeq && r.Source.LastSeq == r.Target.LastSeq
	r.OK = sameShape && len(r.notes) == 0 && r.MissingCount+r.ExtraCount+r.ChangedCount == 0
	if r.OK {
		return
	}
	parts := slices.Clone(r.notes)
	if r.MissingCount > 0 {
		parts = append(parts, seqPhrase(r.MissingCount, r.Missing, "missing from the stream", "missing from the stream"))
	}
	if r.ExtraCount > 0 {
		parts = append(parts, seqPhrase(r.ExtraCount, r.Extra, "in the stream but not on STAN", "in the stream but not on STAN"))
	}
	if r.ChangedCount > 0 {
		parts = append(parts, seqPhrase(r.ChangedCount, r.Changed, "differs (subject or payload)", "differ (subject or payload)"))
	}
	if !sameShape {
		parts = append(parts, fmt.Sprintf("STAN has %s, the stream %s", shape(r.Source), shape(r.Target)))
	}
	r.Problem = fmt.Sprintf("channel %q (stream %q): %s", r.Channel, r.Stream, strings.Join(parts, "; "))
}

func seqPhrase(n uint64, seqs []uint64, one, many string) string {
	if n == 1 && len(seqs) == 1 {
		return fmt.Sprintf("sequence %d %s", seqs[0], one)
	}
	list := make([]string, len(seqs))
	for i, s := range seqs {
		list[i] = strconv.FormatUint(s, 10)
	}
	more := ""
	if n > uint64(len(seqs)) {
		more = ", ..."
	}
	return fmt.Sprintf("%d sequences %s: %s%s", n, many, strings.Join(list, ", "), more)
}

func shape(s Side) string {
	if s.Msgs == 0 {
		return fmt.Sprintf("no messages (first %d, last %d)", s.FirstSeq, s.LastSeq)
	}
	return fmt.Sprintf("%d message(s) %d..%d", s.Msgs, s.FirstSeq, s.LastSeq)
}

// sampleChannel compares counts and first/last in full, and n random
// sequences message by message.
func sampleChannel(ctx context.Context, src source, js jetstream.JetStream, c *plan.Channel, b bounds, n int, progress func(string, uint64)) (*ChannelReport, error) {
	r := &ChannelReport{Channel: c.Name, Stream: c.Stream}
	sc := src.sc
	if !b.known {
		var err error
		if b, err = learnBounds(ctx, sc, c); err != nil {
			return nil, err
		}
		if b, err = learnFirst(ctx, sc, c, b, sampleTimeout); err != nil {
			return nil, err
		}
		// Without monitoring the count is the range: STAN removes
		// messages only from the front (clustered gap-fill placeholders
		// would make this an overcount).
		if !b.empty() {
			b.msgs = b.last - b.first + 1
		}
	}
	stream, state, err := openStream(ctx, js, c.Stream)
	if err != nil {
		return nil, err
	}
	r.Source = Side{Msgs: b.msgs, FirstSeq: b.first, LastSeq: b.last}
	if b.empty() {
		r.Source.Msgs = 0
	}
	if state != nil {
		r.Target = Side{Msgs: state.Msgs, FirstSeq: state.FirstSeq, LastSeq: state.LastSeq}
	}

	// Sample over both sides' ranges so that either side's surplus can
	// show up.
	var lo, hi uint64
	has := false
	widen := func(first, last uint64) {
		if last == 0 || last < first {
			return
		}
		first = max(first, 1)
		if !has {
			lo, hi, has = first, last, true
			return
		}
		lo, hi = min(lo, first), max(hi, last)
	}
	if !b.empty() {
		widen(b.first, b.last)
	}
	if state != nil && state.Msgs > 0 {
		widen(state.FirstSeq, state.LastSeq)
	}
	var seqs []uint64
	if has {
		seqs = pick(lo, hi, n)
	}
	var since uint64
	last := time.Now()
	for _, seq := range seqs {
		var sm *stan.Msg
		if !b.empty() && seq >= b.first && seq <= b.last {
			var m *stan.Msg
			if src.st != nil {
				m, err = oneDirMsg(src.st, c.Name, seq)
			} else {
				m, err = oneMsg(ctx, sc, c.Name, sampleTimeout, stan.StartAtSequence(seq))
			}
			if err != nil {
				return nil, fmt.Errorf("read sequence %d: %w", seq, err)
			}
			if m != nil && m.Sequence == seq {
				sm = m
			}
		}
		var tm *jetstream.RawStreamMsg
		if state != nil && state.Msgs > 0 && seq >= state.FirstSeq && seq <= state.LastSeq {
			tm, err = stream.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				tm, err = nil, nil
			}
			if err != nil {
				return nil, fmt.Errorf("get stream sequence %d: %w", seq, err)
			}
		}
		switch {
		case sm != nil && tm == nil:
			r.MissingCount++
			if len(r.Missing) < listed {
				r.Missing = append(r.Missing, seq)
			}
		case sm == nil && tm != nil:
			r.ExtraCount++
			if len(r.Extra) < listed {
				r.Extra = append(r.Extra, seq)
			}
		case sm != nil && tm != nil:
			if sm.Subject != tm.Subject || !bytes.Equal(sm.Data, tm.Data) {
				r.ChangedCount++
				if len(r.Changed) < listed {
					r.Changed = append(r.Changed, seq)
				}
			}
		}
		r.Sampled++
		since++
		if progress != nil && time.Since(last) >= progressInterval {
			progress(c.Name, since)
			since, last = 0, time.Now()
		}
	}
	if progress != nil && since > 0 {
		progress(c.Name, since)
	}
	finish(r, b, state == nil)
	return r, nil
}

// pick returns min(n, hi-lo+1) distinct sequences in [lo, hi], ascending:
// all of them when n covers the range, otherwise a uniform random set
// (Floyd's algorithm, memory proportional to n).
func pick(lo, hi uint64, n int) []uint64 {
	size := hi - lo + 1
	if uint64(n) >= size {
		out := make([]uint64, 0, size)
		for s := lo; s <= hi; s++ {
			out = append(out, s)
		}
		return out
	}
	chosen := make(map[uint64]struct{}, n)
	for j := size - uint64(n); j < size; j++ {
		v := rand.Uint64N(j + 1)
		if _, dup := chosen[v]; dup {
			v = j
		}
		chosen[v] = struct{}{}
	}
	out := make([]uint64, 0, n)
	for v := range chosen {
		out = append(out, lo+v)
	}
	slices.Sort(out)
	return out
}

// consumers checks each planned durable's consumer: it exists, starts
// where STAN would resume the durable, and carries the planned ack wait
// and max ack pending.
//
// starts, when not nil, holds each durable's exact start (by Key), known
// from the store directory's pending sets: it is then the expected start
// whatever the consumer recorded.
func consumers(ctx context.Context, js jetstream.JetStream, c *plan.Channel, cz *monitor.Channelz, haveMonitor bool, starts map[string]uint64) ([]ConsumerReport, error) {
	var out []ConsumerReport
	lives := map[string]plan.Durable{}
	if cz != nil {
		lives = plan.DurablesByKey(cz)
	}
	for i := range c.Durables {
		d := &c.Durables[i]
		if d.Skip {
			continue
		}
		r := ConsumerReport{Channel: c.Name, Stream: c.Stream, Durable: d.Key(), Consumer: d.Consumer}
		var problems []string
		say := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
		l, known := lives[d.Key()]
		if haveMonitor && !known {
			say("STAN no longer has this durable")
		}
		exact, haveExact := starts[d.Key()]

		ci, err := migrate.ConsumerInfo(ctx, js, c.Stream, d.Consumer)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
			r.Expected = expectedExact(d, l, known, c)
			if haveExact {
				r.Expected = exact
			}
			say("consumer not found")
		case err != nil:
			return nil, fmt.Errorf("consumer %q on stream %q: %w", d.Consumer, c.Stream, err)
		default:
			cfg := ci.Config
			md := cfg.Metadata
			r.Actual = cfg.OptStartSeq
			r.Position = md[migrate.MetaPosition]
			if md[migrate.MetaChannel] != "" && (md[migrate.MetaChannel] != c.Name || md[migrate.MetaDurable] != d.Durable || md[migrate.MetaQueue] != d.QueueGroup) {
				say("its metadata names channel %q, durable %q, queue group %q: it was not made for this durable",
					md[migrate.MetaChannel], md[migrate.MetaDurable], md[migrate.MetaQueue])
			}
			if md[migrate.MetaSettled] == "no" {
				say("migrate stopped while reproducing STAN's acknowledged set on it: re-run migrate")
			}
			switch {
			case haveExact:
				// The store's pending set gives the lowest
				// unacknowledged sequence exactly.
				r.Expected = exact
			case r.Position == migrate.PositionProbed || r.Position == migrate.PositionStored:
				// A probe (or the store files, for a migration from a
				// directory) gave the lowest unacknowledged sequence,
				// which monitoring cannot show; trust the recorded start
				// while STAN's durable still agrees with it.
				start, err := strconv.ParseUint(md[migrate.MetaStart], 10, 64)
				if err != nil {
					say("metadata %s is %q, not a sequence", migrate.MetaStart, md[migrate.MetaStart])
				}
				r.Expected = start
				if known {
					if l.Online {
						say("the durable's owner is online on STAN, so its position may have moved since the probe")
					}
					if l.Pending == 0 && l.LastSent+1 < start {
						say("STAN has nothing pending and would resume at sequence %d, before the probed start %d", l.LastSent+1, start)
					}
				}
			default:
				r.Expected = expectedExact(d, l, known, c)
			}
			if cfg.DeliverPolicy != jetstream.DeliverByStartSequencePolicy {
				say("delivers by policy %q, not from a start sequence (expected sequence %d)", cfg.DeliverPolicy.String(), r.Expected)
			} else if r.Actual != r.Expected {
				say("starts at sequence %d, expected %d", r.Actual, r.Expected)
			}
			if d.AckWait > 0 && cfg.AckWait != d.AckWait.D() {
				say("ack wait %v, the plan says %v", cfg.AckWait, d.AckWait.D())
			}
			if d.MaxInflight > 0 && cfg.MaxAckPending != d.MaxInflight {
				say("max ack pending %d, the plan's max_inflight is %d", cfg.MaxAckPending, d.MaxInflight)
			}
		}
		r.OK = len(problems) == 0
		if !r.OK {
			r.Problem = fmt.Sprintf("consumer %q on stream %q for %s: %s", d.Consumer, c.Stream, d.Describe(c.Name), strings.Join(problems, "; "))
		}
		out = append(out, r)
	}
	return out, nil
}

// expectedExact is where STAN resumes a durable with nothing pending.
// The channel's first sequence is the plan's: migrate positioned the
// stream and the consumer with it.
func expectedExact(d *plan.Durable, l plan.Durable, known bool, c *plan.Channel) uint64 {
	lastSent := d.LastSent
	if known {
		lastSent = l.LastSent
	}
	return max(lastSent+1, c.FirstSeq)
}
