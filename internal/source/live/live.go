// Package live is the Source of a running STAN server: Monitored reads
// channels, bounds and durables from the server's monitoring endpoint;
// Unmonitored serves a server started without one, from the channels and
// durables an operator listed in the plan, learning bounds by subscribing.
// Both read messages through STAN subscriptions of their own and probe
// durables whose pending set only the server knows.
package live

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nuid"
	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/source"
)

// Options say how to reach the server.
type Options struct {
	ClusterID string
	STAN      conn.Side
	// ClientID names the STAN sessions the source reads through (default:
	// "stanmigrate-<host>-<random>"); with several sessions each gets a
	// suffix.
	ClientID string
	// Sessions is how many STAN connections reads spread over (default
	// 1). Each session is one TCP connection whose messages one goroutine
	// hands out, so CPU-bound readers (verify) want one per core, while a
	// migration waits on JetStream and shares one.
	Sessions int
	// LearnTimeout is how long Unmonitored waits for the one message that
	// reveals a channel's first or last sequence (default 2s); an empty
	// channel answers with silence, so this is paid per empty channel.
	LearnTimeout time.Duration
}

// Timeouts are variables so tests can shorten them.
var (
	// stallTimeout is how long an acknowledged read may go without a
	// message while it still expects one before it is abandoned.
	stallTimeout = 10 * time.Second
	// firstTimeout is the same for the first message of a read: STAN sends
	// at once what a new subscription asks for, so silence means the
	// subscription reached a server that stopped serving it (a leader or
	// active server going away as it was made) and reading again is
	// cheaper than waiting.
	firstTimeout = 2 * time.Second
	// roomTimeout is the same mid-read while STAN may send more (fewer
	// than MaxInflight messages unacknowledged): it sends at once then.
	roomTimeout = 2 * time.Second
	// getTimeout is how long to wait for one message that must exist.
	getTimeout = 5 * time.Second
	// probeIdle is how long a probe waits for the first redelivery.
	probeIdle = 2 * time.Second
)

// base is what both kinds of live source share: sessions, reads, probes.
type base struct {
	o Options

	mu       sync.Mutex
	sessions []*session
	closed   bool
	// proven is set once a session connected: STAN answered for the
	// cluster id, so a later connect that goes unanswered is a failover
	// in progress, not a wrong cluster id.
	proven atomic.Bool
}

// session is one STAN connection and the reads on it.
type session struct {
	id      string
	sc      *conn.STAN
	lost    chan struct{} // closed when STAN reports the session lost
	once    sync.Once
	readers int
}

func (s *session) markLost() { s.once.Do(func() { close(s.lost) }) }

func (s *session) usable() bool {
	select {
	case <-s.lost:
		return false
	default:
	}
	return s.sc.NC.IsConnected()
}

func newBase(o Options) base {
	if o.Sessions <= 0 {
		o.Sessions = 1
	}
	if o.LearnTimeout <= 0 {
		o.LearnTimeout = 2 * time.Second
	}
	if o.ClientID == "" {
		host, _ := os.Hostname()
		o.ClientID = "stanmigrate-" + sanitizeClientID(host) + "-" + nuid.Next()
	}
	return base{o: o}
}

// session returns a session for one more reader: an idle one, else a
// new one while fewer than Options.Sessions are open, else the least used.
// Sessions STAN reported lost, or whose connection is down, are replaced.
func (b *base) session(ctx context.Context) (*session, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, context.Canceled
	}
	live := b.sessions[:0]
	for _, s := range b.sessions {
		if s.usable() {
			live = append(live, s)
		} else {
			s.sc.Close()
		}
	}
	b.sessions = live
	var best *session
	for _, s := range b.sessions {
		if best == nil || s.readers < best.readers {
			best = s
		}
	}
	if best != nil && (best.readers == 0 || len(b.sessions) >= b.o.Sessions) {
		return best, nil
	}
	id := b.o.ClientID
	if b.o.Sessions > 1 {
		id += "-" + nuid.Next()
	}
	s := &session{id: id, lost: make(chan struct{})}
	sc, err := conn.ConnectSTAN(ctx, b.o.STAN, b.o.ClusterID, id, func(stan.Conn, error) { s.markLost() })
	if err != nil {
		if best != nil {
			return best, nil
		}
		return nil, b.unanswered(err)
	}
	b.proven.Store(true)
	s.sc = sc
	b.sessions = append(b.sessions, s)
	return s, nil
}

// unanswered turns "no STAN server answered for the cluster id" into a
// transient loss once the cluster id was proven: the server (a leader,
// an FT pair's active member) is being replaced.
func (b *base) unanswered(err error) error {
	if b.proven.Load() && errors.Is(err, conn.ErrWrongCluster) {
		return fmt.Errorf("STAN did not answer for cluster %q, which it served before (a failover in progress?): %w", b.o.ClusterID, source.ErrLost)
	}
	return err
}

// drop closes a session that misbehaved, so the next read opens another.
func (b *base) drop(s *session) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, x := range b.sessions {
		if x == s {
			s.sc.Close()
			b.sessions = append(b.sessions[:i], b.sessions[i+1:]...)
			return
		}
	}
}

func (b *base) addReader(s *session, n int) {
	b.mu.Lock()
	s.readers += n
	b.mu.Unlock()
}

// Check asks the server to answer for the cluster id without
// registering a client.
func (b *base) Check(ctx context.Context) error {
	return conn.CheckSTAN(ctx, b.o.STAN, b.o.ClusterID)
}

// Connect opens a session: the STAN client URL, credentials and cluster
// id are proven before anything is written.
func (b *base) Connect(ctx context.Context) error {
	_, err := b.session(ctx)
	return err
}

// Close closes every session.
func (b *base) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for _, s := range b.sessions {
		s.sc.Close()
	}
	b.sessions = nil
	return nil
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
