package migrate

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/asyncpub"
	"github.com/stanmigrate/stanmigrate/internal/fastingest"
)

// sender publishes one channel's messages in sequence order and tells the
// acker which are stored: per message, asynchronously (asyncSender), or in
// fast-ingest batches where the target offers them (batchSender). The
// headers are set in header() before each publish; both encode them
// before publish returns, so one map serves every message.
type sender interface {
	header() nats.Header
	publish(subject, seqStr string, seq uint64, data []byte) error
	// await returns nil once seq is stored, or why it is not known to be
	// (see asyncpub.Publisher.Await for moved).
	await(seq uint64, timer *time.Timer, timeout time.Duration, moved func() error) error
	close()
}

// batchSender publishes through fast-ingest batches: the server checks
// every message's expected last sequence as for a single publish, but
// acknowledges every N messages, and nothing else is stored.
type batchSender struct {
	p   *fastingest.Publisher
	hdr nats.Header
}

// moved is asked while the first batch start waits for its answer, as
// the acker asks it while a publish waits (see asyncpub.Publisher.Await).
func newBatchSender(nc *nats.Conn, window int, moved func() error) (*batchSender, error) {
	p, err := fastingest.New(nc, fastingest.Options{Window: window, AckTimeout: publishTimeout, Moved: moved, CheckEvery: asyncpub.CheckEvery})
	if err != nil {
		return nil, err
	}
	return &batchSender{p: p, hdr: make(nats.Header, 6)}, nil
}

func (b *batchSender) header() nats.Header { return b.hdr }

func (b *batchSender) publish(subject, _ string, seq uint64, data []byte) error {
	return b.p.Publish(subject, b.hdr, data, seq)
}

func (b *batchSender) await(seq uint64, timer *time.Timer, timeout time.Duration, moved func() error) error {
	if b.p.Stored() >= seq {
		return nil // the common case, without reading the clock
	}
	deadline := time.Now().Add(timeout)
	for {
		err := b.p.Await(seq, timer, max(min(asyncpub.CheckEvery, time.Until(deadline)), time.Millisecond))
		if !errors.Is(err, fastingest.ErrTimeout) {
			return err
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("no acknowledgement from JetStream within %v: %w", timeout, jetstream.ErrAsyncPublishTimeout)
		}
		if moved != nil {
			if err := moved(); err != nil {
				return err
			}
		}
	}
}

func (b *batchSender) close() { b.p.Close() }

// noBatches says the target refused batched publishing for a stream: an
// older server, or a stream without allow_batched.
func noBatches(err error) bool {
	return errors.Is(err, fastingest.ErrNotEnabled) || errors.Is(err, fastingest.ErrUnsupported)
}
