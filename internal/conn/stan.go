package conn

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
	stanpb "github.com/nats-io/stan.go/pb"
)

// STAN is a NATS Streaming connection with the NATS connection under it
// (which the caller owns and must close after the STAN one).
type STAN struct {
	SC stan.Conn
	NC *nats.Conn
}

// Close closes the STAN session, then the NATS connection. Close (not
// Unsubscribe) is what keeps durables alive on the server.
func (c *STAN) Close() {
	if c.SC != nil {
		_ = c.SC.Close()
	}
	if c.NC != nil {
		c.NC.Close()
	}
}

// ConnectSTAN opens a STAN session with the given client id.
func ConnectSTAN(ctx context.Context, s Side, clusterID, clientID string, lost stan.ConnectionLostHandler) (*STAN, error) {
	nc, err := ConnectNATS(ctx, s, clientID)
	if err != nil {
		return nil, err
	}
	opts := []stan.Option{
		stan.NatsConn(nc),
		stan.ConnectWait(5 * time.Second),
		stan.Pings(2, 10),
	}
	if lost != nil {
		opts = append(opts, stan.SetConnectionLostHandler(lost))
	}
	// A denied publish or subscribe is only reported asynchronously and
	// would leave stan.Connect waiting for a reply that never comes:
	// closing the connection on the report ends the wait at once.
	u := nc.ConnectedUrlRedacted()
	stop := failOnPermissionError(nc, func() { nc.Close() })
	sc, err := stan.Connect(clusterID, clientID, opts...)
	stop()
	if err == nil && nc.IsClosed() {
		// Denied just as the session came up: it cannot work.
		_ = sc.Close()
		err = nats.ErrConnectionClosed
	}
	if err != nil {
		defer nc.Close()
		if perr := permissionErr(s, u, nc); perr != nil {
			// A denied publish or subscribe looks like a missing server.
			return nil, perr
		}
		if errors.Is(err, stan.ErrConnectReqTimeout) {
			return nil, fmt.Errorf("STAN server %s: cluster id %q: %w: check --cluster (the server's -cid), and that the user's account is the one STAN runs in",
				Redact(u), clusterID, ErrWrongCluster)
		}
		return nil, Classify(s, u, err)
	}
	return &STAN{SC: sc, NC: nc}, nil
}

// CheckSTAN proves that a STAN server answers for clusterID at the side's
// URL with the side's credentials, without registering a client (which
// would write to the server's store): it sends a connect request that
// STAN refuses as incomplete, and a refusal is the answer it wanted. STAN
// logs the refusal as an invalid connection request.
func CheckSTAN(ctx context.Context, s Side, clusterID string) error {
	nc, err := ConnectNATS(ctx, s, "stanmigrate-check")
	if err != nil {
		return err
	}
	defer nc.Close()
	req, err := (&stanpb.ConnectRequest{ClientID: "stanmigrate-check"}).Marshal()
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	reply, err := nc.RequestWithContext(rctx, stan.DefaultDiscoverPrefix+"."+clusterID, req)
	if perr := PermissionErr(s, nc); perr != nil {
		return perr
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("STAN server %s: cluster id %q: %w: check --cluster (the server's -cid), and that the user's account is the one STAN runs in",
			Redact(nc.ConnectedUrlRedacted()), clusterID, ErrWrongCluster)
	}
	var resp stanpb.ConnectResponse
	if err := resp.Unmarshal(reply.Data); err != nil {
		return fmt.Errorf("STAN server %s: cluster id %q: the answer is not a STAN connect response (%v): %w",
			Redact(nc.ConnectedUrlRedacted()), clusterID, err, ErrWrongCluster)
	}
	return nil
}
