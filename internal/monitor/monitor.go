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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
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
