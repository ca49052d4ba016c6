// Package migrate executes a plan: it creates streams positioned at each
// channel's first sequence, replays every message with its own sequence,
// checkpoints as it goes, and creates consumers at the durables' positions.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/monitor"
	"github.com/stanmigrate/stanmigrate/internal/stanstore"
	"github.com/stanmigrate/stanmigrate/plan"
)

// Sentinel errors the command branches on.
var (
	ErrBlocked     = errors.New("the plan has blockers")
	ErrChannelGone = errors.New("channel no longer exists on STAN")
	ErrConflict    = errors.New("conflict on the target")
	ErrTooLarge    = errors.New("message too large for the target")
	ErrStorage     = errors.New("target storage or stream limit reached")
	ErrOwnerOnline = errors.New("durable owner is online")
	ErrStreamLost  = errors.New("stream lost messages")
	// ErrUnreadable: the offline source cannot read a channel's files.
	ErrUnreadable = errors.New("channel unreadable in the STAN directory")
)

// Options configure a run. Source and Target connection details never end
// up in the state directory.
type Options struct {
	ClusterID string
	Source    conn.Side
	Target    conn.Side
	// Monitor is the STAN monitoring client; nil when STAN runs without
	// monitoring (positions are then probed and last sequences learned by
	// subscribing).
	Monitor  *monitor.Client
	StateDir string
	// Parallel is how many channels replay at once (0 = number of CPUs).
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
	Reporter    Reporter
	// ClientID for the migrator's own STAN session (default: unique).
	ClientID string
	// Offline reads a stopped STAN server's store directory instead of
	// a running server (Source and Monitor are then unused). The caller
	// opens and closes it. A channel it cannot read fails with
	// ErrUnreadable unless the plan skips it.
	Offline *stanstore.Store
}

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
	Kind    string // started, resumed, retrying, complete, consumer, following
	Message string
}

type nopReporter struct{}

func (nopReporter) Begin(uint64, uint64)    {}
func (nopReporter) Progress(uint64, uint64) {}
func (nopReporter) Event(Event)             {}

// Summary is the outcome of a run.
type Summary struct {
	Channels []*ChannelResult `json:"channels"`
	Copied   uint64           `json:"copied"`
	Bytes    uint64           `json:"bytes"`
	Elapsed  time.Duration    `json:"elapsed_ns"`
	// NothingToDo is true when every channel and consumer was already
	// migrated: the run changed nothing.
	NothingToDo bool `json:"nothing_to_do"`
}

// ChannelResult is one channel's outcome.
type ChannelResult struct {
	Channel   string           `json:"channel"`
	Stream    string           `json:"stream"`
	FirstSeq  uint64           `json:"first_seq"`
	LastSeq   uint64           `json:"last_seq"`
	Copied    uint64           `json:"copied"`
	Bytes     uint64           `json:"bytes"`
	Status    string           `json:"status"`
	Sum       string           `json:"sha256,omitempty"`
	Consumers []ConsumerResult `json:"consumers,omitempty"`
	Notes     []string         `json:"notes,omitempty"`
	Error     string           `json:"error,omitempty"`
}

// ConsumerResult is one durable's outcome.
type ConsumerResult struct {
	Durable  string   `json:"durable"`
	Consumer string   `json:"consumer"`
	StartSeq uint64   `json:"start_seq"`
	Position string   `json:"position"`
	Pending  []uint64 `json:"pending,omitempty"`
	// Acked is how many messages STAN had acknowledged past the start
	// that migrate acknowledged on the consumer (exact state).
	Acked uint64 `json:"acked,omitempty"`
	// SeenAgain is how many messages STAN had acknowledged the
	// application will receive again (AtLeastOnce).
	SeenAgain uint64 `json:"seen_again,omitempty"`
	Status    string `json:"status"` // created, existing
}

// Run executes the plan. On cancellation it drains in-flight publishes,
// saves checkpoints and returns the context's error with the partial
// summary.
func Run(ctx context.Context, p *plan.Plan, o Options) (*Summary, error) {
	start := time.Now()
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
		o.Parallel = max(runtime.NumCPU(), 8)
	}
	if o.Window <= 0 {
		o.Window = 8192
	}
	if o.WindowBytes <= 0 {
		o.WindowBytes = 32 << 20
	}
	if o.ClientID == "" {
		host, _ := os.Hostname()
		o.ClientID = "stanmigrate-" + sanitizeClientID(host) + "-" + nuid.Next()[:8]
	}
	if o.ClusterID == "" {
		o.ClusterID = p.Source.ClusterID
	}
	if o.ClusterID != p.Source.ClusterID {
		return nil, fmt.Errorf("the plan was made for STAN cluster %q but --cluster is %q: use the matching plan or cluster id: %w",
			p.Source.ClusterID, o.ClusterID, conn.ErrWrongCluster)
	}
	r := &runner{p: p, o: o, state: State{Dir: o.StateDir}}
	nc, err := conn.ConnectNATS(ctx, o.Target, "stanmigrate", nats.MaxReconnects(-1))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	r.nc = nc
	if err := r.checkTarget(ctx); err != nil {
		return nil, err
	}
	if o.Offline != nil {
		if o.Follow {
			return nil, fmt.Errorf("--follow needs a running STAN server: a store directory does not grow: %w", conn.ErrBadConfig)
		}
		if o.Offline.ClusterID() != p.Source.ClusterID {
			return nil, fmt.Errorf("the STAN directory %s belongs to cluster %q, the plan to %q: use the matching plan or directory: %w",
				o.Offline.Dir(), o.Offline.ClusterID(), p.Source.ClusterID, conn.ErrWrongCluster)
		}
	} else if _, err := r.stanConn(ctx); err != nil {
		return nil, err
	}
	defer r.closeSTAN()
	chans := p.Active()
	if err := r.checkChannels(ctx, chans); err != nil {
		return nil, err
	}
	r.windowBytes = max(o.WindowBytes/max(min(o.Parallel, len(chans)), 1), 1<<20)
	var totalMsgs, totalBytes uint64
	for _, c := range chans {
		totalMsgs += c.Msgs
		totalBytes += c.Bytes
	}
	o.Reporter.Begin(totalMsgs, totalBytes)

	sum := &Summary{Channels: make([]*ChannelResult, len(chans))}
	sem := make(chan struct{}, o.Parallel)
	var wg sync.WaitGroup
	var firstErr error
	var errMu sync.Mutex
	var changed atomic.Bool
	for i, c := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				sum.Channels[i] = &ChannelResult{Channel: c.Name, Stream: c.Stream, Status: "not started"}
				return
			}
			defer func() { <-sem }()
			res, ch, err := r.channel(ctx, c)
			if ch {
				changed.Store(true)
			}
			sum.Channels[i] = res
			if err != nil {
				res.Status = "failed"
				if ctx.Err() != nil {
					res.Status = "interrupted"
				}
				res.Error = err.Error()
				errMu.Lock()
				if firstErr == nil || (errors.Is(firstErr, context.Canceled) && !errors.Is(err, context.Canceled)) {
					firstErr = err
				}
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, c := range sum.Channels {
		sum.Copied += c.Copied
		sum.Bytes += c.Bytes
	}
	sum.Elapsed = time.Since(start)
	sum.NothingToDo = firstErr == nil && !changed.Load()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return sum, firstErr
}

func sanitizeClientID(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "host"
	}
	return string(b)
}
