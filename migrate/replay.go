package migrate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/digest"
	"github.com/stanmigrate/stanmigrate/internal/fastingest"
	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/plan"
)

const (
	// stanAckWait is how long STAN waits for the migrator's ack before
	// sending a message again: longer than a JetStream ack can take.
	stanAckWait     = 60 * time.Second
	checkpointEvery = time.Second
	publishTimeout  = 5 * time.Second
)

// finisher turns Options.Finish / IdleFinish into a per-channel signal.
type finisher struct {
	ch   <-chan struct{}
	idle time.Duration
	done atomic.Bool
}

func newFinisher(o Options) *finisher { return &finisher{ch: o.Finish, idle: o.IdleFinish} }

func (f *finisher) finished() bool {
	if f.done.Load() {
		return true
	}
	if f.ch != nil {
		select {
		case <-f.ch:
			f.done.Store(true)
			return true
		default:
		}
	}
	return false
}

// item is one publish awaiting its JetStream ack.
type item struct {
	msg  source.Msg
	seq  uint64
	gap  bool
	size int
}

// attempt is one subscription's worth of replay: from a start sequence
// until the target, an error, or cancellation. A failed attempt is simply
// followed by a new one from the stream's actual last sequence.
type attempt struct {
	r      *runner
	c      *plan.Channel
	cp     *state.Checkpoint
	d      *digest.Channel
	from   uint64
	target atomic.Uint64
	fin    *finisher
	js     jetstream.JetStream
	pub    sender
	// carried is what each message carries besides its payload.
	carried jsformat.Carried
	// batched: publish in fast-ingest batches.
	batched bool
	// Per-attempt constants for the publish path.
	// ttl, when set, gives each message a Nats-TTL so it expires at its
	// STAN deadline (see expiry.go).
	ttl        *msgTTL
	maxPayload int64
	headroom   int64 // bound on what headers and subject add
	// streamEmpty: nothing stored yet, so a read that starts past the
	// requested sequence repositions the stream instead of filling.
	streamEmpty bool
	// leader is the stream's leader and reconnects the target
	// connection's reconnect count when the attempt began (see
	// targetMoved).
	leader     string
	reconnects uint64
	ctx        context.Context

	// delivery-goroutine state
	mu     sync.Mutex
	next   uint64
	closed bool
	// published is the last sequence handed to JetStream.
	published uint64

	inflight chan item
	stored   atomic.Uint64
	// received counts deliveries; the supervising loop notices when it
	// stops moving (cheaper than reading the clock per message).
	received atomic.Uint64
	failOnce sync.Once
	failErr  error
	failed   chan struct{}
	complete chan struct{}
	compOnce sync.Once

	copied, bytes uint64
	// already counts publishes refused because the stream held the
	// message already (a resend after a failover, or another worker).
	already uint64
	// saveErr: the checkpoint written as the attempt ended was not.
	saveErr        error
	finishedFollow bool
	// unconfirmed are the publishes the attempt stopped waiting for.
	unconfirmed []unconfirmed

	// The running hash is advanced as messages are published (see
	// publish); wantMark asks the publishing side for a digest.Mark, which
	// it leaves in mark for the acker to checkpoint once stored.
	wantMark atomic.Bool
	mark     atomic.Pointer[digest.Mark]

	// The last published sequence and its string, owned by the
	// publishing side like next.
	prevSeq    uint64
	prevSeqStr string

	// allow is the attempt's share of the run's rate limits (nil: none).
	allow *allowance
	// rate follows the copy rate for the checkpoint (owned by the acker).
	rate recentRate
}

func (r *runner) newAttempt(c *plan.Channel, cp *state.Checkpoint, d *digest.Channel, from, target uint64, fin *finisher, info *jetstream.StreamInfo, batched bool) *attempt {
	a := &attempt{r: r, c: c, cp: cp, d: d, from: from, fin: fin, next: from, streamEmpty: info.State.Msgs == 0,
		carried: jsformat.NewCarried(r.p.Source.ClusterID, c.Name, r.p.Headers, r.p.MsgID), batched: batched,
		reconnects: r.nc.Stats().Reconnects,
		failed:     make(chan struct{}), complete: make(chan struct{}),
		published:  from - 1,
		maxPayload: r.nc.MaxPayload(),
		headroom:   plan.MsgOverhead(r.p.Source.ClusterID, c.Name)}
	if info.Cluster != nil {
		a.leader = info.Cluster.Leader
	}
	if originalExpiry(c) {
		a.ttl = &msgTTL{maxAge: int64(c.Limits.MaxAge)}
		a.headroom += ttlHeadroom
	}
	if r.thr != nil {
		a.allow = &allowance{t: r.thr, channel: c.Name, obs: r.obs}
	}
	a.target.Store(target)
	a.stored.Store(from - 1)
	if m, err := d.Mark(); err == nil {
		a.mark.Store(&m)
	}
	return a
}

// hasFailed reports whether the attempt failed: nothing more may be
// published, a hole left by the failure being no gap in the channel.
func (a *attempt) hasFailed() bool {
	select {
	case <-a.failed:
		return true
	default:
		return false
	}
}

func (a *attempt) fail(err error) {
	a.failOnce.Do(func() {
		a.failErr = err
		close(a.failed)
	})
}

// window sizes the in-flight bound from the channel's average message
// size, so large messages bound memory by bytes, not count.
func (a *attempt) window() int {
	w := a.r.o.Window
	if a.c.Msgs > 0 {
		avg := int(a.c.Bytes/a.c.Msgs) + 1
		if byBytes := a.r.windowBytes / avg; byBytes < w {
			w = byBytes
		}
	}
	return max(w, 16)
}

func (a *attempt) run(ctx context.Context) error {
	a.ctx = ctx
	w := a.window()
	js, err := a.r.js()
	if err != nil {
		return err
	}
	a.js = js
	var pub sender
	if a.batched {
		pub, err = newBatchSender(a.r.nc, w, a.targetMoved)
	} else {
		pub, err = newAsyncSender(a.r.nc, w)
	}
	if err != nil {
		return err
	}
	defer pub.close()
	a.pub = pub
	a.inflight = make(chan item, w)
	ackerDone := make(chan struct{})
	go func() {
		defer close(ackerDone)
		a.acker(ctx)
	}()
	to := a.target.Load()
	if to == ^uint64(0) {
		to = 0 // following: no end
	}
	rd, err := a.r.src.Read(ctx, a.c.Name, a.from, a.readOptions(to, w))
	if err != nil {
		a.stop()
		<-ackerDone
		return fmt.Errorf("channel %q: read from sequence %d: %w", a.c.Name, a.from, err)
	}
	readerDone := rd.Done()
	lastCount, lastMsgAt := uint64(0), time.Now()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var result error
loop:
	for {
		select {
		case <-ctx.Done():
			result = ctx.Err()
			break loop
		case <-a.failed:
			result = a.failErr
			break loop
		case <-a.complete:
			break loop
		case <-readerDone:
			readerDone = nil
			err := rd.Err()
			if !errors.Is(err, source.ErrEnd) {
				if err == nil {
					err = a.failErr
				}
				result = err
				break loop
			}
			// Nothing more exists up to the target: what was never
			// delivered is a gap.
			if a.fillTo(a.target.Load()) {
				break loop
			}
		case <-tick.C:
			if n := a.received.Load(); n != lastCount {
				lastCount, lastMsgAt = n, time.Now()
			}
			if a.r.o.Follow && a.target.Load() == ^uint64(0) {
				if a.fin.finished() || (a.fin.idle > 0 && time.Since(lastMsgAt) >= a.fin.idle) {
					a.fin.done.Store(true)
					a.finishedFollow = true
					break loop
				}
			}
		}
	}
	a.stop()
	_ = rd.Close()
	<-ackerDone
	if result == nil && a.failErr != nil {
		result = a.failErr
	}
	if result == nil {
		result = a.saveErr
	}
	return result
}

// readOptions reads up to a known last sequence (to > 0) without
// acknowledging, where memory allows: what is stored is known from the
// stream, not from STAN, and STAN handling an ack per message costs about
// a third of a read. STAN then sends windows of half the in-flight bound
// ahead of the publisher, so up to twice the bound is held: only where
// that stays within the channel's share of WindowBytes (small messages;
// large ones gain little, their acks being a small part of their cost).
// A follow has no last sequence, and reads with acknowledgements so that
// STAN paces it. Either read is contiguous: a skip is taken for a gap
// only where a read starts (see onMsg).
func (a *attempt) readOptions(to uint64, w int) source.ReadOptions {
	// Bytes is 0 where the plan does not know it (no monitoring).
	if to > 0 && a.c.Msgs > 0 && a.c.Bytes > 0 && 2*uint64(w)*(a.c.Bytes/a.c.Msgs+1) <= uint64(a.r.windowBytes) {
		return source.ReadOptions{Deliver: a.onMsg, MaxInflight: max(w/source.WindowDepth, 1), To: to, Contiguous: true}
	}
	return source.ReadOptions{Deliver: a.onMsg, Acks: true, MaxInflight: w, AckWait: stanAckWait, To: to}
}

// stop ends reading; the acker drains what is in flight.
func (a *attempt) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.closed {
		a.closed = true
		close(a.inflight)
	}
}

// onMsg receives the source's messages, one at a time, in sequence order
// (a live server sends a message again after AckWait, which can bring
// older sequences again). A sequence the source skips is a gap: expired
// or dropped by limits meanwhile, or a clustered server's gap-fill.
func (a *attempt) onMsg(m source.Msg) bool {
	// Waited for outside the lock, so that stopping the attempt never
	// waits for the rate limit.
	if a.allow != nil && a.allow.take(a.ctx, len(m.Data)) != nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	// After a failed publish the next sequence would look like a gap.
	if a.hasFailed() {
		return false
	}
	seq := m.Sequence
	a.received.Add(1)
	if seq < a.next {
		if seq <= a.stored.Load() {
			_ = m.Ack()
		}
		return true
	}
	if seq > a.target.Load() {
		return true
	}
	if seq > a.next && !a.skipTo(seq) {
		return false
	}
	return a.publish(m, seq, false)
}

// fillTo keeps sequences up to target that the source does not hold as
// placeholders (or repositions an empty stream past them). It reports
// whether nothing is left to wait for.
func (a *attempt) fillTo(target uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || target == ^uint64(0) || a.hasFailed() {
		return false
	}
	if a.next <= target && !a.skipTo(target+1) {
		return false
	}
	return a.stored.Load() >= a.published
}

// skipTo keeps stream sequence == channel sequence across sequences STAN
// no longer has: an empty stream is simply repositioned (as when it was
// created); after stored messages, placeholders fill the hole and are
// deleted once stored.
func (a *attempt) skipTo(seq uint64) bool {
	if a.streamEmpty {
		s, err := a.js.Stream(a.ctx, a.c.Stream)
		if err == nil {
			err = s.Purge(a.ctx, jetstream.WithPurgeSequence(seq))
		}
		if err != nil {
			a.fail(fmt.Errorf("stream %q: reposition at sequence %d (STAN starts there now): %w", a.c.Stream, seq, err))
			return false
		}
		a.cp.FirstSeq = seq
		a.next = seq
		a.published = seq - 1
		a.stored.Store(seq - 1)
		return true
	}
	for s := a.next; s < seq; s++ {
		if !a.publish(source.Msg{}, s, true) {
			return false
		}
	}
	return true
}

func (a *attempt) publish(m source.Msg, seq uint64, gap bool) bool {
	p := a.pub
	h := p.header()
	seqStr := strconv.FormatUint(seq, 10)
	// Publishes are consecutive, so the expected last sequence is
	// nearly always the previous message's own: one allocation less.
	prev := a.prevSeqStr
	if a.prevSeq != seq-1 || prev == "" {
		prev = strconv.FormatUint(seq-1, 10)
	}
	a.prevSeq, a.prevSeqStr = seq, seqStr
	jsformat.Set(h, jsformat.HdrExpectedLastSeq, prev)
	a.carried.Put(h, seqStr, m.Timestamp, gap)
	var data []byte
	switch {
	case gap:
		delete(h, jsformat.HdrTTL)
	case a.ttl != nil:
		jsformat.Set(h, jsformat.HdrTTL, a.ttl.value(m.Timestamp, time.Now()))
	}
	if !gap {
		data = m.Data
		// Exact sizing only near the limit: the bound is cheap, the walk
		// over the headers is not.
		if a.maxPayload > 0 && int64(len(data))+a.headroom > a.maxPayload &&
			int64(len(data)+headerSize(h)+len(a.c.Name)) > a.maxPayload {
			a.fail(permanent{fmt.Errorf("channel %q sequence %d: message of %d bytes does not fit the target's max_payload %d once migration headers are added: raise max_payload on the target: %w",
				a.c.Name, seq, len(m.Data), a.maxPayload, ErrTooLarge)})
			return false
		}
	}
	if !gap {
		// Hashed here, while the payload is still in the CPU's cache:
		// in the acker, a window later, the SHA-256 of a 64 KiB payload
		// costs about half as much again.
		a.d.Add(seq, m.Subject, m.Data)
		if a.wantMark.Load() {
			if mk, err := a.d.Mark(); err == nil {
				a.mark.Store(&mk)
			}
			a.wantMark.Store(false)
		}
	}
	if err := p.publish(a.c.Name, seqStr, seq, data); err != nil {
		switch {
		case errors.Is(err, fastingest.ErrUnsupported):
			// Stored as an ordinary publish: the acker counts it.
			a.inflight <- item{msg: m, seq: seq, gap: gap, size: len(m.Data)}
			a.next, a.published = seq+1, seq
		case errors.Is(err, fastingest.ErrTimeout):
			// Sent, but the batch start went unanswered: it may have
			// landed all the same. The acker finds the publisher failed
			// at this sequence and keeps it as unconfirmed, so the next
			// attempt counts it if the stream holds it.
			a.inflight <- item{msg: m, seq: seq, gap: gap, size: len(m.Data)}
		}
		// A batch start refused for a full target is as permanent as a
		// refusal acknowledged later.
		a.fail(a.classifyPublishErr(seq, fmt.Errorf("publish: %w", err)))
		return false
	}
	it := item{msg: m, seq: seq, gap: gap, size: len(m.Data)}
	a.inflight <- it
	a.next = seq + 1
	a.published = seq
	a.streamEmpty = false
	return true
}

func headerSize(h nats.Header) int {
	n := 12
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}
