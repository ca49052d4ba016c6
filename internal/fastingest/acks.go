package fastingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Await waits until stream sequence seq is stored (nil) or known not to
// be confirmed (the error). timer is the caller's, reused across calls;
// timeout bounds this call's wait (ErrTimeout). Await only returns nil for
// a message the server acknowledged, directly or by a later one's ack.
func (p *Publisher) Await(seq uint64, timer *time.Timer, timeout time.Duration) error {
	armed := false
	for p.stored.Load() < seq {
		if f := p.failed.Load(); f != nil && (seq >= f.seq || f.final) {
			if seq == f.seq {
				return f.err
			}
			return fmt.Errorf("sequence %d: %w (publishing failed at sequence %d: %v)", seq, ErrUnconfirmed, f.seq, f.err)
		}
		if !armed {
			timer.Reset(timeout)
			armed = true
		}
		select {
		case <-p.ackSig:
		case <-timer.C:
			return fmt.Errorf("sequence %d: %v: %w", seq, timeout, ErrTimeout)
		}
	}
	if armed {
		timer.Stop()
	}
	return nil
}

// fail records the first failure; a later one only makes it final.
func (p *Publisher) fail(seq uint64, err error, final bool) {
	for {
		old := p.failed.Load()
		var nf *failure
		switch {
		case old == nil:
			nf = &failure{seq: seq, err: err, final: final}
		case final && !old.final:
			c := *old
			c.final = true
			nf = &c
		default:
			return
		}
		if p.failed.CompareAndSwap(old, nf) {
			p.signal()
			return
		}
	}
}

func (p *Publisher) signal() {
	select {
	case p.ackSig <- struct{}{}:
	default:
	}
	select {
	case p.pubSig <- struct{}{}:
	default:
	}
}

// advance raises the stored mark to seq, never past a failure.
func (p *Publisher) advance(seq uint64) {
	if f := p.failed.Load(); f != nil && seq >= f.seq {
		seq = f.seq - 1
	}
	for {
		old := p.stored.Load()
		if seq <= old || p.stored.CompareAndSwap(old, seq) {
			break
		}
	}
	p.signal()
}

// reply is what the server sends on a fast-ingest reply subject: a flow
// ack, a gap or error notice ("type" set), or a PubAck (none).
type reply struct {
	Type      string              `json:"type"`
	Seq       uint64              `json:"seq"`
	LastSeq   uint64              `json:"last_seq"`
	Error     *jetstream.APIError `json:"error"`
	Stream    string              `json:"stream"`
	Batch     string              `json:"batch"`
	Count     uint64              `json:"count"`
	Duplicate bool                `json:"duplicate"`
}

var typeAck = []byte(`"type":"ack"`)

func (p *Publisher) onReply(m *nats.Msg) {
	// <inbox>.<id>.<flow>.fail.<batch seq>.<op>.$FI
	if len(m.Subject) < len(p.inbox)+8 || m.Subject[len(m.Subject)-4:] != ".$FI" {
		return
	}
	rest := m.Subject[len(p.inbox):]
	dot := indexByte(rest, '.')
	if dot < 0 {
		return
	}
	id := rest[:dot]
	op := rest[len(rest)-5]
	tail := rest[:len(rest)-6] // without ".<op>.$FI"
	bseq, err := strconv.ParseUint(tail[lastIndexByte(tail, '.')+1:], 10, 64)
	if err != nil {
		return
	}
	p.bmu.Lock()
	bs := p.batches[id]
	p.bmu.Unlock()
	if bs == nil {
		return // a batch already over
	}
	var r reply
	if len(m.Data) == 0 {
		st := m.Header.Get("Status")
		if st == "503" {
			r.Error = &jetstream.APIError{Code: 503, Description: nats.ErrNoResponders.Error()}
		} else {
			r.Error = &jetstream.APIError{Code: 0, Description: fmt.Sprintf("empty reply from JetStream (status %q)", st)}
		}
	} else if bytes.HasPrefix(m.Data, []byte(`{"type":"ack","seq":`)) {
		// The flow ack's fixed form ({"type":"ack","seq":N,"msgs":M}),
		// read without the JSON decoder; anything else is decoded.
		d := m.Data[len(`{"type":"ack","seq":`):]
		i := bytes.IndexByte(d, ',')
		n, err := strconv.ParseUint(string(d[:max(i, 0)]), 10, 64)
		if i < 0 || err != nil {
			if json.Unmarshal(m.Data, &r) != nil {
				return
			}
		} else {
			r.Type, r.Seq = "ack", n
		}
	} else if err := json.Unmarshal(m.Data, &r); err != nil {
		p.fail(bs.first+bseq-1, fmt.Errorf("unreadable reply from JetStream: %q", m.Data), true)
		return
	}
	switch r.Type {
	case "ack":
		if op == '4' && r.Seq < bs.acked {
			return
		}
		bs.acked = max(bs.acked, r.Seq)
		p.ready.Store(true)
		if r.Seq > 0 {
			p.advance(bs.first + r.Seq - 1)
		} else {
			p.signal()
		}
	case "err":
		err := error(ErrBatchEnded)
		if r.Error != nil {
			err = r.Error
		}
		seq := bs.first + r.Seq - 1
		p.fail(seq, fmt.Errorf("sequence %d: %w", seq, err), false)
	case "gap":
		seq := bs.first + r.LastSeq - 1
		p.fail(seq, fmt.Errorf("sequence %d: batch sequence %d arrived instead of %d: %w", seq, r.Seq, r.LastSeq, ErrGap), false)
	case "":
		p.onPubAck(id, bs, bseq, op, &r)
	}
}

// onPubAck handles an answer without a type: the PubAck that ends a
// batch, an error PubAck, or an ordinary PubAck from an old server.
func (p *Publisher) onPubAck(id string, bs *batch, bseq uint64, op byte, r *reply) {
	seq := bs.first + bseq - 1
	if r.Error != nil {
		if op == '4' {
			return // a ping to a batch the server already ended
		}
		var err error = r.Error
		if r.Error.ErrorCode == 10205 { // JSBatchPublishDisabledErr
			err = fmt.Errorf("%w: %w", ErrNotEnabled, r.Error)
		}
		p.endState(id)
		if f := p.failed.Load(); f != nil {
			p.fail(f.seq, f.err, true)
		}
		p.fail(seq, fmt.Errorf("sequence %d: %w", seq, err), true)
		return
	}
	if r.Batch == "" {
		// An ordinary PubAck: this server stored the message as a plain
		// publish and knows nothing of batches.
		p.endState(id)
		if r.Seq == seq {
			p.advance(seq)
		}
		p.fail(seq+1, fmt.Errorf("sequence %d: %w", seq+1, ErrUnsupported), true)
		return
	}
	// The batch is over: Count messages of it were taken.
	p.endState(id)
	n := r.Count
	last := bs.first + n - 1
	switch {
	case r.Duplicate:
		p.fail(bs.first, fmt.Errorf("sequence %d: already stored at stream sequence %d (duplicate message id): %w", bs.first, r.Seq, ErrBatchEnded), true)
		return
	case n > 0 && r.Seq != last:
		// Fewer stored than taken: duplicates were skipped, or another
		// writer's messages interleave. Trust neither past the stream.
		if r.Seq < last {
			p.advance(min(r.Seq, last))
		}
		at := min(r.Seq, last) + 1
		p.fail(at, fmt.Errorf("sequence %d: the batch ended with the stream at sequence %d, not %d: %w", at, r.Seq, last, ErrBatchEnded), true)
		return
	}
	if n > 0 {
		p.advance(last)
	}
	if !bs.ended.Load() || bs.sent.Load() > n {
		// The server ended the batch (an error or a gap, whose notice
		// came first, or one that got lost).
		p.fail(last+1, fmt.Errorf("sequence %d: %w", last+1, ErrBatchEnded), true)
		return
	}
	if f := p.failed.Load(); f != nil {
		p.fail(f.seq, f.err, true)
	}
}

func (p *Publisher) endState(id string) {
	p.bmu.Lock()
	delete(p.batches, id)
	p.bmu.Unlock()
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func lastIndexByte(s string, c byte) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == c {
			return i
		}
	}
	return -1
}
