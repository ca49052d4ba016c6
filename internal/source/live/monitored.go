package live

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/monitor"
	"github.com/stanmigrate/stanmigrate/internal/source"
)

// Monitored is a live STAN server with its monitoring endpoint: channels,
// bounds, limits and durables come from monitoring, exact as the server
// sees them.
type Monitored struct {
	base
	mon monitor.Reader

	// limits are read once they are read successfully: a failed read
	// (a cancelled caller, monitoring down during a failover) is not
	// remembered, so a retry asks again.
	limitsMu sync.Mutex
	limits   *monitor.StoreLimits
}

var _ source.Source = (*Monitored)(nil)

// NewMonitored checks that the monitoring endpoint answers for the
// cluster id and returns the source. It connects no STAN client yet.
func NewMonitored(ctx context.Context, o Options, mon monitor.Reader, monitorURL string) (*Monitored, error) {
	m := &Monitored{base: newBase(o), mon: mon}
	srv, err := mon.Serverz(ctx)
	if err != nil {
		return nil, MonitorError(err)
	}
	if srv.ClusterID != o.ClusterID {
		return nil, fmt.Errorf("STAN monitoring %s reports cluster id %q, not %q: pass --cluster %s (or fix --stan-monitor): %w",
			conn.Redact(monitorURL), srv.ClusterID, o.ClusterID, srv.ClusterID, conn.ErrWrongCluster)
	}
	return m, nil
}

// MonitorError says what to check when monitoring fails, and classes the
// failure with the connection errors (unreachable, bad settings).
func MonitorError(err error) error {
	if errors.Is(err, monitor.ErrUnreachable) {
		return fmt.Errorf("%w: is STAN running with monitoring enabled (-m), and is --stan-monitor right? %w", err, conn.ErrUnreachable)
	}
	if errors.Is(err, monitor.ErrNotStreaming) {
		return fmt.Errorf("%w: --stan-monitor must point at the STAN server's monitoring port: %w", err, conn.ErrBadConfig)
	}
	return err
}

// Info reads serverz and varz.
func (m *Monitored) Info(ctx context.Context) (source.Info, error) {
	srv, err := m.mon.Serverz(ctx)
	if err != nil {
		return source.Info{}, MonitorError(err)
	}
	in := source.Info{
		ClusterID: srv.ClusterID, Name: fmt.Sprintf("STAN cluster %q", srv.ClusterID),
		MonitorURL: conn.Redact(m.mon.URL()), ServerVersion: srv.Version,
	}
	if u, _, err := m.o.STAN.Resolved(); err == nil {
		in.URL = conn.Redact(u)
	}
	if vz, err := m.mon.Varz(ctx); err == nil {
		in.MaxPayload = vz.MaxPayload
	}
	return in, nil
}

func (m *Monitored) storeLimits(ctx context.Context) (monitor.StoreLimits, error) {
	m.limitsMu.Lock()
	defer m.limitsMu.Unlock()
	if m.limits == nil {
		sz, err := m.mon.Storez(ctx)
		if err != nil {
			return monitor.StoreLimits{}, MonitorError(err)
		}
		m.limits = &sz.Limits
	}
	return *m.limits, nil
}

// Channels lists every channel, page by page.
func (m *Monitored) Channels(ctx context.Context) ([]source.Channel, error) {
	lim, err := m.storeLimits(ctx)
	if err != nil {
		return nil, err
	}
	czs, err := m.mon.Channels(ctx, 0)
	if err != nil {
		return nil, MonitorError(err)
	}
	out := make([]source.Channel, 0, len(czs))
	for _, cz := range czs {
		out = append(out, FromMonitor(cz, lim))
	}
	return out, nil
}

// Channel reads one channel.
func (m *Monitored) Channel(ctx context.Context, name string) (source.Channel, error) {
	lim, err := m.storeLimits(ctx)
	if err != nil {
		return source.Channel{}, err
	}
	cz, err := m.mon.Channel(ctx, name)
	if errors.Is(err, monitor.ErrNotFound) {
		return source.Channel{}, fmt.Errorf("channel %q: %w", name, source.ErrNoChannel)
	}
	if err != nil {
		return source.Channel{}, fmt.Errorf("channel %q: %w", name, MonitorError(err))
	}
	return FromMonitor(cz, lim), nil
}

// FromMonitor presents a channelsz entry under the store limits storez
// reported (STAN names a durable queue group "durable:group").
func FromMonitor(cz *monitor.Channelz, lim monitor.StoreLimits) source.Channel {
	cl, from := lim.ForChannel(cz.Name)
	c := source.Channel{
		Name: cz.Name, FirstSeq: cz.FirstSeq, LastSeq: cz.LastSeq, Msgs: uint64(max(cz.Msgs, 0)), Bytes: cz.Bytes,
		Counted: true, DurablesKnown: true, LimitsFrom: from,
		Limits: source.Limits{MaxMsgs: cl.MaxMsgs, MaxBytes: cl.MaxBytes, MaxAge: cl.MaxAge, MaxSubscriptions: cl.MaxSubscriptions},
	}
	subs := make([]source.Sub, 0, len(cz.Subscriptions))
	for _, s := range cz.Subscriptions {
		sub := source.Sub{
			ClientID: s.ClientID, IsDurable: s.IsDurable, Online: !s.IsOffline,
			MaxInflight: s.MaxInflight, AckWait: time.Duration(s.AckWait) * time.Second,
			LastSent: s.LastSent, PendingCount: s.PendingCount,
		}
		switch {
		case s.IsDurable && s.QueueName == "":
			sub.Durable = s.DurableName
		case s.IsDurable:
			sub.Durable, sub.QueueGroup, _ = strings.Cut(s.QueueName, ":")
		default:
			sub.QueueGroup = s.QueueName
		}
		subs = append(subs, sub)
	}
	c.Durables, c.NonDurables = source.Merge(subs)
	return c
}
