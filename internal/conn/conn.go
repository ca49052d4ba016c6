// Package conn opens connections to the STAN source and the JetStream
// target from one description per side, and classifies connection
// failures so the command can say what to fix.
package conn

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/jsm.go/natscontext"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/stan.go"
)

// Sentinel errors callers branch on (the command maps them to exit 2).
var (
	ErrUnreachable  = errors.New("server unreachable")
	ErrAuth         = errors.New("authentication failed")
	ErrPermission   = errors.New("permission denied")
	ErrTLS          = errors.New("TLS handshake failed")
	ErrWrongCluster = errors.New("no NATS Streaming server answered for this cluster id")
	ErrNoJetStream  = errors.New("JetStream is not enabled")
	ErrBadConfig    = errors.New("bad connection settings")
)

// Side describes how to reach one server. Fields hold references (file
// paths, a context name) and, for user/password/token, values that come
// from flags or the environment and are never written anywhere.
type Side struct {
	Name     string // "STAN" or "JetStream", for messages
	URL      string
	Context  string
	Creds    string
	NKey     string
	User     string
	Password string
	Token    string
	TLSCert  string
	TLSKey   string
	TLSCA    string
}

// Resolved returns the URL to dial and the nats options, layering the
// side's own settings over a saved NATS CLI context when one is named.
func (s Side) Resolved() (string, []nats.Option, error) {
	var opts []nats.Option
	u := s.URL
	if s.Context != "" {
		nctx, err := natscontext.New(s.Context, true)
		if err != nil {
			return "", nil, fmt.Errorf("%s: load NATS context %q: %v: %w", s.Name, s.Context, err, ErrBadConfig)
		}
		copts, err := nctx.NATSOptions()
		if err != nil {
			return "", nil, fmt.Errorf("%s: NATS context %q: %v: %w", s.Name, s.Context, err, ErrBadConfig)
		}
		opts = append(opts, copts...)
		if u == "" {
			u = nctx.ServerURL()
		}
	}
	if u == "" {
		u = nats.DefaultURL
	}
	if s.Creds != "" {
		opts = append(opts, nats.UserCredentials(s.Creds))
	}
	if s.NKey != "" {
		o, err := nats.NkeyOptionFromSeed(s.NKey)
		if err != nil {
			return "", nil, fmt.Errorf("%s: nkey seed file %q: %v: %w", s.Name, s.NKey, err, ErrBadConfig)
		}
		opts = append(opts, o)
	}
	if s.User != "" || s.Password != "" {
		opts = append(opts, nats.UserInfo(s.User, s.Password))
	}
	if s.Token != "" {
		opts = append(opts, nats.Token(s.Token))
	}
	if s.TLSCert != "" || s.TLSKey != "" {
		if s.TLSCert == "" || s.TLSKey == "" {
			return "", nil, fmt.Errorf("%s: client certificate needs both --tls-cert and --tls-key: %w", s.Name, ErrBadConfig)
		}
		opts = append(opts, nats.ClientCert(s.TLSCert, s.TLSKey))
	}
	if s.TLSCA != "" {
		opts = append(opts, nats.RootCAs(s.TLSCA))
	}
	return u, opts, nil
}

// Redact removes userinfo from URLs (a comma-separated list is allowed),
// so they can appear in messages, plans and reports.
func Redact(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			if err != nil && strings.Contains(p, "@") {
				parts[i] = "<url with credentials>"
			}
			continue
		}
		u.User = nil
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// ConnectNATS dials one side's NATS server. Reconnects are unlimited: the
// migrator rides out server restarts and its own loop decides when to give
// up.
func ConnectNATS(ctx context.Context, s Side, clientName string, extra ...nats.Option) (*nats.Conn, error) {
	u, opts, err := s.Resolved()
	if err != nil {
		return nil, err
	}
	opts = append(opts,
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

// Classify turns a dial or protocol error into a message that names the
// side, the server (without credentials) and what to check.
func Classify(s Side, u string, err error) error {
	where := fmt.Sprintf("%s server %s", s.Name, Redact(u))
	msg := strings.ToLower(err.Error())
	switch {
	case errors.Is(err, nats.ErrAuthorization), strings.Contains(msg, "authorization violation"),
		strings.Contains(msg, "authentication"), strings.Contains(msg, "user authentication"):
		return fmt.Errorf("%s: %v: check the credentials for the %s side: %w", where, err, s.Name, ErrAuth)
	case strings.Contains(msg, "permissions violation"):
		return fmt.Errorf("%s: %v: the user lacks a publish or subscribe permission: %w", where, err, ErrPermission)
	case strings.Contains(msg, "tls:") || strings.Contains(msg, "x509") || strings.Contains(msg, "certificate") ||
		errors.Is(err, nats.ErrSecureConnRequired) || errors.Is(err, nats.ErrSecureConnWanted):
		return fmt.Errorf("%s: %v: check the CA, client certificate and key: %w", where, err, ErrTLS)
	case errors.Is(err, nats.ErrNoServers), strings.Contains(msg, "connection refused"), strings.Contains(msg, "no such host"),
		strings.Contains(msg, "i/o timeout"), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%s: %v: is the server running and the URL right? %w", where, err, ErrUnreachable)
	}
	return fmt.Errorf("%s: %w", where, err)
}

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
	sc, err := stan.Connect(clusterID, clientID, opts...)
	if err != nil {
		nc.Close()
		u, _, _ := s.Resolved()
		if errors.Is(err, stan.ErrConnectReqTimeout) {
			return nil, fmt.Errorf("STAN server %s: no answer for cluster id %q: check --cluster (the server's -cid): %w",
				Redact(u), clusterID, ErrWrongCluster)
		}
		return nil, Classify(s, u, err)
	}
	return &STAN{SC: sc, NC: nc}, nil
}

// JetStream opens the target and checks that JetStream answers for the
// account.
func JetStream(ctx context.Context, s Side, clientName string, extra ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := ConnectNATS(ctx, s, clientName, extra...)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
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
	_, err := js.AccountInfo(cctx)
	if err == nil {
		return nil
	}
	where := fmt.Sprintf("%s server %s", s.Name, Redact(nc.ConnectedUrlRedacted()))
	switch {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse):
		return fmt.Errorf("%s: JetStream is not enabled for this account: start nats-server with -js (or enable JetStream for the account): %w", where, ErrNoJetStream)
	case strings.Contains(strings.ToLower(err.Error()), "permissions violation"):
		return fmt.Errorf("%s: JetStream API denied: %v: grant the user $JS.API.>: %w", where, err, ErrPermission)
	}
	return fmt.Errorf("%s: JetStream account info: %w", where, err)
}
