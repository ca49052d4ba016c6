package plan

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats-streaming-server/stores"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/monitor"
	"github.com/stanmigrate/stanmigrate/internal/naming"
	"github.com/stanmigrate/stanmigrate/internal/stanstore"
)

// DirConfig says where a stopped STAN server's file store is.
type DirConfig struct {
	// Store is the opened directory (stanstore.Open, with the server's
	// limits); the caller closes it.
	Store *stanstore.Store
	// ClusterID, when set, must be the directory's.
	ClusterID string
	// LimitsFrom names where the store limits came from, for the report
	// (for example the configuration file); "" means the server's
	// defaults were assumed.
	LimitsFrom string
	// SkipBroken marks channels the directory cannot read skip: true
	// with a warning; otherwise each is a blocker.
	SkipBroken bool
	Target     conn.Side
}

// Offline is what discovery learned from a store directory beyond what
// monitoring would show. Build uses it to give every durable its exact
// start (the stored pending sets make probing unnecessary) and to mark the
// channels the directory cannot read.
type Offline struct {
	Dir        string
	LimitsFrom string
	SkipBroken bool
	// Starts holds each durable's exact start: channel, then
	// Durable.Key().
	Starts map[string]map[string]uint64
	// Pending counts each durable's unacknowledged sequences still in the
	// channel (those a consumer delivers again).
	Pending map[string]map[string]int
	// Broken holds why each unreadable channel cannot be read.
	Broken map[string]error
	// MaxMsgSize is the largest stored message of each channel.
	MaxMsgSize map[string]uint32
	// Notes are what the reader worked around per channel, where a
	// starting server would repair a file without losing data.
	Notes map[string][]string
	// TargetMaxPayload is the target's max_payload (0 = unknown).
	TargetMaxPayload int64
}

// DiscoverDir reads a stopped STAN server's file store directory and the
// target's existing streams, into the same Discovery the monitoring-based
// Discover produces. It changes nothing, in the directory or on the
// target.
func DiscoverDir(ctx context.Context, cfg DirConfig) (*Discovery, error) {
	st := cfg.Store
	if st == nil {
		return nil, errors.New("plan: no STAN directory given")
	}
	if cfg.ClusterID != "" && st.ClusterID() != cfg.ClusterID {
		return nil, fmt.Errorf("the STAN directory %s belongs to cluster %q, not %q: pass --cluster %s (or check --stan-dir): %w",
			st.Dir(), st.ClusterID(), cfg.ClusterID, st.ClusterID(), conn.ErrWrongCluster)
	}
	off := &Offline{
		Dir: st.Dir(), LimitsFrom: cfg.LimitsFrom, SkipBroken: cfg.SkipBroken,
		Starts: map[string]map[string]uint64{}, Pending: map[string]map[string]int{},
		Broken: map[string]error{}, MaxMsgSize: map[string]uint32{}, Notes: map[string][]string{},
	}
	d := &Discovery{
		ClusterID:     st.ClusterID(),
		SourceURL:     "file://" + st.Dir(),
		ServerVersion: "stopped; read from its file store directory",
		Limits:        MonitorLimits(st.Limits()),
		Offline:       off,
	}
	for _, c := range st.Channels() {
		if c.Err != nil {
			off.Broken[c.Name] = c.Err
			d.Channels = append(d.Channels, &monitor.Channelz{Name: c.Name})
			continue
		}
		d.Channels = append(d.Channels, Channelz(c))
		off.MaxMsgSize[c.Name] = c.MaxMsgSize
		off.Notes[c.Name] = c.Notes
		starts, pending := map[string]uint64{}, map[string]int{}
		for _, du := range c.Durables() {
			starts[du.Key()] = du.Start
			for _, seq := range du.Pending {
				if seq >= c.FirstSeq {
					pending[du.Key()]++
				}
			}
		}
		off.Starts[c.Name], off.Pending[c.Name] = starts, pending
	}
	wanted := make([]string, len(d.Channels))
	for i, c := range d.Channels {
		wanted[i] = naming.StreamName(c.Name)
	}
	t, err := DiscoverTarget(ctx, cfg.Target, wanted)
	if err != nil {
		return nil, err
	}
	d.Target = *t
	off.TargetMaxPayload = t.MaxPayload
	return d, nil
}

// Channelz presents a channel read from a store directory as monitoring
// would present it once a server started on the directory, except that
// nothing is online: no server runs. Members of a durable queue group come
// before its shadow, as in monitoring.
func Channelz(c stanstore.Channel) *monitor.Channelz {
	cz := &monitor.Channelz{Name: c.Name, Msgs: int(c.Msgs), Bytes: c.Bytes, FirstSeq: c.FirstSeq, LastSeq: c.LastSeq}
	subs := append([]stanstore.Subscription(nil), c.Subscriptions...)
	sort.SliceStable(subs, func(i, j int) bool { return !subs[i].Shadow && subs[j].Shadow })
	for _, s := range subs {
		sz := &monitor.Subscriptionz{
			ClientID: s.ClientID, Inbox: s.Inbox, AckInbox: s.AckInbox, IsDurable: s.IsDurable,
			IsOffline: s.IsDurable, MaxInflight: s.MaxInflight, AckWait: int(s.AckWait / time.Second),
			LastSent: s.LastSent, PendingCount: len(s.Pending),
		}
		switch {
		case s.IsDurable && s.QueueGroup != "":
			sz.QueueName = s.Durable + ":" + s.QueueGroup
		case s.IsDurable:
			sz.DurableName = s.Durable
		default:
			sz.QueueName = s.QueueGroup
		}
		cz.Subscriptions = append(cz.Subscriptions, sz)
	}
	cz.SubsCount = len(cz.Subscriptions)
	return cz
}

// MonitorLimits presents built store limits (inheritance resolved, as
// stanstore.Store.Limits returns them) the way monitoring's storez does.
func MonitorLimits(l stores.StoreLimits) monitor.StoreLimits {
	conv := func(c stores.ChannelLimits) monitor.ChannelLimits {
		return monitor.ChannelLimits{MaxMsgs: c.MaxMsgs, MaxBytes: c.MaxBytes, MaxAge: c.MaxAge,
			MaxSubscriptions: c.MaxSubscriptions, MaxInactivity: c.MaxInactivity}
	}
	out := monitor.StoreLimits{MaxChannels: l.MaxChannels, ChannelLimits: conv(l.ChannelLimits)}
	if len(l.PerChannel) > 0 {
		out.PerChannel = make(map[string]*monitor.ChannelLimits, len(l.PerChannel))
		for k, v := range l.PerChannel {
			cl := conv(*v)
			out.PerChannel[k] = &cl
		}
	}
	return out
}

// apply gives the channel's durables their exact starts and handles an
// unreadable channel.
func (o *Offline) apply(c *Channel, add func(sev, obj, format string, args ...any)) {
	obj := fmt.Sprintf("channel %q", c.Name)
	if err, ok := o.Broken[c.Name]; ok {
		if o.SkipBroken {
			c.Skip = true
			add(Warning, obj, "skipped (skip: true): the STAN directory cannot be read for it: %v", err)
		} else {
			add(Blocker, obj, "%v", err)
		}
		return
	}
	for _, n := range o.Notes[c.Name] {
		add(Info, obj, "%s", n)
	}
	for i := range c.Durables {
		d := &c.Durables[i]
		start, ok := o.Starts[c.Name][d.Key()]
		if !ok {
			continue
		}
		d.StartSeq, d.Position = start, PositionExact
		if n := o.Pending[c.Name][d.Key()]; n > 0 {
			add(Info, d.Describe(c.Name), "%d message(s) unacknowledged: the consumer starts at sequence %d, the lowest of them (exact, from the stored pending set); the application will see them again, as STAN would redeliver them", n, start)
		}
	}
	if size := int64(o.MaxMsgSize[c.Name]); o.TargetMaxPayload > 0 && size > 0 &&
		size+HeaderOverhead+3*int64(len(c.Name)) > o.TargetMaxPayload {
		add(Warning, obj, "holds messages of up to %d bytes (stored size, payload included): with the migration headers they may exceed the target's max_payload %d, and migrate stops before such a message: raise max_payload on the target", size, o.TargetMaxPayload)
	}
}

// report adds the findings about the source as a whole.
func (o *Offline) report(add func(sev, obj, format string, args ...any)) {
	obj := "STAN directory " + o.Dir
	if o.LimitsFrom == "" {
		add(Warning, obj, "store limits assumed to be the STAN server's defaults (1,000,000 messages, 1 GB per channel, no max_age): the directory does not record limits, and a server applies its own on start (dropping messages over max_msgs or max_bytes, expiring those older than max_age): if the server ran with other limits, pass its configuration file with --stan-config")
	} else {
		add(Info, obj, "store limits from %s (the directory does not record them; a server applies them on start, and so does the reader)", o.LimitsFrom)
	}
}

// Unreadable lists, for a plan built from a directory, the channels that
// cannot be read and are not skipped, each error naming the channel and
// its file.
func (o *Offline) Unreadable(p *Plan) []error {
	var out []error
	for _, c := range p.Channels {
		if err, ok := o.Broken[c.Name]; ok && !c.Skip {
			out = append(out, err)
		}
	}
	return out
}
