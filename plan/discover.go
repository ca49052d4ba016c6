package plan

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/monitor"
)

// Config says where the servers are.
type Config struct {
	ClusterID  string
	STAN       conn.Side
	Monitor    *monitor.Client
	MonitorURL string
	Target     conn.Side
	// PageSize for channelsz paging (0 = the server's default 1024).
	PageSize int
}

// Discover reads the STAN monitoring endpoint and the target's existing
// streams. It changes nothing on either server.
func Discover(ctx context.Context, cfg Config) (*Discovery, error) {
	srv, err := cfg.Monitor.Serverz(ctx)
	if err != nil {
		return nil, sourceErr(err)
	}
	if srv.ClusterID != cfg.ClusterID {
		return nil, fmt.Errorf("STAN monitoring %s reports cluster id %q, not %q: pass --cluster %s (or fix --stan-monitor): %w",
			conn.Redact(cfg.MonitorURL), srv.ClusterID, cfg.ClusterID, srv.ClusterID, conn.ErrWrongCluster)
	}
	store, err := cfg.Monitor.Storez(ctx)
	if err != nil {
		return nil, sourceErr(err)
	}
	chans, err := cfg.Monitor.Channels(ctx, cfg.PageSize)
	if err != nil {
		return nil, sourceErr(err)
	}
	d := &Discovery{
		ClusterID:     srv.ClusterID,
		MonitorURL:    conn.Redact(cfg.MonitorURL),
		ServerVersion: srv.Version,
		Limits:        store.Limits,
		Channels:      chans,
	}
	if u, _, err := cfg.STAN.Resolved(); err == nil {
		d.SourceURL = conn.Redact(u)
	}
	if vz, err := cfg.Monitor.Varz(ctx); err == nil {
		d.MaxPayload = vz.MaxPayload
	}
	t, err := DiscoverTarget(ctx, cfg.Target, srv.ClusterID)
	if err != nil {
		return nil, err
	}
	d.Target = *t
	return d, nil
}

func sourceErr(err error) error {
	if errors.Is(err, monitor.ErrUnreachable) {
		return fmt.Errorf("%w: is STAN running with monitoring enabled (-m), and is --stan-monitor right? %w", err, conn.ErrUnreachable)
	}
	if errors.Is(err, monitor.ErrNotStreaming) {
		return fmt.Errorf("%w: --stan-monitor must point at the STAN server's monitoring port: %w", err, conn.ErrBadConfig)
	}
	return err
}

// DiscoverTarget reads the target's version, limits and streams.
func DiscoverTarget(ctx context.Context, side conn.Side, clusterID string) (*TargetState, error) {
	nc, js, err := conn.JetStream(ctx, side, "stanmigrate-plan")
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	t := &TargetState{
		URL:        conn.Redact(nc.ConnectedUrlRedacted()),
		Version:    nc.ConnectedServerVersion(),
		MaxPayload: nc.MaxPayload(),
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ai, err := js.AccountInfo(cctx)
	if err != nil {
		return nil, fmt.Errorf("JetStream account info: %w", err)
	}
	t.MaxStreams = ai.Limits.MaxStreams
	t.MaxConsumers = ai.Limits.MaxConsumers
	t.MaxStorage = ai.Limits.MaxStore
	t.UsedStorage = ai.Store
	lister := js.ListStreams(cctx)
	for si := range lister.Info() {
		es := ExistingStream{
			Name: si.Config.Name, Subjects: si.Config.Subjects, Storage: si.Config.Storage.String(),
			Replicas: si.Config.Replicas, Msgs: si.State.Msgs, FirstSeq: si.State.FirstSeq, LastSeq: si.State.LastSeq,
		}
		if si.State.Msgs > 0 {
			if s, err := js.Stream(cctx, si.Config.Name); err == nil {
				if m, err := s.GetMsg(cctx, si.State.FirstSeq); err == nil {
					es.FirstMsgID = m.Header.Get(jetstream.MsgIDHeader)
				}
			}
		}
		t.Streams = append(t.Streams, es)
	}
	if err := lister.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return nil, fmt.Errorf("list streams on the target: %w", err)
	}
	return t, nil
}
