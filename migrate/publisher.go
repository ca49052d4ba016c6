package migrate

import (
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stanmigrate/stanmigrate/internal/asyncpub"
)

// asyncSender publishes each message asynchronously (asyncpub), for
// streams that take no fast-ingest batches; batchSender is its pair.
type asyncSender struct{ p *asyncpub.Publisher }

func newAsyncSender(nc *nats.Conn, window int) (*asyncSender, error) {
	p, err := asyncpub.New(nc, window)
	if err != nil {
		return nil, err
	}
	return &asyncSender{p: p}, nil
}

func (s *asyncSender) header() nats.Header { return s.p.Header() }

func (s *asyncSender) publish(subject, seqStr string, _ uint64, data []byte) error {
	return s.p.Publish(subject, seqStr, data)
}

func (s *asyncSender) await(seq uint64, timer *time.Timer, timeout time.Duration, moved func() error) error {
	return s.p.Await(seq, timer, timeout, moved)
}

func (s *asyncSender) close() { s.p.Close() }
