package plan

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/naming"
	"github.com/stanmigrate/stanmigrate/internal/source"
)

// Discovery is everything plan learns from both sides; Build turns it
// into a Plan without further I/O, so mapping rules are testable on data.
type Discovery struct {
	Source   source.Info
	Channels []source.Channel
	Target   TargetState
}

// Discover reads the source's channels and the target's existing streams.
// It changes nothing on either side.
func Discover(ctx context.Context, src source.Source, target conn.Side) (*Discovery, error) {
	info, err := src.Info(ctx)
	if err != nil {
		return nil, err
	}
	chans, err := src.Channels(ctx)
	if err != nil {
		return nil, err
	}
	d := &Discovery{Source: info, Channels: chans}
	wanted := make([]string, len(chans))
	for i, c := range chans {
		wanted[i] = naming.StreamName(c.Name)
	}
	t, err := DiscoverTarget(ctx, target, wanted)
	if err != nil {
		return nil, err
	}
	d.Target = *t
	return d, nil
}

// Unreadable lists the channels the source cannot read that p does not
// skip, each error naming the channel and its file.
func (d *Discovery) Unreadable(p *Plan) []error {
	var out []error
	for _, c := range d.Channels {
		if pc := p.Channel(c.Name); c.Err != nil && pc != nil && !pc.Skip {
			out = append(out, c.Err)
		}
	}
	return out
}

// DiscoverTarget reads the target's version, account limits and streams.
// Streams whose name matches one of wanted (case folded; nil means every
// stream) are read in depth: their first message's Msg-Id, which tells an
// earlier run of ours apart from foreign data, and their consumers. Other
// streams only need their subjects, so the cost stays one listing however
// many foreign streams the target holds. It only reads.
func DiscoverTarget(ctx context.Context, side conn.Side, wanted []string) (*TargetState, error) {
	nc, js, err := conn.JetStream(ctx, side, "stanmigrate-plan")
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	api, err := side.JetStreamAPI()
	if err != nil {
		return nil, err
	}
	t := &TargetState{
		URL:        conn.Redact(nc.ConnectedUrlRedacted()),
		API:        api,
		Version:    nc.ConnectedServerVersion(),
		MaxPayload: nc.MaxPayload(),
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	ai, err := js.AccountInfo(cctx)
	if err != nil {
		return nil, fmt.Errorf("JetStream account info: %w", err)
	}
	t.APILevel = ai.API.Level
	t.MaxStreams = ai.Limits.MaxStreams
	t.MaxConsumers = ai.Limits.MaxConsumers
	t.MaxStorage = ai.Limits.MaxStore
	t.MaxAckPending = ai.Limits.MaxAckPending
	t.StoreMaxStreamBytes = ai.Limits.StoreMaxStreamBytes
	t.MaxBytesRequired = ai.Limits.MaxBytesRequired
	t.UsedStorage = ai.Store
	t.ReservedStorage = ai.ReservedStore
	deep := func(string) bool { return true }
	if wanted != nil {
		set := make(map[string]bool, len(wanted))
		for _, w := range wanted {
			set[strings.ToLower(w)] = true
		}
		deep = func(name string) bool { return set[strings.ToLower(name)] }
	}
	lister := js.ListStreams(cctx)
	for si := range lister.Info() {
		es := ExistingStream{
			Name: si.Config.Name, Subjects: si.Config.Subjects, Storage: strings.ToLower(si.Config.Storage.String()),
			Replicas: si.Config.Replicas, Retention: strings.ToLower(si.Config.Retention.String()), Sealed: si.Config.Sealed,
			Metadata: si.Config.Metadata,
			Msgs:     si.State.Msgs, FirstSeq: si.State.FirstSeq, LastSeq: si.State.LastSeq,
		}
		if pl := si.Config.Placement; pl != nil && (pl.Cluster != "" || len(pl.Tags) > 0) {
			es.Placement = &Placement{Cluster: pl.Cluster, Tags: pl.Tags}
		}
		if deep(es.Name) {
			if err := readStream(cctx, js, &es); err != nil {
				return nil, err
			}
		}
		t.Streams = append(t.Streams, es)
	}
	if err := lister.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return nil, fmt.Errorf("list streams on the target: %w", err)
	}
	return t, nil
}

// readStream fills in what Build needs to decide between reuse and
// conflict: the first message's Msg-Id and the consumers.
func readStream(ctx context.Context, js jetstream.JetStream, es *ExistingStream) error {
	s, err := js.Stream(ctx, es.Name)
	if err != nil {
		return fmt.Errorf("stream %q on the target: %w", es.Name, err)
	}
	if es.Msgs > 0 {
		if m, err := s.GetMsg(ctx, es.FirstSeq); err == nil {
			es.FirstHeaders = m.Header
		}
	}
	cl := s.ListConsumers(ctx)
	for ci := range cl.Info() {
		c := ci.Config
		ec := ExistingConsumer{
			Name: ci.Name, AckPolicy: c.AckPolicy.String(), AckWait: Duration(c.AckWait),
			MaxAckPending: c.MaxAckPending, DeliverSubject: c.DeliverSubject, DeliverGroup: c.DeliverGroup,
			FilterSubject: c.FilterSubject, DeliverPolicy: c.DeliverPolicy.String(), OptStartSeq: c.OptStartSeq,
			Metadata: c.Metadata,
		}
		if len(c.FilterSubjects) > 0 {
			ec.FilterSubject = strings.Join(c.FilterSubjects, " ")
		}
		es.Consumers = append(es.Consumers, ec)
	}
	if err := cl.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return fmt.Errorf("list consumers of stream %q on the target: %w", es.Name, err)
	}
	return nil
}

// CheckSource proves src is the STAN cluster the plan was made for, before
// migrate or verify reads a message of it.
func (p *Plan) CheckSource(ctx context.Context, src source.Source) error {
	info, err := src.Info(ctx)
	if err != nil {
		return err
	}
	if info.ClusterID != p.Source.ClusterID {
		return fmt.Errorf("the plan was made for STAN cluster %q but %s is cluster %q: use the matching plan, --cluster or source: %w",
			p.Source.ClusterID, info.Name, info.ClusterID, conn.ErrWrongCluster)
	}
	return nil
}
