package verify

import (
	"context"

	"github.com/stanmigrate/stanmigrate/internal/source"
)

// sourceReader feeds a channel's messages, in sequence order, from the
// source to the merger, through the same hand-off as the stream side.
type sourceReader struct {
	feed *feed[source.Msg]
	rd   source.Reader
}

// startSource reads the channel from first to last without acknowledging
// anything, window messages at a time.
func startSource(ctx context.Context, src source.Source, channel string, first, last uint64, window, feedLen int) (*sourceReader, error) {
	r := &sourceReader{feed: newFeed[source.Msg](feedLen)}
	rd, err := src.Read(ctx, channel, max(first, 1), source.ReadOptions{
		Deliver: r.feed.put, MaxInflight: window, To: last,
	})
	if err != nil {
		return nil, err
	}
	r.rd = rd
	return r, nil
}

func (r *sourceReader) stop() {
	if r == nil {
		return
	}
	// The feed first: a delivery waiting for room gives up, so the
	// reader can stop.
	r.feed.stop()
	_ = r.rd.Close()
}
