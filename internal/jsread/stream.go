package jsread

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// NextStored is the first sequence at or after from that the stream
// holds (0: none), in one request: the server looks for the next message
// on any subject ("next_by_subj": ">", nats-server 2.10 and later) rather
// than the caller asking for each sequence in turn past deleted ones.
func NextStored(ctx context.Context, s jetstream.Stream, from uint64) (uint64, error) {
	m, err := s.GetMsg(ctx, from, jetstream.WithGetMsgSubject(">"))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}
