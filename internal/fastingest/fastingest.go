// Package fastingest publishes one stream's messages with JetStream's
// fast-ingest batch protocol (nats-server 2.14 and later, streams with
// allow_batched), tracking exactly which stream sequence is durably stored.
//
// The protocol lives in the reply subject of every message,
//
//	<prefix>.<batch id>.<flow>.<gap mode>.<batch seq>.<op>.$FI
//
// with op 0 for a batch's first message, 1 for the next ones, 3 to end the
// batch without a message (EOB commit) and 4 to ask for the last flow ack
// again (ping). The server stores each message as it comes, checking its
// headers (Nats-Expected-Last-Sequence included) one by one, and answers on
// the message's reply subject only every N messages with a flow ack
// {"type":"ack","seq":k,"msgs":N}: with gap mode "fail", batch messages
// 1..k are stored. A failing message gets {"type":"err","seq":k,"error":…};
// the batch then ends, nothing after it is stored, and a PubAck with
// "batch" and "count" says how many were. The first message's error comes
// as an ordinary error PubAck instead.
//
// A Publisher keeps a batch open while messages keep coming and ends it
// (EOB) once publishing pauses for Options.Linger, so that the tail is
// acknowledged too and no batch sits idle long enough for the server's
// batch timeout (10 s by default) to drop it. The next Publish opens a new
// batch. Stream sequences must be consecutive across Publish calls; the
// caller puts Nats-Expected-Last-Sequence in the headers when it wants the
// server to check them (see SetExpectedLastSeq).
package fastingest

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/stanmigrate/stanmigrate/internal/jsformat"
)

// Errors a Publisher reports. They are wrapped with the stream sequence
// they concern; test with errors.Is.
var (
	// ErrNotEnabled: the stream does not allow fast-ingest batches
	// (allow_batched is off; JetStream error 10205). Nothing was stored
	// by the refused message: publish it and the rest another way.
	ErrNotEnabled = errors.New("fast-ingest batches are not enabled on the stream (allow_batched)")
	// ErrUnsupported: the server took the first message as an ordinary
	// publish (a server older than 2.14 does not know the protocol). That
	// message is stored; Stored says so.
	ErrUnsupported = errors.New("the server does not support fast-ingest batches (nats-server 2.14 or later needed)")
	// ErrGap: the server saw a batch sequence missing (messages lost in
	// transit, as across a reconnect) and ended the batch.
	ErrGap = errors.New("fast-ingest batch: messages lost in transit")
	// ErrBatchEnded: the server ended the batch before this message, with
	// no more specific error having reached us.
	ErrBatchEnded = errors.New("fast-ingest batch ended by the server")
	// ErrUnconfirmed: publishing failed at an earlier or later sequence
	// and this message's storage was never confirmed; the stream itself
	// says whether it holds it.
	ErrUnconfirmed = errors.New("not confirmed stored")
	// ErrTimeout: no acknowledgement came within the timeout.
	ErrTimeout = errors.New("no acknowledgement from JetStream in time")
	// ErrSequence: Publish was called with a sequence that does not
	// follow the previous one.
	ErrSequence = errors.New("stream sequences must be consecutive")
	// ErrClosed: the Publisher was closed.
	ErrClosed = errors.New("fast-ingest publisher closed")
)

// Options tune a Publisher. Zero values take the defaults.
type Options struct {
	// Window bounds messages published but not yet acknowledged; Publish
	// blocks beyond it. Default 8192, at least 2.
	Window int
	// Flow is the largest acknowledgement interval (in messages) the
	// server may choose; it starts there (capped at 500) when the stream
	// has no other fast batch in flight, at 1 otherwise, and ramps up.
	// Default and maximum: half the window, at most 500.
	Flow int
	// AckTimeout bounds how long Publish waits for room in the window,
	// how long the first Publish waits for the server's first answer, and
	// how long Await waits without an acknowledgement. Default 5s.
	AckTimeout time.Duration
	// Linger is how long publishing may pause before the open batch is
	// ended so that its tail is acknowledged. Default 5ms.
	Linger time.Duration
	// Moved, when set, is asked every CheckEvery (default 500ms) while
	// the first Publish waits for the server's answer to the batch start:
	// an error (the connection was re-established, the stream's leader
	// changed) means no answer will come, and Publish returns at once
	// with ErrTimeout and that error instead of waiting out AckTimeout.
	Moved      func() error
	CheckEvery time.Duration
}

// failure is where publishing failed.
type failure struct {
	seq uint64 // stream sequence of the first message not stored
	err error
	// final: the server is done with the batch, so nothing below seq
	// that is not confirmed yet ever will be.
	final bool
}

// batch is one fast-ingest batch: stream sequence first is batch sequence 1.
type batch struct {
	id     string
	prefix string // "<inbox>.<id>.<flow>.fail."
	first  uint64
	sent   atomic.Uint64 // batch sequences sent (messages, not the EOB)
	ended  atomic.Bool   // EOB sent
	acked  uint64        // batch sequences acknowledged (reply goroutine)
}

// Publisher publishes one stream's messages in fast-ingest batches. Publish
// and Flush are called from one goroutine, Await from one goroutine (the
// acker), Stored and Err from any.
type Publisher struct {
	nc    *nats.Conn
	inbox string // "<inbox>." ; replies arrive on inbox + batch id + ...
	sub   *nats.Subscription
	opts  Options
	flow  string

	// stored: every stream sequence up to it is stored (monotonic).
	stored atomic.Uint64
	// ready: the server answered a batch start as a fast-ingest server.
	ready  atomic.Bool
	failed atomic.Pointer[failure]
	closed atomic.Bool

	pubSig chan struct{} // wakes Publish waiting for room or the first answer
	ackSig chan struct{} // wakes Await

	// mu guards the publishing side against the lingering EOB.
	mu       sync.Mutex
	cur      *batch
	last     uint64 // last stream sequence published, 0 before the first
	msg      nats.Msg
	reply    []byte
	count    atomic.Uint64 // messages published, for the lingerer
	wake     chan struct{} // a batch opened: the lingerer starts watching
	done     chan struct{}
	lingerer sync.WaitGroup

	// blocked: Publish waits for room, so a pause is no reason to end
	// the batch.
	blocked atomic.Bool

	// bmu guards batches, the open and unanswered batches by id.
	bmu     sync.Mutex
	batches map[string]*batch
}

// New subscribes for acknowledgements and returns a Publisher.
func New(nc *nats.Conn, o Options) (*Publisher, error) {
	if o.Window <= 0 {
		o.Window = 8192
	}
	o.Window = max(o.Window, 2)
	if o.Flow <= 0 || o.Flow > o.Window/2 {
		o.Flow = o.Window / 2
	}
	o.Flow = max(min(o.Flow, 500), 1)
	if o.AckTimeout <= 0 {
		o.AckTimeout = 5 * time.Second
	}
	if o.Linger <= 0 {
		o.Linger = 5 * time.Millisecond
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = 500 * time.Millisecond
	}
	p := &Publisher{
		nc:      nc,
		inbox:   nc.NewRespInbox() + ".",
		opts:    o,
		flow:    strconv.Itoa(o.Flow),
		pubSig:  make(chan struct{}, 1),
		ackSig:  make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		batches: map[string]*batch{},
		reply:   make([]byte, 0, 128),
	}
	sub, err := nc.Subscribe(p.inbox+">", p.onReply)
	if err != nil {
		return nil, fmt.Errorf("subscribe for fast-ingest acknowledgements: %w", err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	p.sub = sub
	p.lingerer.Add(1)
	go p.linger()
	return p, nil
}

// Close ends the open batch (its tail is still acknowledged if Await is
// called before the subscription goes) and stops the Publisher. Call it
// after the last Await.
func (p *Publisher) Close() {
	if p.closed.Swap(true) {
		return
	}
	p.mu.Lock()
	p.endBatch()
	p.mu.Unlock()
	close(p.done)
	p.lingerer.Wait()
	_ = p.sub.Unsubscribe()
}

// SetExpectedLastSeq puts Nats-Expected-Last-Sequence in h, reusing the
// value slice; value is the previous stream sequence as a string.
func SetExpectedLastSeq(h nats.Header, value string) { Set(h, jetstream.ExpectedLastSeqHeader, value) }

// Set puts one header value, reusing the value slice: jsformat.Set, the
// one setter of the publish path, here for callers that only hold a
// Publisher.
func Set(h nats.Header, key, value string) { jsformat.Set(h, key, value) }

// Stored is the stream sequence up to which every message is known stored
// (the sequence before the first Publish, until the first acknowledgement).
func (p *Publisher) Stored() uint64 { return p.stored.Load() }

// Err is the failure that stopped publishing, with the stream sequence of
// the first message not stored, or nil.
func (p *Publisher) Err() (uint64, error) {
	if f := p.failed.Load(); f != nil {
		return f.seq, f.err
	}
	return 0, nil
}

// Publish sends one message with stream sequence seq (consecutive with
// the previous call's). hdr may be nil; it and data are encoded before
// Publish returns, so both can be reused. Publish blocks while the window
// is full, and on the first call until the server answered (one round
// trip), so that a stream without allow_batched or an old server is known
// at once: ErrNotEnabled or ErrUnsupported then.
func (p *Publisher) Publish(subject string, hdr nats.Header, data []byte, seq uint64) error {
	if f := p.failed.Load(); f != nil {
		return f.err
	}
	if p.closed.Load() {
		return ErrClosed
	}
	first := p.last == 0
	if seq == 0 {
		return fmt.Errorf("fast-ingest publish of sequence 0: %w", ErrSequence)
	}
	if first {
		p.stored.Store(seq - 1)
	} else if seq != p.last+1 {
		return fmt.Errorf("fast-ingest publish of sequence %d after %d: %w", seq, p.last, ErrSequence)
	}
	if seq-p.stored.Load() > uint64(p.opts.Window) {
		if err := p.waitRoom(seq); err != nil {
			return err
		}
	}
	p.mu.Lock()
	b := p.cur
	if b == nil || b.ended.Load() {
		b = p.openBatch(subject, seq)
	}
	n := b.sent.Load() + 1
	p.reply = strconv.AppendUint(append(p.reply[:0], b.prefix...), n, 10)
	p.reply = append(p.reply, ".1.$FI"...)
	if n == 1 {
		p.reply[len(p.reply)-5] = '0' // op 0: start
	}
	p.msg.Subject = subject
	p.msg.Reply = string(p.reply)
	p.msg.Header = hdr
	p.msg.Data = data
	err := p.nc.PublishMsg(&p.msg)
	p.msg.Header, p.msg.Data = nil, nil
	if err == nil {
		b.sent.Store(n)
		p.last = seq
		p.count.Add(1)
	}
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("fast-ingest publish of sequence %d: %w", seq, err)
	}
	if first {
		return p.waitReady(seq)
	}
	return nil
}

// openBatch starts a new batch at stream sequence seq. Lock held.
func (p *Publisher) openBatch(subject string, seq uint64) *batch {
	id := nuid.Next()
	b := &batch{id: id, prefix: p.inbox + id + "." + p.flow + ".fail.", first: seq}
	p.bmu.Lock()
	p.batches[id] = b
	p.bmu.Unlock()
	p.cur = b
	p.msg.Subject = subject
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return b
}

// endBatch sends the open batch's EOB commit. Lock held.
func (p *Publisher) endBatch() {
	b := p.cur
	if b == nil || b.ended.Load() || b.sent.Load() == 0 {
		return
	}
	b.ended.Store(true)
	n := b.sent.Load()
	reply := b.prefix + strconv.FormatUint(n+1, 10) + ".3.$FI"
	if err := p.nc.PublishMsg(&nats.Msg{Subject: p.msg.Subject, Reply: reply}); err != nil {
		p.fail(p.stored.Load()+1, fmt.Errorf("fast-ingest batch commit after sequence %d: %w", b.first+n-1, err), true)
	}
}

// Flush ends the open batch now, so that everything published gets
// acknowledged without waiting for Linger.
func (p *Publisher) Flush() {
	p.mu.Lock()
	p.endBatch()
	p.mu.Unlock()
}

// linger ends a batch once publishing paused for Options.Linger.
func (p *Publisher) linger() {
	defer p.lingerer.Done()
	t := time.NewTicker(p.opts.Linger)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-p.wake:
		}
		seen := p.count.Load()
		t.Reset(p.opts.Linger)
	watch:
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				n := p.count.Load()
				if n != seen || p.blocked.Load() {
					seen = n
					continue
				}
				p.mu.Lock()
				p.endBatch()
				p.mu.Unlock()
				break watch
			}
		}
	}
}

func (p *Publisher) waitRoom(seq uint64) error {
	p.blocked.Store(true)
	defer p.blocked.Store(false)
	timer := time.NewTimer(p.opts.AckTimeout)
	defer timer.Stop()
	for seq-p.stored.Load() > uint64(p.opts.Window) {
		if f := p.failed.Load(); f != nil {
			return f.err
		}
		select {
		case <-p.pubSig:
		case <-timer.C:
			return fmt.Errorf("fast-ingest publish of sequence %d: window of %d full for %v: %w", seq, p.opts.Window, p.opts.AckTimeout, ErrTimeout)
		}
	}
	return nil
}

func (p *Publisher) waitReady(seq uint64) error {
	timer := time.NewTimer(p.opts.AckTimeout)
	defer timer.Stop()
	var check <-chan time.Time
	if p.opts.Moved != nil {
		t := time.NewTicker(p.opts.CheckEvery)
		defer t.Stop()
		check = t.C
	}
	for !p.ready.Load() {
		if f := p.failed.Load(); f != nil {
			return f.err
		}
		select {
		case <-p.pubSig:
		case <-check:
			if merr := p.opts.Moved(); merr != nil {
				err := fmt.Errorf("fast-ingest publish of sequence %d: no answer to the batch start: %w: %w", seq, ErrTimeout, merr)
				p.fail(seq, err, true)
				return err
			}
		case <-timer.C:
			err := fmt.Errorf("fast-ingest publish of sequence %d: no answer to the batch start within %v: %w", seq, p.opts.AckTimeout, ErrTimeout)
			p.fail(seq, err, true)
			return err
		}
	}
	return nil
}
