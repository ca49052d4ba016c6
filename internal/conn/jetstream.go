package conn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ConnectNATS dials one side's NATS server. Reconnects are unlimited: the
// migrator rides out server restarts and its own loop decides when to give
// up.
func ConnectNATS(ctx context.Context, s Side, clientName string, extra ...nats.Option) (*nats.Conn, error) {
	u, opts, err := s.Resolved()
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		// nats.go prints asynchronous errors by default; the command
		// reports them itself (see PermissionErr).
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
		nats.Name(clientName),
		nats.Timeout(5*time.Second),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(false),
	)
	opts = append(opts, extra...)
	nc, err := nats.Connect(u, opts...)
	if err != nil {
		return nil, Classify(s, u, err)
	}
	return nc, nil
}

// JetStream opens the target and checks that JetStream answers for the
// account, in the side's domain or behind its API prefix when it names
// one.
func JetStream(ctx context.Context, s Side, clientName string, extra ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	if _, err := s.JetStreamAPI(); err != nil {
		return nil, nil, err
	}
	nc, err := ConnectNATS(ctx, s, clientName, extra...)
	if err != nil {
		return nil, nil, err
	}
	js, err := NewJetStream(nc, s)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	if err := CheckJetStream(ctx, s, nc, js); err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// CheckJetStream asks for the account info, the cheapest call that fails
// when JetStream is off.
func CheckJetStream(ctx context.Context, s Side, nc *nats.Conn, js jetstream.JetStream) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// A denied request times out; the server's report ends it early.
	stop := failOnPermissionError(nc, cancel)
	_, err := js.AccountInfo(cctx)
	stop()
	if err == nil {
		return nil
	}
	if perr := PermissionErr(s, nc); perr != nil {
		return perr
	}
	where := fmt.Sprintf("%s server %s", s.Name, Redact(nc.ConnectedUrlRedacted()))
	if api, _ := s.JetStreamAPI(); api != (API{}) && (errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
		// Nothing answers on the domain's (or prefix's) API subjects,
		// or a server without that domain says it has no JetStream.
		return fmt.Errorf("%s: %w in %s: no JetStream answered there (%v): check %sdomain (or the context's jetstream_domain / jetstream_api_prefix) against the server's jetstream { domain } and that the leaf node is connected",
			where, ErrNoJetStream, api, err, s.flag())
	}
	switch {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return fmt.Errorf("%s: %w for this account: enable JetStream for the user's account (account limits), or connect as a user of an account that has it", where, ErrNoJetStream)
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse):
		return fmt.Errorf("%s: %w for this account: start nats-server with -js, or enable JetStream for the user's account: %v", where, ErrNoJetStream, err)
	case strings.Contains(strings.ToLower(err.Error()), "permissions violation"):
		return fmt.Errorf("%s: %w (authorization violation): JetStream API denied: %v: grant the user publish on $JS.API.>", where, ErrPermission, err)
	}
	return fmt.Errorf("%s: JetStream account info: %w", where, err)
}
