package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/digest"
	"github.com/stanmigrate/stanmigrate/internal/monitor"
	"github.com/stanmigrate/stanmigrate/plan"
)

// Short dedup window while replaying: the expected-sequence check makes
// re-runs exactly-once, the Msg-Id only has to cover retries within a run,
// and every remembered id costs server memory and time: at 100k msgs/s a
// 10 s window keeps a million ids in a map the server's GC must scan.
// 100 ms is the least the server accepts. Measured against 1 s in one
// benchmark run (median of 5 interleaved rounds, a column added for the
// purpose): 83% vs 79% of the pipelined ceiling at 128 B, 81% vs 79% at
// 1 KiB. An earlier single pair had 10 s at 56% against 1 s at 113%.
const replayDuplicateWindow = 100 * time.Millisecond

// Header names stamped on migrated messages.
const (
	HdrChannel   = "Nats-Streaming-Channel"
	HdrSequence  = "Nats-Streaming-Sequence"
	HdrTimestamp = "Nats-Streaming-Timestamp"
	hdrGap       = "Stanmigrate-Gap"
	metaPrefix   = "stanmigrate."
)

type runner struct {
	p     *plan.Plan
	o     Options
	state State
	nc    *nats.Conn

	// windowBytes is each channel's share of Options.WindowBytes.
	windowBytes int

	stanMu   sync.Mutex
	stan     *conn.STAN
	stanLost bool
}

// permanent marks errors that retrying cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

func isPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p) || errors.Is(err, conn.ErrAuth) || errors.Is(err, conn.ErrPermission) ||
		errors.Is(err, conn.ErrTLS) || errors.Is(err, conn.ErrWrongCluster) || errors.Is(err, conn.ErrNoJetStream) ||
		errors.Is(err, conn.ErrBadConfig)
}

func (r *runner) js(opts ...jetstream.JetStreamOpt) (jetstream.JetStream, error) {
	return jetstream.New(r.nc, opts...)
}

func (r *runner) checkTarget(ctx context.Context) error {
	js, err := r.js()
	if err != nil {
		return err
	}
	return conn.CheckJetStream(ctx, r.o.Target, r.nc, js)
}

// stanConn returns the shared STAN session, reconnecting after a loss.
func (r *runner) stanConn(ctx context.Context) (*conn.STAN, error) {
	r.stanMu.Lock()
	defer r.stanMu.Unlock()
	if r.stan != nil && !r.stanLost && r.stan.NC.IsConnected() {
		return r.stan, nil
	}
	if r.stan != nil {
		r.stan.Close()
		r.stan = nil
	}
	var sc *conn.STAN
	var err error
	sc, err = conn.ConnectSTAN(ctx, r.o.Source, r.o.ClusterID, r.o.ClientID, func(_ stan.Conn, _ error) {
		r.stanMu.Lock()
		r.stanLost = true
		r.stanMu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	r.stan, r.stanLost = sc, false
	return sc, nil
}

func (r *runner) dropSTAN(bad *conn.STAN) {
	r.stanMu.Lock()
	defer r.stanMu.Unlock()
	if r.stan == bad && r.stan != nil {
		r.stan.Close()
		r.stan = nil
	}
}

func (r *runner) closeSTAN() {
	r.stanMu.Lock()
	defer r.stanMu.Unlock()
	if r.stan != nil {
		r.stan.Close()
		r.stan = nil
	}
}

// checkChannels refuses a plan naming channels STAN no longer has.
func (r *runner) checkChannels(ctx context.Context, chans []*plan.Channel) error {
	if r.o.Offline != nil {
		for _, c := range chans {
			if _, err := r.offlineChannel(c); err != nil {
				return err
			}
		}
		return nil
	}
	if r.o.Monitor == nil {
		return nil
	}
	all, err := r.o.Monitor.Channels(ctx, 0)
	if err != nil {
		return fmt.Errorf("list STAN channels: %w", err)
	}
	have := make(map[string]bool, len(all))
	for _, c := range all {
		have[c.Name] = true
	}
	for _, c := range chans {
		if !have[c.Name] {
			return fmt.Errorf("channel %q is in the plan but not on STAN cluster %q: re-run `stanmigrate plan`, or set skip: true for it: %w",
				c.Name, r.p.Source.ClusterID, ErrChannelGone)
		}
	}
	return nil
}

// lastSeqNow is the channel's last sequence at this moment.
func (r *runner) lastSeqNow(ctx context.Context, c *plan.Channel) (uint64, error) {
	if r.o.Offline != nil {
		ch, err := r.offlineChannel(c)
		return ch.LastSeq, err
	}
	if r.o.Monitor != nil {
		cz, err := r.o.Monitor.Channel(ctx, c.Name)
		if errors.Is(err, monitor.ErrNotFound) {
			return 0, permanent{fmt.Errorf("channel %q: %w", c.Name, ErrChannelGone)}
		}
		if err != nil {
			return 0, err
		}
		return cz.LastSeq, nil
	}
	sc, err := r.stanConn(ctx)
	if err != nil {
		return 0, err
	}
	got := make(chan uint64, 1)
	sub, err := sc.SC.Subscribe(c.Name, func(m *stan.Msg) {
		select {
		case got <- m.Sequence:
		default:
		}
	}, stan.StartWithLastReceived())
	if err != nil {
		return 0, fmt.Errorf("channel %q: learn last sequence: %w", c.Name, err)
	}
	defer sub.Unsubscribe()
	select {
	case s := <-got:
		return s, nil
	case <-time.After(2 * time.Second):
		return c.LastSeq, nil // empty channel: nothing to learn beyond the plan
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// channel migrates one channel and its durables. changed reports whether
// anything was written.
func (r *runner) channel(ctx context.Context, c *plan.Channel) (res *ChannelResult, changed bool, err error) {
	res = &ChannelResult{Channel: c.Name, Stream: c.Stream, FirstSeq: c.FirstSeq, Status: "running"}
	cp, err := r.state.Load(c.Stream)
	if err != nil {
		return res, false, err
	}
	if cp == nil || cp.Channel != c.Name {
		cp = &Checkpoint{Channel: c.Name, Stream: c.Stream, FirstSeq: c.FirstSeq}
	}
	js, err := r.js()
	if err != nil {
		return res, false, err
	}
	stream, created, err := r.ensureStream(ctx, js, c)
	if err != nil {
		return res, false, err
	}
	changed = created
	target, err := r.lastSeqNow(ctx, c)
	if err != nil {
		return res, changed, err
	}
	if target < c.FirstSeq-1 {
		target = c.FirstSeq - 1
	}
	cp.TargetSeq = target
	ev := Event{Channel: c.Name, Stream: c.Stream}

	var d *digest.Channel
	fin := newFinisher(r.o)
	for attempt := 0; ; attempt++ {
		info, err := stream.Info(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return res, changed, ctx.Err()
			}
			if err := r.backoff(ctx, attempt, ev, fmt.Errorf("stream %q info: %w", c.Stream, err)); err != nil {
				return res, changed, err
			}
			continue
		}
		if d, err = r.reconcile(ctx, stream, c, cp, info, d); err != nil {
			if isPermanent(err) || ctx.Err() != nil {
				r.saveCheckpoint(cp, d)
				return res, changed, err
			}
			if err := r.backoff(ctx, attempt, ev, err); err != nil {
				return res, changed, err
			}
			continue
		}
		last := max(info.State.LastSeq, c.FirstSeq-1)
		if r.o.Follow && !fin.finished() {
			target = ^uint64(0)
		} else if r.o.Follow && target == ^uint64(0) {
			if target, err = r.lastSeqNow(ctx, c); err != nil {
				return res, changed, err
			}
			cp.TargetSeq = target
		}
		if last >= target {
			break
		}
		if attempt == 0 {
			kind := "started"
			if last >= c.FirstSeq {
				kind = "resumed"
			}
			ev.Kind, ev.Message = kind, fmt.Sprintf("sequences %d..%d", last+1, target)
			if target == ^uint64(0) {
				ev.Message = fmt.Sprintf("from sequence %d, following", last+1)
			}
			r.o.Reporter.Event(ev)
		}
		a := r.newAttempt(c, cp, d, last+1, target, fin, info.State.Msgs == 0)
		err = a.run(ctx)
		res.Copied += a.copied
		res.Bytes += a.bytes
		if a.copied > 0 {
			changed = true
		}
		if a.finishedFollow {
			target, err = r.lastSeqNow(ctx, c)
			if err != nil {
				return res, changed, err
			}
			cp.TargetSeq = target
			continue
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			r.saveCheckpoint(cp, d)
			return res, changed, ctx.Err()
		}
		if isPermanent(err) {
			r.saveCheckpoint(cp, d)
			return res, changed, err
		}
		if errors.Is(err, errSTANStalled) {
			if sc := a.sc; sc != nil {
				r.dropSTAN(sc)
			}
		}
		if err := r.backoff(ctx, attempt, ev, err); err != nil {
			r.saveCheckpoint(cp, d)
			return res, changed, err
		}
	}
	res.FirstSeq = max(c.FirstSeq, cp.FirstSeq)
	res.LastSeq = max(target, res.FirstSeq-1)
	if d == nil {
		d = digest.New()
	}
	res.Sum = d.Sum()
	cp.Sum = res.Sum
	cp.LastSeq = max(cp.LastSeq, res.LastSeq)
	cp.Copied += res.Copied
	cp.Bytes += res.Bytes
	fch, notes, err := r.finalizeStream(ctx, js, stream, c)
	if err != nil {
		r.saveCheckpoint(cp, d)
		return res, changed, err
	}
	changed = changed || fch
	res.Notes = append(res.Notes, notes...)
	cch, err := r.consumers(ctx, js, c, cp, res)
	changed = changed || cch
	if err != nil {
		r.saveCheckpoint(cp, d)
		return res, changed, err
	}
	cp.Done = true
	r.saveCheckpoint(cp, d)
	res.Status = "complete"
	if !changed {
		res.Status = "already complete"
	}
	ev.Kind, ev.Message = "complete", fmt.Sprintf("%d message(s) copied, stream at %d..%d", res.Copied, c.FirstSeq, res.LastSeq)
	r.o.Reporter.Event(ev)
	return res, changed, nil
}

func (r *runner) saveCheckpoint(cp *Checkpoint, d *digest.Channel) {
	if d != nil {
		_ = cp.SetDigest(d)
	}
	_ = r.state.Save(cp)
}

// backoff waits before the next attempt: capped exponential, and gives up
// after about two minutes of consecutive failures.
func (r *runner) backoff(ctx context.Context, attempt int, ev Event, cause error) error {
	// A denied publish or subscribe only shows as a timeout; the server
	// told the connection why, and no retry will change it.
	if perr := conn.PermissionErr(r.o.Target, r.nc); perr != nil {
		return perr
	}
	r.stanMu.Lock()
	sc := r.stan
	r.stanMu.Unlock()
	if sc != nil {
		if perr := conn.PermissionErr(r.o.Source, sc.NC); perr != nil {
			return perr
		}
	}
	if attempt >= 40 {
		return fmt.Errorf("giving up after %d attempts: %w", attempt, cause)
	}
	wait := time.Duration(100<<min(attempt, 5)) * time.Millisecond // 100ms .. 3.2s
	ev.Kind, ev.Message = "retrying", fmt.Sprintf("%v (retry in %v)", cause, wait)
	r.o.Reporter.Event(ev)
	select {
	case <-time.After(wait):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ensureStream creates the stream positioned at the channel's first
// sequence, or checks that an existing one is ours.
func (r *runner) ensureStream(ctx context.Context, js jetstream.JetStream, c *plan.Channel) (jetstream.Stream, bool, error) {
	want := r.streamConfig(c, true)
	created := false
	var s jetstream.Stream
	var err error
	for attempt := 0; ; attempt++ {
		s, err = js.Stream(ctx, c.Stream)
		if err == nil {
			break
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			s, err = js.CreateStream(ctx, want)
			if err == nil {
				created = true
				break
			}
			if strings.Contains(err.Error(), "subjects overlap") {
				return nil, false, permanent{fmt.Errorf("stream %q (channel %q): subject overlaps a stream already on the target: %v: %w", c.Stream, c.Name, err, ErrConflict)}
			}
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue
			}
		}
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		if isLimitErr(err) {
			return nil, false, permanent{fmt.Errorf("create stream %q for channel %q: %v: the target account's limits are reached: raise them or free space, then re-run migrate: %w", c.Stream, c.Name, err, ErrStorage)}
		}
		if isPermanent(err) || attempt > 20 {
			return nil, false, fmt.Errorf("create stream %q for channel %q: %w", c.Stream, c.Name, err)
		}
		if err := r.backoff(ctx, attempt, Event{Channel: c.Name, Stream: c.Stream}, err); err != nil {
			return nil, false, err
		}
	}
	got := s.CachedInfo().Config
	if len(got.Subjects) != 1 || got.Subjects[0] != c.Name {
		return nil, false, permanent{fmt.Errorf("stream %q exists on the target with subjects %v, not [%s]: remove it or rename the stream in the plan: %w",
			c.Stream, got.Subjects, c.Name, ErrConflict)}
	}
	if got.Storage != want.Storage || got.Replicas != want.Replicas {
		return nil, false, permanent{fmt.Errorf("stream %q exists with storage %v and %d replica(s), the plan says %v and %d: align the plan or remove the stream: %w",
			c.Stream, got.Storage, got.Replicas, want.Storage, want.Replicas, ErrConflict)}
	}
	return s, created, nil
}

// streamConfig is the stream as planned; while replaying, limits stay off
// (JetStream counts bytes with headers, so STAN's byte limit could drop
// messages mid-copy) and the dedup window is short.
func (r *runner) streamConfig(c *plan.Channel, replaying bool) jetstream.StreamConfig {
	cfg := jetstream.StreamConfig{
		Name:        c.Stream,
		Description: fmt.Sprintf("NATS Streaming channel %q of cluster %q, migrated by stanmigrate", c.Name, r.p.Source.ClusterID),
		Subjects:    []string{c.Name},
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Duplicates:  c.DuplicateWindow.D(),
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Metadata: map[string]string{
			metaPrefix + "channel": c.Name,
			metaPrefix + "cluster": r.p.Source.ClusterID,
		},
	}
	if c.Storage == "memory" {
		cfg.Storage = jetstream.MemoryStorage
	}
	if cfg.Duplicates == 0 {
		cfg.Duplicates = plan.DefaultDuplicateWindow
	}
	// JetStream takes max_consumers only at creation.
	if c.Limits.MaxConsumers > 0 {
		cfg.MaxConsumers = c.Limits.MaxConsumers
	}
	if replaying {
		cfg.Duplicates = min(cfg.Duplicates, replayDuplicateWindow)
		return cfg
	}
	if c.Limits.MaxMsgs > 0 {
		cfg.MaxMsgs = c.Limits.MaxMsgs
	}
	if c.Limits.MaxBytes > 0 {
		cfg.MaxBytes = c.Limits.MaxBytes
	}
	cfg.MaxAge = c.Limits.MaxAge.D()
	if cfg.MaxAge > 0 && cfg.Duplicates > cfg.MaxAge {
		cfg.Duplicates = cfg.MaxAge
	}
	return cfg
}

// finalizeStream applies the planned limits and dedup window once the
// channel is copied.
func (r *runner) finalizeStream(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, c *plan.Channel) (bool, []string, error) {
	info, err := s.Info(ctx)
	if err != nil {
		return false, nil, fmt.Errorf("stream %q: %w", c.Stream, err)
	}
	want := r.streamConfig(c, false)
	var notes []string
	// JetStream counts headers and subjects in max_bytes; never let the
	// limit we carry over drop messages STAN still holds.
	if want.MaxBytes > 0 && uint64(want.MaxBytes) < info.State.Bytes {
		notes = append(notes, fmt.Sprintf("max_bytes raised from %d to %d: JetStream counts headers and subjects, and the copied messages take %d bytes", want.MaxBytes, info.State.Bytes, info.State.Bytes))
		want.MaxBytes = int64(info.State.Bytes)
	}
	cur := info.Config
	if cur.MaxMsgs == want.MaxMsgs && cur.MaxBytes == want.MaxBytes && cur.MaxAge == want.MaxAge &&
		cur.Duplicates == want.Duplicates {
		return false, notes, nil
	}
	cur.MaxMsgs, cur.MaxBytes, cur.MaxAge, cur.Duplicates = want.MaxMsgs, want.MaxBytes, want.MaxAge, want.Duplicates
	if _, err := js.UpdateStream(ctx, cur); err != nil {
		return false, notes, fmt.Errorf("stream %q: apply planned limits: %w", c.Stream, err)
	}
	return true, notes, nil
}

func isLimitErr(err error) bool {
	if err == nil {
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeMaximumConsumersLimit, 10027 /* maximum number of streams */, 10047 /* insufficient storage */ :
			return true
		}
	}
	m := strings.ToLower(err.Error())
	if strings.Contains(m, "maximum number of streams") || strings.Contains(m, "maximum consumers") {
		return true
	}
	return strings.Contains(m, "insufficient resources") || strings.Contains(m, "maximum bytes") ||
		strings.Contains(m, "maximum messages") || strings.Contains(m, "storage resources exceeded") ||
		strings.Contains(m, "no space")
}
