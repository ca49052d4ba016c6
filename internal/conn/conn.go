// Package conn opens connections to the STAN source and the JetStream
// target from one description per side, and classifies connection
// failures so the command can say what to fix.
package conn

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jsm.go/natscontext"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/stan.go"
	stanpb "github.com/nats-io/stan.go/pb"
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
	// Domain and APIPrefix say which JetStream the side's API requests
	// reach (JetStream side only): a domain (a leaf node's, a hub's) or
	// an account's imported API prefix. Both empty: the context's, else
	// the JetStream of the server connected to. Domain wins over
	// APIPrefix.
	Domain    string
	APIPrefix string
}

// flag is the command-line prefix of the side's settings, for advice.
func (s Side) flag() string {
	if s.Name == "STAN" {
		return "--stan-"
	}
	return "--nats-"
}

// hasAuth reports whether the side's own settings name credentials.
func (s Side) hasAuth() bool {
	return s.Creds != "" || s.NKey != "" || s.User != "" || s.Password != "" || s.Token != ""
}

// Resolved returns the URL to dial and the nats options, layering the
// side's own settings over a saved NATS CLI context when one is named:
// the context supplies the URL when the side has none, and its
// credentials unless the side names its own (then the context's are
// dropped, so a flag's user never travels with the context's JWT); a
// client certificate or CA given on the side replaces the context's.
func (s Side) Resolved() (string, []nats.Option, error) {
	var opts []nats.Option
	u := s.URL
	if s.Context != "" {
		nctx, err := natscontext.New(s.Context, true)
		if err != nil {
			return "", nil, fmt.Errorf("%s: load NATS context %q: %v: check %scontext (contexts live in ~/.config/nats/context, see `nats context ls`): %w",
				s.Name, s.Context, err, s.flag(), ErrBadConfig)
		}
		copts, err := nctx.NATSOptions()
		if err != nil {
			return "", nil, fmt.Errorf("%s: NATS context %q: %v: %w", s.Name, s.Context, err, ErrBadConfig)
		}
		opts = append(opts, copts...)
		if s.hasAuth() {
			opts = append(opts, withoutCredentials)
		}
		if u == "" {
			u = nctx.ServerURL()
		}
	}
	if u == "" {
		u = nats.DefaultURL
	}
	if err := checkURLs(u); err != nil {
		return "", nil, fmt.Errorf("%s server URL %s: %v: check %surl (for example nats://host:4222, several separated by commas): %w",
			s.Name, Redact(u), err, s.flag(), ErrBadConfig)
	}
	files := []struct{ flag, path string }{
		{"creds", s.Creds}, {"nkey", s.NKey}, {"tls-cert", s.TLSCert}, {"tls-key", s.TLSKey}, {"tls-ca", s.TLSCA},
	}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return "", nil, fmt.Errorf("%s server %s: %s%s %s: %w: %w", s.Name, Redact(u), s.flag(), f.flag, f.path, errors.Unwrap(err), ErrBadConfig)
		}
	}
	if s.Creds != "" {
		if err := checkCreds(s.Creds); err != nil {
			return "", nil, fmt.Errorf("%s server %s: %screds %s %v: pass the credentials file (user JWT and seed) your operator issued: %w",
				s.Name, Redact(u), s.flag(), s.Creds, err, ErrBadConfig)
		}
		opts = append(opts, nats.UserCredentials(s.Creds))
	}
	if s.NKey != "" {
		o, err := nats.NkeyOptionFromSeed(s.NKey)
		if err != nil {
			return "", nil, fmt.Errorf("%s server %s: %snkey %s is not an NKey seed file: %v: %w", s.Name, Redact(u), s.flag(), s.NKey, err, ErrBadConfig)
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
			return "", nil, fmt.Errorf("%s server %s: a client certificate needs both %stls-cert and %stls-key: %w", s.Name, Redact(u), s.flag(), s.flag(), ErrBadConfig)
		}
		opts = append(opts, nats.ClientCert(s.TLSCert, s.TLSKey))
	}
	if s.TLSCA != "" {
		opts = append(opts, nats.RootCAs(s.TLSCA))
	}
	return u, opts, nil
}

// checkURLs parses each of a comma-separated list of server URLs the way
// the client will dial them, so a typo is reported as such rather than as
// an unreachable server.
func checkURLs(list string) error {
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if !strings.Contains(raw, "://") {
			raw = "nats://" + raw
		}
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("does not parse: %v", err)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("scheme %q is not nats, tls, ws or wss", u.Scheme)
		}
		if u.Hostname() == "" && u.Port() == "" {
			return errors.New("names no host")
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("port %q is not a port number", p)
			}
		}
		if _, _, err := net.SplitHostPort(u.Host); err != nil && u.Port() != "" {
			return err
		}
	}
	return nil
}

// checkCreds makes sure a credentials file holds a user JWT and a seed:
// the client library would only say so once a server refused the
// connection, as if the credentials were wrong rather than missing.
func checkCreds(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	tok, err := jwt.ParseDecoratedJWT(data)
	if err == nil {
		_, err = jwt.DecodeUserClaims(strings.TrimSpace(tok))
	}
	if err != nil {
		return errors.New("holds no user JWT")
	}
	if _, err := jwt.ParseDecoratedNKey(data); err != nil {
		return errors.New("holds no user seed")
	}
	return nil
}

// withoutCredentials drops whatever credentials earlier options (a
// context's) set, before the side's own are applied.
func withoutCredentials(o *nats.Options) error {
	o.User, o.Password, o.UserInfo = "", "", nil
	o.Token, o.TokenHandler = "", nil
	o.Nkey, o.UserJWT, o.SignatureCB = "", nil, nil
	return nil
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

// Classify turns a dial or protocol error into a message that names the
// side, the server (without credentials) and what to check.
func Classify(s Side, u string, err error) error {
	where := fmt.Sprintf("%s server %s", s.Name, Redact(u))
	p := s.flag()
	msg := strings.ToLower(err.Error())
	switch {
	case errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAccountAuthExpired),
		strings.Contains(msg, "authentication expired"):
		return fmt.Errorf("%s: %w: the credentials have expired (%v): renew the user JWT (%screds or the context's)",
			where, ErrAuth, err, p)
	case errors.Is(err, nats.ErrAuthRevoked), strings.Contains(msg, "authentication revoked"):
		return fmt.Errorf("%s: %w: the credentials were revoked (%v): ask for a new user JWT (%screds)",
			where, ErrAuth, err, p)
	case errors.Is(err, nats.ErrAuthorization), strings.Contains(msg, "authorization violation"):
		// On connect the server says "Authorization Violation" for every
		// credential it does not accept: this is authentication.
		return fmt.Errorf("%s: %w: the server rejected the credentials (%v): check %suser/%spassword, %stoken, %snkey, %screds or the context's credentials for the %s side",
			where, ErrAuth, err, p, p, p, p, p, s.Name)
	case errors.Is(err, nats.ErrPermissionViolation), strings.Contains(msg, "permissions violation"):
		return fmt.Errorf("%s: %w (authorization violation): %v: %s", where, ErrPermission, err, permissionAdvice(s, err))
	}
	if advice := tlsAdvice(s, err); advice != "" {
		return fmt.Errorf("%s: %w: %v: %s", where, ErrTLS, err, advice)
	}
	switch {
	case errors.Is(err, nats.ErrNoServers), strings.Contains(msg, "connection refused"), strings.Contains(msg, "no such host"),
		strings.Contains(msg, "i/o timeout"), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%s: %v: is the server running and the URL right? %w", where, err, ErrUnreachable)
	}
	return fmt.Errorf("%s: %w", where, err)
}

// tlsAdvice says what to fix for a TLS failure, "" when err is not one.
func tlsAdvice(s Side, err error) string {
	p := s.flag()
	msg := strings.ToLower(err.Error())
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	switch {
	case errors.Is(err, nats.ErrSecureConnWanted):
		return fmt.Sprintf("the server does not offer TLS: check the URL, or drop %stls-ca/%stls-cert", p, p)
	case errors.Is(err, nats.ErrSecureConnRequired):
		return fmt.Sprintf("the server requires TLS: pass %stls-ca with the CA that signed its certificate", p)
	case strings.Contains(msg, "remote error: tls:"), strings.Contains(msg, "closed by remote after tls handshake"):
		// The server's alert, or (TLS 1.3, when the alert loses the race
		// with our first write) its hanging up: it did not accept our
		// client certificate.
		if strings.Contains(msg, "expired") {
			return fmt.Sprintf("the server rejected the client certificate as expired: renew %stls-cert", p)
		}
		return fmt.Sprintf("the server requires a client certificate signed by a CA it trusts: check %stls-cert and %stls-key", p, p)
	case errors.As(err, &unknown):
		return fmt.Sprintf("the server's certificate is not signed by a CA this side trusts: pass that CA with %stls-ca", p)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "renew the server's certificate (or check the clocks)"
	case errors.As(err, &host):
		return "connect with a host name the server's certificate lists"
	case errors.As(err, &invalid), errors.Is(err, nats.ErrTLS), strings.Contains(msg, "x509:"), strings.Contains(msg, "tls:"):
		return fmt.Sprintf("check %stls-ca, %stls-cert and %stls-key", p, p, p)
	}
	return ""
}

// permissionAdvice names what the side's user needs.
func permissionAdvice(s Side, err error) string {
	msg := strings.ToLower(err.Error())
	switch {
	case strings.Contains(msg, "$js.api"):
		return "the JetStream API is denied: grant the user publish on $JS.API.> (and subscribe on _INBOX.>)"
	case s.Name == "STAN":
		return "grant the user publish on _STAN.> and _INBOX.>, and subscribe on _INBOX.> (the STAN protocol's subjects)"
	case strings.Contains(msg, "subscription"):
		return "grant the user subscribe on _INBOX.> (replies from JetStream)"
	}
	return "grant the user publish on the channels' subjects, $JS.API.> and $JS.ACK.>, and subscribe on _INBOX.>"
}

// PermissionErr returns the permission violation the server reported on
// nc, classified for the side, or nil. A denied publish or subscribe is
// reported asynchronously, so a request that timed out may have been
// denied: callers ask here before treating a timeout as transient.
func PermissionErr(s Side, nc *nats.Conn) error {
	if nc == nil {
		return nil
	}
	return permissionErr(s, nc.ConnectedUrlRedacted(), nc)
}

func permissionErr(s Side, u string, nc *nats.Conn) error {
	last := nc.LastError()
	if last == nil || !errors.Is(last, nats.ErrPermissionViolation) {
		return nil
	}
	return Classify(s, u, last)
}

// failOnPermissionError calls abort once nc records a permission
// violation, until the returned stop is called.
func failOnPermissionError(nc *nats.Conn, abort func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if errors.Is(nc.LastError(), nats.ErrPermissionViolation) {
					abort()
					return
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
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
