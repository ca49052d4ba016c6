package verify

import (
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/monitor"
	"github.com/stanmigrate/stanmigrate/internal/stanstore"
	"github.com/stanmigrate/stanmigrate/plan"
)

// source is the STAN side of a run: a connection to a running server, or
// a stopped server's store directory.
type source struct {
	sc stan.Conn
	st *stanstore.Store
}

// dirBounds is what the store directory holds for a channel: its bounds,
// its subscriptions in monitoring's form, and each durable's exact start.
// broken is set when the directory cannot be read for the channel.
func dirBounds(st *stanstore.Store, name string) (b bounds, cz *monitor.Channelz, starts map[string]uint64, broken error) {
	c, ok := st.Channel(name)
	if !ok {
		return bounds{known: true, gone: true}, nil, nil, nil
	}
	if c.Err != nil {
		return bounds{}, nil, nil, c.Err
	}
	starts = map[string]uint64{}
	for _, d := range c.Durables() {
		starts[d.Key()] = d.Start
	}
	return bounds{known: true, first: c.FirstSeq, last: c.LastSeq, msgs: c.Msgs, bytes: c.Bytes}, plan.Channelz(c), starts, nil
}

// unreadable reports a channel the store directory cannot be read for: a
// difference, so that a verification never passes over it silently.
func unreadable(c *plan.Channel, err error) *ChannelReport {
	return &ChannelReport{Channel: c.Name, Stream: c.Stream,
		Problem: fmt.Sprintf("channel %q (stream %q): cannot be read from the STAN directory: %v", c.Name, c.Stream, err)}
}

// startDir feeds a channel's messages from the store directory to the
// merger, from sequence from on, through the same hand-off a
// subscription uses.
func startDir(st *stanstore.Store, channel string, from uint64, feedLen int) (*stanReader, error) {
	it, err := st.Messages(channel, from)
	if err != nil {
		return nil, fmt.Errorf("read channel %q from the STAN directory: %w", channel, err)
	}
	r := &stanReader{feed: newFeed[*stan.Msg](feedLen), ended: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		defer close(r.exited)
		defer close(r.ended)
		defer it.Close()
		for {
			m, err := it.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				r.err = err
				return
			}
			if !r.feed.put(&stan.Msg{MsgProto: *m}) {
				return
			}
		}
	}()
	return r, nil
}

// oneDirMsg reads one message from the store directory: the one at seq,
// or nil when the channel has none there.
func oneDirMsg(st *stanstore.Store, channel string, seq uint64) (*stan.Msg, error) {
	it, err := st.Messages(channel, seq)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	m, err := it.Next()
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &stan.Msg{MsgProto: *m}, nil
}
