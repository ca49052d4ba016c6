package migrate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/digest"
	"github.com/stanmigrate/stanmigrate/internal/naming"
	"github.com/stanmigrate/stanmigrate/plan"
)

var (
	errSTANStalled = errors.New("no message from STAN")
	// errJump: STAN delivered past the next sequence in the middle of a
	// subscription. After a server restart that happens while the skipped
	// messages are still owed as redeliveries, so it is not a gap: resume
	// with a fresh subscription from the next sequence.
	errJump = errors.New("STAN skipped ahead mid-subscription")
)

const (
	stanAckWait     = 60 * time.Second
	stallTimeout    = 10 * time.Second
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
	msg  *stan.Msg
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
	cp     *Checkpoint
	d      *digest.Channel
	from   uint64
	target atomic.Uint64
	fin    *finisher
	js     jetstream.JetStream
	pub    *publisher
	sc     *conn.STAN
	full   bool
	// Per-attempt constants for the publish path.
	idPrefix   string // "<cluster>:<channel>:"
	maxPayload int64
	headroom   int64 // bound on what headers and subject add
	// streamEmpty: nothing stored yet, so a subscription that starts past
	// the requested sequence repositions the stream instead of filling.
	streamEmpty bool
	ctx         context.Context

	// callback-goroutine state
	mu      sync.Mutex
	next    uint64
	closed  bool
	started bool // a message was handled on this subscription

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

	copied, bytes  uint64
	finishedFollow bool

	// The running hash is advanced as messages are published (see
	// publish); wantMark asks the publishing side for a digest.Mark, which
	// it leaves in mark for the acker to checkpoint once stored.
	wantMark atomic.Bool
	mark     atomic.Pointer[digest.Mark]

	// The last published sequence and its string, owned by the
	// publishing side like next.
	prevSeq    uint64
	prevSeqStr string
}

func (r *runner) newAttempt(c *plan.Channel, cp *Checkpoint, d *digest.Channel, from, target uint64, fin *finisher, streamEmpty bool) *attempt {
	a := &attempt{r: r, c: c, cp: cp, d: d, from: from, fin: fin, next: from, streamEmpty: streamEmpty,
		failed: make(chan struct{}), complete: make(chan struct{}), full: r.p.Headers != plan.HeadersMinimal,
		idPrefix:   naming.MsgIDPrefix(r.p.Source.ClusterID, c.Name),
		maxPayload: r.nc.MaxPayload(),
		headroom:   int64(plan.HeaderOverhead + 3*len(c.Name) + len(r.p.Source.ClusterID))}
	a.target.Store(target)
	a.stored.Store(from - 1)
	if m, err := d.Mark(); err == nil {
		a.mark.Store(&m)
	}
	return a
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
	js, err := jetstream.New(a.r.nc)
	if err != nil {
		return err
	}
	a.js = js
	pub, err := newPublisher(a.r.nc, w)
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
	lastCount, lastMsgAt := uint64(0), time.Now()
	var sub stan.Subscription
	readerDone := make(chan struct{})
	if st := a.r.o.Offline; st != nil {
		go func() {
			defer close(readerDone)
			a.readStore(st)
		}()
	} else {
		close(readerDone)
		sc, err := a.r.stanConn(ctx)
		if err == nil {
			a.sc = sc
			sub, err = sc.SC.Subscribe(a.c.Name, a.onMsg,
				stan.StartAtSequence(a.from),
				stan.SetManualAckMode(),
				stan.MaxInflight(w),
				stan.AckWait(stanAckWait))
			if err != nil {
				err = fmt.Errorf("channel %q: subscribe from sequence %d: %w", a.c.Name, a.from, err)
			}
		}
		if err != nil {
			a.stop()
			<-ackerDone
			return err
		}
	}
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
		case <-tick.C:
			if n := a.received.Load(); n != lastCount {
				lastCount, lastMsgAt = n, time.Now()
			}
			idle := time.Since(lastMsgAt)
			if a.r.o.Follow && a.target.Load() == ^uint64(0) {
				if a.fin.finished() || (a.fin.idle > 0 && idle >= a.fin.idle) {
					a.fin.done.Store(true)
					a.finishedFollow = true
					break loop
				}
				continue
			}
			if idle > stallTimeout {
				result = fmt.Errorf("channel %q: no message from STAN for %v at sequence %d: %w", a.c.Name, stallTimeout, a.stored.Load()+1, errSTANStalled)
				break loop
			}
		}
	}
	a.stop()
	// Closing a non-durable subscription only drops the migrator's own
	// cursor; the channel and every durable stay as they were.
	if sub != nil {
		_ = sub.Unsubscribe()
	}
	<-readerDone
	<-ackerDone
	if result == nil && a.failErr != nil {
		result = a.failErr
	}
	return result
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

// onMsg runs on the subscription's delivery goroutine, one message at a
// time, in sequence order (STAN redelivers after AckWait, which can bring
// older sequences again).
func (a *attempt) onMsg(m *stan.Msg) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	seq := m.Sequence
	a.received.Add(1)
	if seq < a.next {
		if seq <= a.stored.Load() {
			_ = m.Ack()
		}
		return
	}
	target := a.target.Load()
	if seq > target {
		return
	}
	if seq > a.next && a.started {
		a.fail(fmt.Errorf("channel %q: expected sequence %d, got %d: %w", a.c.Name, a.next, seq, errJump))
		a.closed = true
		close(a.inflight)
		return
	}
	a.started = true
	if seq > a.next {
		// The first message of a fresh subscription started past the
		// requested sequence: those sequences are gone from STAN (expired
		// or dropped by limits meanwhile, or clustered gap-fill).
		if !a.skipTo(seq) {
			return
		}
	}
	a.publish(m, seq, false)
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
		return true
	}
	for s := a.next; s < seq; s++ {
		if !a.publish(nil, s, true) {
			return false
		}
	}
	return true
}

func (a *attempt) publish(m *stan.Msg, seq uint64, gap bool) bool {
	p := a.pub
	seqStr := strconv.FormatUint(seq, 10)
	p.set(jetstream.MsgIDHeader, a.idPrefix+seqStr)
	// Publishes are consecutive, so the expected last sequence is
	// nearly always the previous message's own: one allocation less.
	prev := a.prevSeqStr
	if a.prevSeq != seq-1 || prev == "" {
		prev = strconv.FormatUint(seq-1, 10)
	}
	a.prevSeq, a.prevSeqStr = seq, seqStr
	p.set(jetstream.ExpectedLastSeqHeader, prev)
	var data []byte
	if gap {
		p.set(hdrGap, "true")
		p.del(HdrChannel)
		p.del(HdrSequence)
		p.del(HdrTimestamp)
	} else {
		data = m.Data
		p.del(hdrGap)
		if a.full {
			p.set(HdrChannel, a.c.Name)
			p.set(HdrSequence, seqStr)
		}
		p.set(HdrTimestamp, time.Unix(0, m.Timestamp).UTC().Format(time.RFC3339Nano))
		// Exact sizing only near the limit: the bound is cheap, the walk
		// over the headers is not.
		if a.maxPayload > 0 && int64(len(data))+a.headroom > a.maxPayload &&
			int64(len(data)+headerSize(p.hdr)+len(a.c.Name)) > a.maxPayload {
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
	if err := p.publish(a.c.Name, seqStr, data); err != nil {
		a.fail(fmt.Errorf("channel %q sequence %d: publish: %w", a.c.Name, seq, err))
		return false
	}
	it := item{msg: m, seq: seq, gap: gap}
	if m != nil {
		it.size = len(m.Data)
	}
	a.inflight <- it
	a.next = seq + 1
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

// acker resolves publishes in order: only after JetStream stored a
// message is it acknowledged on STAN and counted in the checkpoint.
func (a *attempt) acker(ctx context.Context) {
	// Checkpoints are written (with two fsyncs) by a goroutine of their
	// own: in the acker they stalled the pipeline once a second. A
	// snapshot the saver is too busy to take is skipped; the next one
	// supersedes it, and the final save below is synchronous.
	saves := make(chan Checkpoint, 1)
	saverDone := make(chan struct{})
	go func() {
		defer close(saverDone)
		for snap := range saves {
			_ = a.r.state.Save(&snap)
		}
	}()
	// confirmed is the latest mark of the running hash known to be stored
	// in full; checkpoints record it, not the digest, which is ahead.
	confirmed := a.mark.Load()
	defer func() {
		close(saves)
		<-saverDone
		// Publishing has stopped. Hashed messages that never got
		// stored are taken back out: the digest goes back to the last
		// stored mark, and the next attempt's reconcile rehashes the
		// rest from the stream.
		if a.d.Last > a.cp.LastSeq && confirmed != nil {
			if err := a.d.Rewind(*confirmed); err != nil {
				*a.d = *digest.New()
			}
		}
		a.r.saveCheckpoint(a.cp, a.d)
	}()
	lastSave := time.Now()
	timer := time.NewTimer(publishTimeout)
	defer timer.Stop()
	var progMsgs, progBytes uint64
	flushProgress := func() {
		if progMsgs > 0 {
			a.r.o.Reporter.Progress(progMsgs, progBytes)
			progMsgs, progBytes = 0, 0
		}
	}
	defer flushProgress()
	broken := false
	for it := range a.inflight {
		if broken {
			continue
		}
		err := a.pub.await(it.seq, timer, publishTimeout)
		if err != nil {
			broken = true
			a.fail(a.classifyPublishErr(it.seq, err))
			continue
		}
		if it.gap {
			if err := a.deleteGap(ctx, it.seq); err != nil {
				broken = true
				a.fail(err)
				continue
			}
		} else {
			if it.msg.Sub != nil { // nil: read from a store directory
				_ = it.msg.Ack()
			}
			a.copied++
			a.bytes += uint64(it.size)
			progMsgs++
			progBytes += uint64(it.size)
		}
		a.stored.Store(it.seq)
		a.cp.LastSeq = it.seq
		// The clock and the progress callback every 512 messages, or
		// when the pipeline runs dry (a trickle while following).
		if progMsgs < 512 && len(a.inflight) > 0 && !it.gap && it.seq < a.target.Load() {
			continue
		}
		flushProgress()
		if time.Since(lastSave) >= checkpointEvery {
			if m := a.mark.Load(); m != nil && m.Last <= it.seq {
				confirmed = m
			}
			if confirmed != nil {
				snap := *a.cp
				snap.SetMark(*confirmed)
				select {
				case saves <- snap:
				default:
				}
			}
			a.wantMark.Store(true)
			lastSave = time.Now()
		}
		if it.seq >= a.target.Load() {
			a.compOnce.Do(func() { close(a.complete) })
		}
	}
}

func (a *attempt) deleteGap(ctx context.Context, seq uint64) error {
	s, err := a.js.Stream(ctx, a.c.Stream)
	if err == nil {
		err = s.DeleteMsg(ctx, seq)
	}
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("channel %q: remove gap placeholder at sequence %d: %w", a.c.Name, seq, err)
	}
	return nil
}

// classifyPublishErr decides whether a failed publish stops the run.
func (a *attempt) classifyPublishErr(seq uint64, err error) error {
	base := fmt.Errorf("channel %q sequence %d: %w", a.c.Name, seq, err)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
			// Something else wrote to the stream, or an earlier publish
			// landed after all: the next attempt starts from the stream's
			// actual last sequence and checks whose message it is.
			return base
		}
	}
	if isLimitErr(err) {
		return permanent{fmt.Errorf("stream %q (channel %q) at sequence %d: %v: the target is full or a limit was reached: free space or raise the limit, then re-run migrate: %w",
			a.c.Stream, a.c.Name, seq, err, ErrStorage)}
	}
	if strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
		return permanent{fmt.Errorf("%w: %w", base, conn.ErrPermission)}
	}
	return base
}
