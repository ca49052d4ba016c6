package verify

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

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

// streamReader feeds a stream's messages, in sequence order, to the merger.
type streamReader struct {
	feed *feed[jetstream.Msg]
	cc   jetstream.ConsumeContext
}

// streamBatch and streamBatchBytes size the ordered consumer's pulls: the
// client keeps that much requested, so it bounds memory like STAN's
// window does.
const (
	streamBatch      = 4096
	streamBatchBytes = 16 << 20
)

// startStream reads the stream from sequence from on (1: all of it).
func startStream(ctx context.Context, s jetstream.Stream, from uint64, feedLen int) (*streamReader, error) {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 1 {
		cfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from}
	}
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("ordered consumer: %w", err)
	}
	r := &streamReader{feed: newFeed[jetstream.Msg](feedLen)}
	r.cc, err = cons.Consume(func(m jetstream.Msg) { r.feed.put(m) },
		jetstream.PullMaxMessagesWithBytesLimit(streamBatch, streamBatchBytes))
	if err != nil {
		return nil, fmt.Errorf("read stream: %w", err)
	}
	return r, nil
}

func (r *streamReader) stop() {
	if r == nil {
		return
	}
	r.feed.stop()
	r.cc.Stop()
}
