// Package jsread holds the JetStream reads migrate and verify share, which
// the client library does not answer in one call.
package jsread

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// ConsumerInfo reads a consumer's info whether it is pull or push (the
// client library opens each kind through its own call, and a migrated
// durable may be either).
func ConsumerInfo(ctx context.Context, js jetstream.JetStream, stream, name string) (*jetstream.ConsumerInfo, error) {
	c, err := js.Consumer(ctx, stream, name)
	if err == nil {
		return c.CachedInfo(), nil
	}
	if !errors.Is(err, jetstream.ErrNotPullConsumer) {
		return nil, err
	}
	pc, err := js.PushConsumer(ctx, stream, name)
	if err != nil {
		return nil, err
	}
	return pc.CachedInfo(), nil
}
