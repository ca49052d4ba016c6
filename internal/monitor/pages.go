package monitor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

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
