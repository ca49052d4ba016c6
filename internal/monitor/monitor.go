// Package monitor reads a NATS Streaming (STAN) server's HTTP monitoring
// endpoint: server and store information, store limits, and every channel
// with its subscriptions. It is the discovery source for `plan`.
//
// The package never prints and never exits; every error names the endpoint
// it came from (with any user:password removed from the URL) and wraps one
// of ErrUnreachable, ErrNotFound or ErrNotStreaming where that applies, so
// callers can decide with errors.Is.
package monitor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	// ErrUnreachable: connection refused, DNS failure, timeout.
	ErrUnreachable = errors.New("monitoring endpoint unreachable")
	// ErrNotFound: the server answered 404 for something that should exist
	// on a STAN server, e.g. a channel that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNotStreaming: the endpoint answers but is not a STAN monitoring
	// endpoint, typically a plain nats-server (no /streaming/ pages).
	ErrNotStreaming = errors.New("not a NATS Streaming monitoring endpoint")
	// ErrTLS: the HTTPS handshake failed (untrusted or expired
	// certificate, client certificate refused).
	ErrTLS = errors.New("TLS handshake failed")
)

// Paths of the monitoring pages, as registered by nats-streaming-server.
const (
	pathServerz    = "/streaming/serverz"
	pathStorez     = "/streaming/storez"
	pathChannelsz  = "/streaming/channelsz"
	pathIsFTActive = "/streaming/isFTActive"
	pathVarz       = "/varz"

	// DefaultPageSize is the server's own default channelsz page size.
	DefaultPageSize = 1024

	defaultTimeout = 10 * time.Second
	errBodyMax     = 200
)

// Client talks to one monitoring endpoint. It is safe for concurrent use.
type Client struct {
	base     *url.URL // nil when baseURL could not be parsed (parseErr set)
	display  string   // base URL without userinfo, for error texts
	secret   string   // userinfo as written, scrubbed from any error text
	parseErr error
	hc       *http.Client
}

// New returns a client for the monitoring base URL (for example
// http://127.0.0.1:8222). A trailing slash and a path prefix (a reverse
// proxy mounting the pages under /nats/) are tolerated; a missing scheme
// means http. User information in the URL is sent as basic auth but never
// appears in errors. hc nil means an http.Client with a 10 s timeout.
//
// New does not fail: a malformed URL is reported by every call instead, so
// the constructor can be used in struct literals and flag defaults.
func New(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: defaultTimeout}
	}
	c := &Client{hc: hc}
	raw := strings.TrimSpace(baseURL)
	if raw != "" && !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		// url.Parse quotes the whole input, password included.
		c.parseErr = errors.New("invalid monitoring URL")
		c.display = "<invalid URL>"
		if at := strings.LastIndex(raw, "@"); at >= 0 {
			if i := strings.Index(raw, "://"); i >= 0 && i+3 <= at {
				c.secret = raw[i+3 : at]
			}
		}
		return c
	case u.Scheme != "http" && u.Scheme != "https":
		c.parseErr = fmt.Errorf("monitoring URL scheme %q is not http or https", u.Scheme)
	case u.Host == "":
		c.parseErr = errors.New("monitoring URL has no host")
	}
	if u.User != nil {
		c.secret = u.User.String()
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	u.RawQuery = ""
	u.Fragment = ""
	c.base = u
	d := *u
	d.User = nil
	c.display = d.String()
	return c
}

// URL is the monitoring base URL without user information, safe to show
// and to write into files.
func (c *Client) URL() string { return c.display }

// Serverz is /streaming/serverz (the fields the migration uses).
type Serverz struct {
	ClusterID     string `json:"cluster_id"`
	ServerID      string `json:"server_id"`
	Version       string `json:"version"`
	GoVersion     string `json:"go"`
	State         string `json:"state"` // STANDALONE, FT_ACTIVE, FT_STANDBY, CLUSTERED, ...
	Role          string `json:"role,omitempty"`
	NodeID        string `json:"node_id,omitempty"`
	Clients       int    `json:"clients"`
	Subscriptions int    `json:"subscriptions"`
	Channels      int    `json:"channels"`
	TotalMsgs     int    `json:"total_msgs"`
	TotalBytes    uint64 `json:"total_bytes"`
}

// Storez is /streaming/storez.
type Storez struct {
	ClusterID  string      `json:"cluster_id"`
	ServerID   string      `json:"server_id"`
	Type       string      `json:"type"` // MEMORY, FILE, SQL, RAFT_...
	Limits     StoreLimits `json:"limits"`
	TotalMsgs  int         `json:"total_msgs"`
	TotalBytes uint64      `json:"total_bytes"`
}

// Varz is the part of nats-server's /varz the migration needs. STAN embeds
// a nats-server, so it answers on the same port as the /streaming pages.
type Varz struct {
	ServerID   string `json:"server_id"`
	ServerName string `json:"server_name"`
	Version    string `json:"version"`
	Host       string `json:"host"`
	Port       int    `json:"port"`
	MaxPayload int64  `json:"max_payload"`
}

// Channelz is one channel of /streaming/channelsz.
type Channelz struct {
	Name          string           `json:"name"`
	Msgs          int              `json:"msgs"`
	Bytes         uint64           `json:"bytes"`
	FirstSeq      uint64           `json:"first_seq"`
	LastSeq       uint64           `json:"last_seq"`
	SubsCount     int              `json:"subs_count"`
	Subscriptions []*Subscriptionz `json:"subscriptions,omitempty"`
}

// Subscriptionz is one subscription of a channel.
//
// How STAN reports them (server/monitor.go getMonitorChannelSubs): online
// subscriptions, then offline plain durables, then for each queue group its
// online members plus, when every member of a durable group has left, one
// offline "shadow" entry holding the group's last_sent and pending. A durable
// queue group's QueueName is "durable:group" and its DurableName is empty.
// For offline entries ClientID is the last owner's id (it may be empty for
// a shadow).
type Subscriptionz struct {
	ClientID     string `json:"client_id"`
	Inbox        string `json:"inbox"`
	AckInbox     string `json:"ack_inbox"`
	DurableName  string `json:"durable_name,omitempty"`
	QueueName    string `json:"queue_name,omitempty"`
	IsDurable    bool   `json:"is_durable"`
	IsOffline    bool   `json:"is_offline"`
	MaxInflight  int    `json:"max_inflight"`
	AckWait      int    `json:"ack_wait"` // seconds
	LastSent     uint64 `json:"last_sent"`
	PendingCount int    `json:"pending_count"`
	IsStalled    bool   `json:"is_stalled"`
}

type channelsz struct {
	Offset   int         `json:"offset"`
	Limit    int         `json:"limit"`
	Count    int         `json:"count"`
	Total    int         `json:"total"`
	Channels []*Channelz `json:"channels"`
}

// Serverz fetches /streaming/serverz.
func (c *Client) Serverz(ctx context.Context) (*Serverz, error) {
	var v Serverz
	if err := c.getJSON(ctx, pathServerz, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Storez fetches /streaming/storez.
//
// On an FT standby the limits are the raw configuration: STAN applies
// per-channel inheritance to the copy it reports only once it becomes
// active, so ask the active server (see IsFTActive) before using Limits.
func (c *Client) Storez(ctx context.Context) (*Storez, error) {
	var v Storez
	if err := c.getJSON(ctx, pathStorez, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Varz fetches nats-server's /varz from the same port.
func (c *Client) Varz(ctx context.Context) (*Varz, error) {
	var v Varz
	if err := c.getJSON(ctx, pathVarz, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// IsFTActive asks /streaming/isFTActive: true only on 200. STAN answers 204
// in every other state, including a standalone or clustered server that is
// perfectly able to serve, so false means "not the active member of an FT
// pair", not "unusable". A 404 means the endpoint is not STAN and returns
// ErrNotStreaming rather than a silent false.
func (c *Client) IsFTActive(ctx context.Context) (bool, error) {
	resp, err := c.do(ctx, pathIsFTActive, nil)
	if err != nil {
		return false, err
	}
	defer drain(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, c.fail(pathIsFTActive, fmt.Errorf("HTTP 404: %w", ErrNotStreaming))
	default:
		return false, nil
	}
}

// Channels returns every channel with its subscriptions, sorted by name as
// the server sorts them. pageSize <= 0 means the server's default, 1024.
//
// channelsz pages by offset into a list the server rebuilds on each call, so
// channels created or deleted while paging shift the pages: a page may then
// repeat names already seen (dropped here, relying on the name order) and
// the total may change; paging stops at the latest total or at the first
// empty page, whichever comes first. A channel deleted during the listing
// can make a later one be skipped; callers that need a stable picture should
// list while producers are quiet.
func (c *Client) Channels(ctx context.Context, pageSize int) ([]*Channelz, error) {
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	var (
		all    []*Channelz
		last   string
		offset int
	)
	for {
		q := url.Values{}
		q.Set("subs", "1")
		q.Set("offset", strconv.Itoa(offset))
		q.Set("limit", strconv.Itoa(pageSize))
		var page channelsz
		if err := c.getJSON(ctx, pathChannelsz, q, &page); err != nil {
			return nil, err
		}
		if len(page.Channels) == 0 {
			return all, nil
		}
		for _, ch := range page.Channels {
			if ch == nil || (len(all) > 0 && ch.Name <= last) {
				continue
			}
			all = append(all, ch)
			last = ch.Name
		}
		offset += len(page.Channels)
		if offset >= page.Total {
			return all, nil
		}
	}
}

// Channel returns one channel with its subscriptions. A channel the server
// does not know yields an error wrapping ErrNotFound.
func (c *Client) Channel(ctx context.Context, name string) (*Channelz, error) {
	q := url.Values{}
	q.Set("channel", name)
	q.Set("subs", "1")
	var v Channelz
	if err := c.getJSON(ctx, pathChannelsz, q, &v); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, c.fail(pathChannelsz, fmt.Errorf("channel %q: %w", name, ErrNotFound))
		}
		return nil, err
	}
	return &v, nil
}

func (c *Client) getJSON(ctx context.Context, path string, q url.Values, into any) error {
	resp, err := c.do(ctx, path, q)
	if err != nil {
		return err
	}
	defer drain(resp.Body)
	if resp.StatusCode != http.StatusOK {
		body := readPrefix(resp.Body)
		if resp.StatusCode == http.StatusNotFound {
			// Only STAN's channel handler answers 404 with a text of its
			// own ("Channel <name> not found"); any other 404 is the HTTP
			// mux of a server without the /streaming pages.
			if q.Get("channel") != "" && strings.HasPrefix(body, "Channel ") {
				return c.fail(path, fmt.Errorf("HTTP 404: %s: %w", body, ErrNotFound))
			}
			return c.fail(path, fmt.Errorf("HTTP 404: %w", ErrNotStreaming))
		}
		return c.fail(path, fmt.Errorf("HTTP %d: %q", resp.StatusCode, body))
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return c.fail(path, ctxErr)
		}
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		if errors.As(err, &syn) || errors.As(err, &typ) {
			// A 200 that is not STAN's JSON: some other web server.
			return c.fail(path, fmt.Errorf("decode response: %v: %w", err, ErrNotStreaming))
		}
		return c.fail(path, fmt.Errorf("decode response: %w: %w", err, ErrUnreachable))
	}
	return nil
}

// do sends a GET and returns the response whatever its status.
func (c *Client) do(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	if c.parseErr != nil {
		return nil, c.fail(path, c.parseErr)
	}
	u := *c.base
	u.Path = c.base.Path + path
	if q != nil {
		u.RawQuery = q.Encode() // url.Values.Encode applies QueryEscape
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, c.fail(path, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.fail(path, c.transportErr(ctx, err))
	}
	return resp, nil
}

// transportErr turns a client.Do failure into a short cause: the url.Error
// around it repeats the URL (with a masked but present user name), and the
// raw dial error is long; operators want "connection refused".
func (c *Client) transportErr(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			// The caller's deadline is a timeout too: keep both facts.
			return fmt.Errorf("timeout: %w: %w", ErrUnreachable, ctxErr)
		}
		return ctxErr
	}
	inner := err
	var ue *url.Error
	if errors.As(err, &ue) {
		inner = ue.Err
	}
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(inner, syscall.ECONNREFUSED):
		return fmt.Errorf("connection refused: %w", ErrUnreachable)
	case errors.As(inner, &dnsErr):
		return fmt.Errorf("lookup %s: %s: %w", dnsErr.Name, dnsErr.Err, ErrUnreachable)
	case errors.As(inner, &netErr) && netErr.Timeout():
		return fmt.Errorf("timeout: %w", ErrUnreachable)
	case errors.Is(inner, syscall.ECONNRESET), errors.Is(inner, syscall.EHOSTUNREACH),
		errors.Is(inner, syscall.ENETUNREACH), errors.Is(inner, io.EOF),
		errors.Is(inner, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s: %w", c.scrub(inner.Error()), ErrUnreachable)
	}
	if advice := tlsAdvice(inner); advice != "" {
		return fmt.Errorf("%w: %s: %s", ErrTLS, c.scrub(inner.Error()), advice)
	}
	var opErr *net.OpError
	if errors.As(inner, &opErr) {
		return fmt.Errorf("%s: %w", c.scrub(inner.Error()), ErrUnreachable)
	}
	// TLS failures, redirect loops...: the endpoint is reachable but wrong.
	return errors.New(c.scrub(inner.Error()))
}

// tlsAdvice says what to fix for a TLS failure, "" when err is not one.
func tlsAdvice(err error) string {
	msg := err.Error()
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	switch {
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return "the STAN monitoring endpoint speaks plain HTTP: use an http:// URL for --stan-monitor"
	case strings.Contains(msg, "remote error: tls:"):
		return "the STAN monitoring endpoint refused the client certificate: check --stan-monitor-cert and --stan-monitor-key"
	case errors.As(err, &unknown):
		return "the STAN monitoring endpoint's certificate is not signed by a CA trusted here: pass that CA with --stan-monitor-ca (default: --stan-tls-ca)"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "renew the STAN monitoring endpoint's certificate (or check the clocks)"
	case errors.As(err, &host):
		return "use a host name the STAN monitoring endpoint's certificate lists"
	case errors.As(err, &invalid), strings.Contains(msg, "x509:"), strings.Contains(msg, "tls:"):
		return "check --stan-monitor-ca and the STAN monitoring endpoint's certificate"
	}
	return ""
}

// HTTPClient returns an HTTP client for an HTTPS monitoring endpoint: it
// trusts the CA in caFile (PEM; empty: the system's roots) and presents
// the client certificate in certFile and keyFile when both are set.
func HTTPClient(caFile, certFile, keyFile string) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("monitoring CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("monitoring CA %s: no PEM certificate in it", caFile)
		}
		tc.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("a monitoring client certificate needs both a certificate and a key file")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("monitoring client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{Timeout: defaultTimeout, Transport: tr}, nil
}

// fail wraps err with the endpoint's URL, user information removed. Causes
// are scrubbed where they are built, so the text here is safe to log.
func (c *Client) fail(path string, err error) error {
	return fmt.Errorf("monitoring %s%s: %w", c.display, path, err)
}

// scrub removes the URL's user information from text that might quote it.
func (c *Client) scrub(s string) string {
	if c.secret == "" {
		return s
	}
	s = strings.ReplaceAll(s, c.secret+"@", "")
	if u, _, ok := strings.Cut(c.secret, ":"); ok && u != "" {
		// net/http masks passwords as "user:***@" in its own messages.
		s = strings.ReplaceAll(s, u+":***@", "")
	}
	return strings.ReplaceAll(s, c.secret, "***")
}

func readPrefix(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, errBodyMax))
	return strings.TrimSpace(string(b))
}

// drain lets the transport reuse the connection for the next page.
func drain(rc io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(rc, 64<<10))
	_ = rc.Close()
}

// ChannelLimits mirrors STAN's per-channel limits as storez reports them.
// 0 means unlimited.
type ChannelLimits struct {
	MaxMsgs          int           `json:"max_msgs"`
	MaxBytes         int64         `json:"max_bytes"`
	MaxAge           time.Duration `json:"max_age"` // nanoseconds in JSON
	MaxSubscriptions int           `json:"max_subscriptions"`
	MaxInactivity    time.Duration `json:"max_inactivity"`
}

// StoreLimits mirrors storez "limits": the global channel limits flattened
// next to max_channels, and per-channel limits keyed by channel name or
// wildcard pattern.
//
// In a STAN configuration a per-channel 0 means "inherit" and a negative
// value "unlimited". The server resolves that (stores.StoreLimits.Build,
// called on the reported copy when the server starts serving): each entry
// inherits, field by field, from the next wider pattern matching it, up to
// the global limits, and negatives become 0. So in storez from a running
// server every per-channel value is final and 0 means unlimited, even where
// the global limit is set. ForChannel relies on that and does not inherit
// again (it cannot: a resolved 0 is indistinguishable from an unresolved
// one). Only an FT standby reports the raw configuration.
type StoreLimits struct {
	MaxChannels int `json:"max_channels"`
	ChannelLimits
	PerChannel map[string]*ChannelLimits `json:"channels,omitempty"`
}

// ForChannel returns the limits STAN applies to the literal channel name and
// the per-channel key they come from ("" for the global limits).
//
// STAN (stores/common.go getChannelLimits) matches the name against every
// key with NATS subject rules — "*" one token, ">" one or more trailing
// tokens — and takes the last match of its sublist, whose order
// (util/sublist.go matchLevel) is: at each token position, ">" entries
// first, then entries with "*" there, then entries with the literal token.
// The winner is therefore decided at the first token where two matching
// keys differ, literal beating "*" beating ">". Consequences:
//
//	a.b beats a.* beats a.> beats *.b beats *.> beats >
//
// Note a.> beats *.b for channel a.b: the leftmost difference decides, not
// how many channels a pattern can match. A literal key equal to the name
// always wins.
//
// Negative values (only seen in an FT standby's raw configuration) are
// reported as 0, unlimited, which is what STAN would make of them.
func (l StoreLimits) ForChannel(name string) (ChannelLimits, string) {
	if cl, ok := l.PerChannel[name]; ok && cl != nil {
		return cl.normalized(), name
	}
	nameToks := strings.Split(name, ".")
	var best []string
	bestKey := ""
	for key, cl := range l.PerChannel {
		if cl == nil {
			continue
		}
		toks := strings.Split(key, ".")
		if !subjectMatches(toks, nameToks) {
			continue
		}
		if best == nil || narrower(toks, best) || (!narrower(best, toks) && key > bestKey) {
			best, bestKey = toks, key
		}
	}
	if best == nil {
		return l.ChannelLimits.normalized(), ""
	}
	return l.PerChannel[bestKey].normalized(), bestKey
}

func (cl ChannelLimits) normalized() ChannelLimits {
	cl.MaxMsgs = max(cl.MaxMsgs, 0)
	cl.MaxBytes = max(cl.MaxBytes, 0)
	cl.MaxAge = max(cl.MaxAge, 0)
	cl.MaxSubscriptions = max(cl.MaxSubscriptions, 0)
	cl.MaxInactivity = max(cl.MaxInactivity, 0)
	return cl
}

// subjectMatches reports whether pattern tokens match literal tokens.
func subjectMatches(pattern, literal []string) bool {
	for i, p := range pattern {
		if p == ">" {
			return i == len(pattern)-1 && len(literal) > i
		}
		if i >= len(literal) || (p != "*" && p != literal[i]) {
			return false
		}
	}
	return len(pattern) == len(literal)
}

// narrower reports whether pattern a comes after b in STAN's match order,
// both being known to match the same channel.
func narrower(a, b []string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if ra, rb := tokenRank(a[i]), tokenRank(b[i]); ra != rb {
			return ra > rb
		}
	}
	return false // identical ranks: two matching keys can only be equal
}

func tokenRank(t string) int {
	switch t {
	case ">":
		return 0
	case "*":
		return 1
	}
	return 2
}
