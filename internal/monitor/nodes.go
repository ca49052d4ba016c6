package monitor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ErrNoLeader: none of several monitoring endpoints belongs to the server
// that leads (a clustered STAN's leader, an FT pair's active server).
var ErrNoLeader = errors.New("no STAN server leads")

// Reader is what the migration reads from STAN monitoring; one endpoint
// (Client) and the endpoints of a clustered or fault-tolerant deployment
// (Nodes) both serve it.
type Reader interface {
	URL() string
	Serverz(ctx context.Context) (*Serverz, error)
	Storez(ctx context.Context) (*Storez, error)
	Varz(ctx context.Context) (*Varz, error)
	Channels(ctx context.Context, pageSize int) ([]*Channelz, error)
	Channel(ctx context.Context, name string) (*Channelz, error)
}

// Open returns a Reader for a comma-separated list of monitoring base
// URLs: a Client for one, Nodes for several.
func Open(list string, hc *http.Client) Reader {
	var urls []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	if len(urls) <= 1 {
		return New(list, hc)
	}
	n := &Nodes{}
	for _, u := range urls {
		n.clients = append(n.clients, New(u, hc))
	}
	return n
}

// Nodes reads one STAN deployment's monitoring through whichever of its
// servers leads: the leader of a clustered STAN, the active server of an
// FT pair. A follower's channel state (last_sent, pending counts) trails
// the leader's by up to a second and an FT standby shows no channels, so
// only the leader is asked, and every answer is kept only if its server
// still leads when asked right after (see read).
type Nodes struct {
	clients []*Client

	mu  sync.Mutex
	cur *Client
}

// Timeouts are variables so tests can shorten them.
var (
	// electionWait is how long Nodes waits for one of them to lead (an
	// election in progress, an FT standby taking over).
	electionWait = 20 * time.Second
)

// URL is the leading endpoint's base URL without user information (the
// first one's until a leader is known).
func (n *Nodes) URL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cur != nil {
		return n.cur.URL()
	}
	return n.clients[0].URL()
}

// URLs are every endpoint's base URL without user information.
func (n *Nodes) URLs() []string {
	out := make([]string, len(n.clients))
	for i, c := range n.clients {
		out[i] = c.URL()
	}
	return out
}

// leader returns the endpoint of the server that leads, asking every
// endpoint's serverz when none is known or the choice is old.
func (n *Nodes) leader(ctx context.Context) (*Client, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cur != nil {
		return n.cur, nil
	}
	deadline := time.Now().Add(electionWait)
	for {
		var states []string
		unreachable := 0
		for _, c := range n.clients {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			sz, err := c.Serverz(sctx)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				if errors.Is(err, ErrUnreachable) {
					unreachable++
				}
				states = append(states, fmt.Sprintf("%s: %v", c.URL(), err))
				continue
			}
			if leads(sz) {
				n.cur = c
				return c, nil
			}
			states = append(states, fmt.Sprintf("%s: %s", c.URL(), describeRole(sz)))
		}
		n.cur = nil
		if time.Now().After(deadline) {
			cause := ErrNoLeader
			if unreachable == len(n.clients) {
				cause = ErrUnreachable
			}
			return nil, fmt.Errorf("none of the STAN monitoring endpoints leads after %v (%s): wait for the election to end, and check that --stan-monitor lists the servers of this cluster: %w",
				electionWait, strings.Join(states, "; "), cause)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// leads reports whether serverz describes the server to read: a
// standalone server, an FT pair's active one, or a cluster's leader.
func leads(sz *Serverz) bool {
	switch sz.State {
	case "STANDALONE", "FT_ACTIVE":
		return true
	case "CLUSTERED":
		return sz.Role == "Leader"
	}
	return false
}

func describeRole(sz *Serverz) string {
	if sz.Role != "" {
		return strings.ToLower(sz.State) + " " + strings.ToLower(sz.Role)
	}
	return strings.ToLower(sz.State)
}

// forget drops the leader after it stopped answering or leading.
func (n *Nodes) forget(c *Client) {
	n.mu.Lock()
	if n.cur == c {
		n.cur = nil
	}
	n.mu.Unlock()
}

// read runs f against the leader, and again against a newly chosen one
// when the leader does not answer or, asked right after, no longer leads:
// the leader chosen earlier may have been deposed, or an FT
// active server killed and restarted on the same port as a standby, which
// answers every endpoint with an empty state (no channels, no cluster id)
// rather than an error.
func read[T any](ctx context.Context, n *Nodes, f func(*Client) (T, error)) (T, error) {
	var zero T
	for attempt := 0; ; attempt++ {
		c, err := n.leader(ctx)
		if err != nil {
			return zero, err
		}
		v, err := f(c)
		if ctx.Err() != nil {
			return v, err
		}
		if err == nil || errors.Is(err, ErrNotFound) {
			sz, isServerz := any(v).(*Serverz)
			if !isServerz || sz == nil {
				var serr error
				if sz, serr = c.Serverz(ctx); serr != nil {
					sz = nil
				}
			}
			if sz != nil && leads(sz) {
				return v, err
			}
		} else if !errors.Is(err, ErrUnreachable) {
			return v, err
		}
		n.forget(c)
		if attempt == 2 {
			if err == nil || errors.Is(err, ErrNotFound) {
				err = fmt.Errorf("%s stopped leading as it answered, three times over: %w", c.URL(), ErrNoLeader)
			}
			return zero, err
		}
	}
}

// Serverz fetches the leader's /streaming/serverz.
func (n *Nodes) Serverz(ctx context.Context) (*Serverz, error) {
	return read(ctx, n, func(c *Client) (*Serverz, error) { return c.Serverz(ctx) })
}

// Storez fetches the leader's /streaming/storez.
func (n *Nodes) Storez(ctx context.Context) (*Storez, error) {
	return read(ctx, n, func(c *Client) (*Storez, error) { return c.Storez(ctx) })
}

// Varz fetches the leader's /varz.
func (n *Nodes) Varz(ctx context.Context) (*Varz, error) {
	return read(ctx, n, func(c *Client) (*Varz, error) { return c.Varz(ctx) })
}

// Channels lists every channel from the leader.
func (n *Nodes) Channels(ctx context.Context, pageSize int) ([]*Channelz, error) {
	return read(ctx, n, func(c *Client) ([]*Channelz, error) { return c.Channels(ctx, pageSize) })
}

// Channel reads one channel from the leader.
func (n *Nodes) Channel(ctx context.Context, name string) (*Channelz, error) {
	return read(ctx, n, func(c *Client) (*Channelz, error) { return c.Channel(ctx, name) })
}
