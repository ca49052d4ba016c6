// Package migrate executes a plan: it creates streams positioned at each
// channel's first sequence, replays every message with its own sequence,
// checkpoints as it goes, and creates consumers at the durables' positions.
// It reads from any source.Source and never asks which kind it has; it
// never prints and never exits: progress leaves through a Reporter, the
// outcome as a Summary.
package migrate

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stanmigrate/stanmigrate/internal/apilevel"
	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/plan"
)

// Options configure a run. Target connection details never end up in the
// state store.
type Options struct {
	Target conn.Side
	// State is where checkpoints and leases live (nil: kept in memory
	// for this run only). Several processes sharing one store share the
	// plan's channels through leases.
	State state.Store
	// LeaseTTL is how long a claim on a channel lasts unrenewed
	// (0: state.DefaultLeaseTTL).
	LeaseTTL time.Duration
	// Parallel is how many channels replay at once (0 = DefaultParallel).
	Parallel int
	// Window bounds publishes awaiting a JetStream ack per channel, and so
	// the unacknowledged STAN messages held in memory.
	Window int
	// WindowBytes bounds the payload bytes in flight across all channels
	// replaying at once (each gets an equal share), for large messages.
	WindowBytes int
	// Follow keeps tailing channels until Finish is closed (or IdleFinish
	// passes without a new message), then catches up and finishes.
	Follow     bool
	Finish     <-chan struct{}
	IdleFinish time.Duration
	// AtLeastOnce starts consumers at the lowest unacknowledged sequence
	// without reproducing STAN's acknowledged set past it.
	AtLeastOnce bool
	// Publish is PublishAuto (fast-ingest batches where the target offers
	// them, each message asynchronously otherwise) or PublishAsync.
	Publish string
	// Rate and RateBytes cap the copy across all channels, in messages
	// and payload bytes per second (0 = no cap), for copying while STAN
	// still serves production.
	Rate      float64
	RateBytes int64
	// SourceEvery is how often a following run reads the channels' last
	// sequences again for an Observer (0 = every 10 s).
	SourceEvery time.Duration
	// Reporter receives progress; one that also implements Observer is
	// told each channel's state too.
	Reporter Reporter
}

// Publish paths.
const (
	PublishAuto  = "auto"
	PublishAsync = "async"
)

// Reporter receives progress. Implementations must be safe for use from
// several goroutines; Progress is called often and must be cheap.
type Reporter interface {
	Begin(totalMsgs, totalBytes uint64)
	Progress(msgs, bytes uint64)
	Event(e Event)
}

// Event is a notable step in a channel's migration.
type Event struct {
	Channel string
	Stream  string
	Kind    EventKind
	Message string
}

type nopReporter struct{}

func (nopReporter) Begin(uint64, uint64)    {}
func (nopReporter) Progress(uint64, uint64) {}
func (nopReporter) Event(Event)             {}

// runner is one run's shared state.
type runner struct {
	p     *plan.Plan
	o     Options
	src   source.Source
	cps   *state.Checkpoints
	lease *state.Leaser
	nc    *nats.Conn
	obs   Observer
	// thr caps the copy rate (nil: no cap).
	thr *throttle
	// leasesHeld counts the channel leases this process holds now.
	leasesHeld atomic.Int64

	// windowBytes is each channel's share of Options.WindowBytes.
	windowBytes int
	// level is the target's JetStream API level, which says whether it
	// takes fast-ingest batches.
	level apilevel.Level
}

// batchable reports whether streams migrate creates can take fast-ingest
// batches.
func (r *runner) batchable() bool {
	return r.o.Publish != PublishAsync && r.level.FastIngest()
}

// Run executes the plan, reading from src. On cancellation it drains
// in-flight publishes, saves checkpoints and returns the context's error
// with the partial summary.
func Run(ctx context.Context, src source.Source, p *plan.Plan, o Options) (*Summary, error) {
	start := time.Now()
	ctx, stop := withoutDeadline(ctx)
	defer stop()
	if b := p.Blockers(); len(b) > 0 {
		return nil, fmt.Errorf("%d blocker(s), first: %s: %s: resolve them (see `stanmigrate plan`) before migrating: %w",
			len(b), b[0].Object, b[0].Message, ErrBlocked)
	}
	if o.Reporter == nil {
		o.Reporter = nopReporter{}
	}
	if o.Parallel <= 0 {
		// Each channel is one sequential pipeline (ordered by sequence);
		// several at once keep both servers busy. Memory is bounded by
		// WindowBytes across them, not per channel.
		o.Parallel = DefaultParallel
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.WindowBytes <= 0 {
		o.WindowBytes = DefaultWindowBytes
	}
	if o.Publish == "" {
		o.Publish = PublishAuto
	}
	if err := p.CheckSource(ctx, src); err != nil {
		return nil, err
	}
	if o.State == nil {
		o.State = state.NewMemory()
	}
	r := &runner{p: p, o: o, src: src, obs: observerOf(o.Reporter)}
	r.lease = state.NewLeaser(o.State, o.LeaseTTL)
	r.cps = state.NewCheckpoints(o.State, r.lease.Worker())
	nc, err := conn.ConnectNATS(ctx, o.Target, "stanmigrate", nats.MaxReconnects(-1),
		nats.ReconnectHandler(func(*nats.Conn) { r.obs.Reconnected(SideTarget) }))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	r.nc = nc
	if err := r.checkTarget(ctx); err != nil {
		return nil, err
	}
	// Everything that can be checked without writing comes first: a
	// refused run leaves both servers as they were.
	chans := p.Active()
	if err := r.checkExpiry(chans); err != nil {
		return nil, err
	}
	if err := r.checkChannels(ctx, chans); err != nil {
		return nil, err
	}
	if err := src.Connect(ctx); err != nil {
		return nil, err
	}
	if err := r.savePlan(ctx); err != nil {
		return nil, err
	}
	r.windowBytes = max(o.WindowBytes/max(min(o.Parallel, len(chans)), 1), 1<<20)
	var totalMsgs, totalBytes uint64
	for _, c := range chans {
		totalMsgs += c.Msgs
		totalBytes += c.Bytes
	}
	o.Reporter.Begin(totalMsgs, totalBytes)
	r.thr = newThrottle(o.Rate, o.RateBytes, nc.MaxPayload())
	watching := make(map[string]bool, len(chans))
	for _, c := range chans {
		watching[c.Name] = true
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go r.watchSource(wctx, watching)

	sum := &Summary{Worker: r.lease.Worker(), Channels: make([]*ChannelResult, len(chans))}
	changed, firstErr := r.runFleet(ctx, chans, sum)
	for _, c := range sum.Channels {
		sum.Copied += c.Copied
		sum.Bytes += c.Bytes
		sum.AlreadyStored += c.AlreadyStored
	}
	sum.Elapsed = time.Since(start)
	sum.NothingToDo = firstErr == nil && !changed && sum.DoneElsewhere == 0
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return sum, firstErr
}

func (r *runner) checkTarget(ctx context.Context) error {
	js, err := r.js()
	if err != nil {
		return err
	}
	if err := conn.CheckJetStream(ctx, r.o.Target, r.nc, js); err != nil {
		return err
	}
	// The API level decides the publish path and expiry for the whole
	// run: worth the client's full timeout, not apiTimeout.
	actx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if ai, err := js.AccountInfo(actx); err == nil {
		r.level = apilevel.Of(ai)
	}
	if r.o.Publish == PublishAuto && !r.batchable() {
		r.o.Reporter.Event(Event{Kind: EventPublishing, Message: fmt.Sprintf(
			"each message asynchronously: the target (nats-server %s, JetStream API level %d) has no fast-ingest batches, which need nats-server 2.14 or later",
			r.nc.ConnectedServerVersion(), r.level)})
	}
	return nil
}

// checkChannels refuses a plan naming channels the source no longer has
// or cannot read.
func (r *runner) checkChannels(ctx context.Context, chans []*plan.Channel) error {
	all, err := r.src.Channels(ctx)
	if err != nil {
		return fmt.Errorf("list STAN channels: %w", err)
	}
	have := make(map[string]source.Channel, len(all))
	for _, c := range all {
		have[c.Name] = c
	}
	for _, c := range chans {
		sc, ok := have[c.Name]
		if !ok {
			return fmt.Errorf("channel %q is in the plan but not on %s: re-run `stanmigrate plan`, or set skip: true for it: %w",
				c.Name, r.srcName(ctx), ErrChannelGone)
		}
		if sc.Err != nil {
			return fmt.Errorf("%w: %w", sc.Err, ErrUnreadable)
		}
	}
	return nil
}

func (r *runner) srcName(ctx context.Context) string {
	if in, err := r.src.Info(ctx); err == nil && in.Name != "" {
		return in.Name
	}
	return fmt.Sprintf("STAN cluster %q", r.p.Source.ClusterID)
}

// withoutDeadline keeps ctx's cancellation but drops its deadline. The
// JetStream client bounds each API request by its own timeout only when
// the context has no deadline; under a distant one a request to a cluster
// electing its meta leader would wait for that deadline instead of
// failing and being retried.
func withoutDeadline(ctx context.Context) (context.Context, func()) {
	nctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	return nctx, func() { stop(); cancel() }
}

// savePlan keeps the plan in the state store before anything is written
// to the target, so a re-run resumes with it whatever its command line.
func (r *runner) savePlan(ctx context.Context) error {
	text, err := plan.Marshal(r.p, "plan.yaml")
	if err == nil {
		err = state.SavePlan(ctx, r.o.State, text)
	}
	if err != nil {
		return fmt.Errorf("save the plan in %s: %w", r.o.State, err)
	}
	return nil
}
