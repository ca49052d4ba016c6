// Package ceiling measures what the servers themselves can do, so that
// the benchmarks can set migrate and verify against it in the same run:
// reading a channel from STAN, publishing into JetStream, the naive
// pipeline between the two, and reading a stream back. Each function moves
// every message of the given channels once and returns how long that took.
package ceiling

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
	"github.com/nats-io/stan.go"
	"github.com/stanmigrate/stanmigrate/internal/fastingest"
	"github.com/stanmigrate/stanmigrate/internal/jsformat"
)

// stallWait lets an async publish wait for room in the window as long as
// a ceiling may take: on a loaded machine the client's default (200 ms)
// fails a run that is only slow.
var stallWait = jetstream.WithStallWait(timeout)

// Window is the in-flight bound of every ceiling: STAN's MaxInflight and
// the JetStream client's pending async publishes.
const Window = 8192

// Source is a seeded STAN server and the channels to move.
type Source struct {
	ClusterID, URL string
	Channels       []string
	PerChannel     int
}

func (s Source) total() int64 { return int64(len(s.Channels) * s.PerChannel) }

// countdown closes done when every message was handled, and keeps the
// first error a callback reported.
type countdown struct {
	left atomic.Int64
	done chan struct{}
	once sync.Once
	err  error
}

func newCountdown(n int64) *countdown {
	c := &countdown{done: make(chan struct{})}
	c.left.Store(n)
	return c
}

func (c *countdown) one() {
	if c.left.Add(-1) == 0 {
		c.once.Do(func() { close(c.done) })
	}
}

func (c *countdown) fail(err error) {
	c.once.Do(func() { c.err = err; close(c.done) })
}

func (c *countdown) wait(timeout time.Duration) error {
	select {
	case <-c.done:
		return c.err
	case <-time.After(timeout):
		return fmt.Errorf("%d messages still missing after %v", c.left.Load(), timeout)
	}
}

const timeout = 5 * time.Minute

func connectSTAN(s Source, name string) (stan.Conn, error) {
	return stan.Connect(s.ClusterID, fmt.Sprintf("ceiling-%s-%d", name, time.Now().UnixNano()), stan.NatsURL(s.URL))
}

// STANRead reads every channel through non-durable subscriptions. With
// ack, each message is acknowledged, as any consumer that moves on must
// (the raw read ceiling); without, MaxInflight covers the whole channel so
// that STAN never waits for one, which is the cheapest read STAN offers.
func STANRead(s Source, ack bool) (time.Duration, error) {
	sc, err := connectSTAN(s, "read")
	if err != nil {
		return 0, err
	}
	defer sc.Close()
	cd := newCountdown(s.total())
	inflight := Window
	if !ack {
		inflight = s.PerChannel
	}
	start := time.Now()
	for _, c := range s.Channels {
		_, err := sc.Subscribe(c, func(m *stan.Msg) {
			if ack {
				_ = m.Ack()
			}
			cd.one()
		}, stan.DeliverAllAvailable(), stan.SetManualAckMode(), stan.MaxInflight(inflight), stan.AckWait(time.Hour))
		if err != nil {
			return 0, err
		}
	}
	err = cd.wait(timeout)
	return time.Since(start), err
}

// JetStreamPublish publishes per messages of payload into a fresh stream
// per channel, asynchronously, and waits for every ack.
func JetStreamPublish(url string, channels []string, per int, payload []byte) (time.Duration, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(Window))
	if err != nil {
		return 0, err
	}
	for i, c := range channels {
		if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: fmt.Sprintf("raw_%d", i), Subjects: []string{c}}); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	for i := 0; i < per; i++ {
		for _, c := range channels {
			if _, err := js.PublishAsync(c, payload, stallWait); err != nil {
				return 0, err
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(timeout):
		return 0, errors.New("JetStream acks still missing")
	}
	return time.Since(start), nil
}

// Pipelined is the naive ceiling for a correct migrator: read STAN,
// publish asynchronously, acknowledge on STAN once JetStream acknowledged.
// No sequence expectations, no checkpoints; with headers set, each
// message carries stan2js's three headers (original timestamp, channel,
// sequence) as migrate's do, in a header map of its own as a naive
// migrator would build it.
func Pipelined(s Source, targetURL string, headers bool) (time.Duration, error) {
	nc, err := nats.Connect(targetURL)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	sc, err := connectSTAN(s, "pipe")
	if err != nil {
		return 0, err
	}
	defer sc.Close()
	cd := newCountdown(s.total())
	type pending struct {
		f jetstream.PubAckFuture
		m *stan.Msg
	}
	var acks []chan pending
	defer func() {
		for _, a := range acks {
			close(a)
		}
	}()
	start := time.Now()
	for i, c := range s.Channels {
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(Window))
		if err != nil {
			return 0, err
		}
		if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: fmt.Sprintf("pipe_%d", i), Subjects: []string{c}}); err != nil {
			return 0, err
		}
		a := make(chan pending, Window)
		acks = append(acks, a)
		go func() {
			for p := range a {
				select {
				case <-p.f.Ok():
				case err := <-p.f.Err():
					cd.fail(err)
				}
				_ = p.m.Ack()
				cd.one()
			}
		}()
		_, err = sc.Subscribe(c, func(m *stan.Msg) {
			msg := &nats.Msg{Subject: m.Subject, Data: m.Data}
			if headers {
				msg.Header = nats.Header{
					jsformat.HdrTimestamp: []string{jsformat.Timestamp(m.Timestamp)},
					jsformat.HdrChannel:   []string{c},
					jsformat.HdrSequence:  []string{strconv.FormatUint(m.Sequence, 10)},
				}
			}
			f, err := js.PublishMsgAsync(msg, stallWait)
			if err != nil {
				cd.fail(err)
				return
			}
			a <- pending{f, m}
		}, stan.DeliverAllAvailable(), stan.SetManualAckMode(), stan.MaxInflight(Window))
		if err != nil {
			return 0, err
		}
	}
	err = cd.wait(timeout)
	return time.Since(start), err
}

// StreamRead reads every message of the streams back through ordered
// consumers, pulling as verify does, and touches nothing but the count.
func StreamRead(url string, streams []string, per int) (time.Duration, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	ctx := context.Background()
	cd := newCountdown(int64(len(streams) * per))
	start := time.Now()
	for _, name := range streams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return 0, err
		}
		oc, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
		if err != nil {
			return 0, err
		}
		cc, err := oc.Consume(func(jetstream.Msg) { cd.one() }, jetstream.PullMaxMessagesWithBytesLimit(4096, 16<<20))
		if err != nil {
			return 0, err
		}
		defer cc.Stop()
	}
	err = cd.wait(timeout)
	return time.Since(start), err
}

// FastIngest writes per messages of payload into a fresh stream per
// channel (allow_batched) on the best publish path the server offers,
// fast-ingest batches, one publisher per stream at once, each message
// carrying what migrate's do when headers is set: the expected last
// sequence and the original timestamp, channel and sequence. It waits
// until every message is acknowledged. This is the server's own limit for
// writing what migrate writes, with no source to read.
func FastIngest(url string, channels []string, per int, payload []byte, headers bool) (time.Duration, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	for i, c := range channels {
		if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: fmt.Sprintf("fast_%d", i), Subjects: []string{c}, AllowBatchPublish: true}); err != nil {
			return 0, err
		}
	}
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	errs := make(chan error, len(channels))
	start := time.Now()
	for _, c := range channels {
		go func() {
			p, err := fastingest.New(nc, fastingest.Options{Window: Window})
			if err != nil {
				errs <- err
				return
			}
			defer p.Close()
			acked := make(chan error, 1)
			go func() {
				t := time.NewTimer(time.Hour)
				defer t.Stop()
				for seq := uint64(1); seq <= uint64(per); seq++ {
					if err := p.Await(seq, t, timeout); err != nil {
						acked <- err
						return
					}
				}
				acked <- nil
			}()
			h := nats.Header{}
			for seq := uint64(1); seq <= uint64(per); seq++ {
				if headers {
					s := strconv.FormatUint(seq, 10)
					fastingest.SetExpectedLastSeq(h, strconv.FormatUint(seq-1, 10))
					jsformat.Set(h, jsformat.HdrTimestamp, ts)
					jsformat.Set(h, jsformat.HdrChannel, c)
					jsformat.Set(h, jsformat.HdrSequence, s)
				}
				if err := p.Publish(c, h, payload, seq); err != nil {
					errs <- err
					return
				}
			}
			errs <- <-acked
		}()
	}
	for range channels {
		if err := <-errs; err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}
