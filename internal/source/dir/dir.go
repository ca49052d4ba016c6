// Package dir is the Source of a stopped STAN server's file store
// directory, read in place through internal/stanstore: nothing in the
// directory changes, every durable's pending set is on disk (so nothing is
// probed), nothing is acknowledged, and the data does not grow.
package dir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/nats-io/nats-streaming-server/stores"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/internal/stanstore"
)

// Options say how to open the directory.
type Options struct {
	// Config is the STAN server's configuration file, for the store
	// limits the directory does not record ("" = the server's defaults).
	Config string
	// Limits, instead of Config, are the store limits themselves, and
	// LimitsFrom says where they came from.
	Limits     *stores.StoreLimits
	LimitsFrom string
	// ClusterID, when set, must be the directory's.
	ClusterID string
}

// Source reads a stopped server's store directory.
type Source struct {
	st         *stanstore.Store
	limitsFrom string
}

var _ source.Source = (*Source)(nil)

// Open opens the directory read-only with the limits from the server's
// configuration file (or the server's defaults).
func Open(ctx context.Context, path string, o Options) (*Source, error) {
	so := stanstore.Options{Limits: o.Limits}
	configCluster, limitsFrom := "", o.LimitsFrom
	if o.Config != "" {
		cfg, err := stanstore.LoadServerConfig(o.Config)
		if err != nil {
			return nil, fmt.Errorf("%w: check --stan-config: %w", err, conn.ErrBadConfig)
		}
		if cfg.StoreType != stores.TypeFile {
			return nil, fmt.Errorf("STAN configuration %s says store type %s: --stan-dir reads file stores only: %w", o.Config, cfg.StoreType, conn.ErrBadConfig)
		}
		so, limitsFrom, configCluster = cfg.Options, "STAN configuration "+o.Config, cfg.ClusterID
	}
	st, err := stanstore.Open(ctx, path, so)
	if err != nil {
		if errors.Is(err, stanstore.ErrLocked) || errors.Is(err, stanstore.ErrNotStore) || errors.Is(err, stanstore.ErrBroken) {
			err = fmt.Errorf("%w: %w", err, conn.ErrBadConfig)
		}
		return nil, err
	}
	switch {
	case configCluster != "" && configCluster != st.ClusterID():
		err = fmt.Errorf("STAN configuration %s is for cluster %q, the directory %s belongs to %q: pass the configuration of the server that wrote the directory: %w",
			o.Config, configCluster, st.Dir(), st.ClusterID(), conn.ErrBadConfig)
	case o.ClusterID != "" && o.ClusterID != st.ClusterID():
		err = fmt.Errorf("the STAN directory %s belongs to cluster %q, not %q: pass --cluster %s (or check --stan-dir): %w",
			st.Dir(), st.ClusterID(), o.ClusterID, st.ClusterID(), conn.ErrWrongCluster)
	}
	if err != nil {
		st.Close()
		return nil, err
	}
	return &Source{st: st, limitsFrom: limitsFrom}, nil
}

// Info describes the directory.
func (s *Source) Info(context.Context) (source.Info, error) {
	return source.Info{
		ClusterID:     s.st.ClusterID(),
		Name:          "STAN directory " + s.st.Dir(),
		URL:           "file://" + s.st.Dir(),
		ServerVersion: "stopped; read from its file store directory",
		LimitsAssumed: s.limitsFrom == "",
		LimitsFrom:    s.limitsFrom,
	}, nil
}

// Channels lists every channel, unreadable ones with Err set.
func (s *Source) Channels(context.Context) ([]source.Channel, error) {
	var out []source.Channel
	for _, c := range s.st.Channels() {
		out = append(out, FromStore(c))
	}
	return out, nil
}

// Channel returns one channel.
func (s *Source) Channel(_ context.Context, name string) (source.Channel, error) {
	c, ok := s.st.Channel(name)
	if !ok {
		return source.Channel{}, fmt.Errorf("channel %q is not in the STAN directory %s: %w", name, s.st.Dir(), source.ErrNoChannel)
	}
	return FromStore(c), nil
}

// FromStore presents a stored channel as a server started on the
// directory would, except that nothing is online: no server runs.
func FromStore(c stanstore.Channel) source.Channel {
	if c.Err != nil {
		return source.Channel{Name: c.Name, Err: fmt.Errorf("%w: %w", c.Err, source.ErrUnreadable), DurablesKnown: true}
	}
	out := source.Channel{
		Name: c.Name, FirstSeq: c.FirstSeq, LastSeq: c.LastSeq, Msgs: c.Msgs, Bytes: c.Bytes, Counted: true,
		MaxMsgSize: c.MaxMsgSize, LimitsFrom: c.LimitsFrom, Notes: c.Notes, DurablesKnown: true,
		Limits: source.Limits{MaxMsgs: c.Limits.MaxMsgs, MaxBytes: c.Limits.MaxBytes, MaxAge: c.Limits.MaxAge,
			MaxSubscriptions: c.Limits.MaxSubscriptions},
	}
	// Members of a durable queue group come before its shadow, as in
	// monitoring, so the group is named after a member's client id.
	stored := append([]stanstore.Subscription(nil), c.Subscriptions...)
	sort.SliceStable(stored, func(i, j int) bool { return !stored[i].Shadow && stored[j].Shadow })
	subs := make([]source.Sub, 0, len(stored))
	for _, s := range stored {
		subs = append(subs, source.Sub{
			ClientID: s.ClientID, Durable: s.Durable, QueueGroup: s.QueueGroup, IsDurable: s.IsDurable,
			MaxInflight: s.MaxInflight, AckWait: s.AckWait, LastSent: s.LastSent,
			PendingCount: len(s.Pending), Pending: s.Pending, HasPending: true,
		})
	}
	out.Durables, out.NonDurables = source.Merge(subs)
	return out
}

// Check has nothing to prove: Open read the directory.
func (s *Source) Check(context.Context) error { return nil }

// Connect has nothing to open: the directory was opened by Open.
func (s *Source) Connect(context.Context) error { return nil }

// Position is the durable's stored state: nothing to probe. Every durable
// Channel returns carries it; one from elsewhere (the plan) is not in
// the directory.
func (s *Source) Position(_ context.Context, channel string, d source.Durable, _ source.ProbeOptions) (source.Position, error) {
	if d.Stored == nil {
		return source.Position{}, fmt.Errorf("%s is not in the STAN directory %s: %w", d.Describe(channel), s.st.Dir(), source.ErrNoChannel)
	}
	return *d.Stored, nil
}

// Get reads the message at seq, nil when the channel has none there.
func (s *Source) Get(_ context.Context, channel string, seq uint64) (*source.Msg, error) {
	it, err := s.st.Messages(channel, seq)
	if err != nil {
		return nil, unreadable(err)
	}
	defer it.Close()
	m, err := it.Next()
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	if err != nil {
		return nil, unreadable(err)
	}
	if m.Sequence != seq {
		return nil, nil
	}
	msg := source.NewMsg(m.Sequence, m.Subject, m.Data, m.Timestamp, false, nil, nil)
	return &msg, nil
}

func unreadable(err error) error {
	if errors.Is(err, stanstore.ErrBroken) {
		return fmt.Errorf("%w: %w", err, source.ErrUnreadable)
	}
	return err
}

// Read delivers the channel's stored messages from `from` on, from a
// goroutine of its own, and ends with ErrEnd after the last: every jump in
// sequence is a real gap in the store.
func (s *Source) Read(_ context.Context, channel string, from uint64, o source.ReadOptions) (source.Reader, error) {
	it, err := s.st.Messages(channel, from)
	if err != nil {
		return nil, unreadable(err)
	}
	r := &reader{source.NewEnding()}
	go func() {
		var err error
		defer func() { r.End(err) }()
		defer it.Close()
		for {
			select {
			case <-r.Stopping():
				return
			default:
			}
			m, nerr := it.Next()
			if errors.Is(nerr, io.EOF) {
				err = fmt.Errorf("channel %q: %w", channel, source.ErrEnd)
				return
			}
			if nerr != nil {
				err = unreadable(nerr)
				return
			}
			if o.To != 0 && m.Sequence > o.To {
				err = fmt.Errorf("channel %q: %w", channel, source.ErrEnd)
				return
			}
			if !o.Deliver(source.NewMsg(m.Sequence, m.Subject, m.Data, m.Timestamp, false, nil, nil)) {
				return
			}
		}
	}()
	return r, nil
}

// reader delivers from a goroutine of its own, which ends (Done) when
// the read does, stopped or not.
type reader struct{ *source.Ending }

func (r *reader) Close() error {
	r.Stop(nil)
	<-r.Done()
	return nil
}

// Close releases the directory.
func (s *Source) Close() error { return s.st.Close() }
