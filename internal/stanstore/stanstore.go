// Package stanstore reads a NATS Streaming (STAN) file store directory
// directly, with no server running: the cluster id, every channel with its
// messages, and every subscription with its stored state (durable name,
// queue group, max_inflight, ack_wait, last sent and the exact set of
// unacknowledged sequences).
//
// It presents the directory the way a nats-streaming-server v0.25 started
// on it would: subscriptions are resolved as the server resolves them on
// recovery (offline durables, the "shadow" state of a durable queue group
// whose members all left, subscriptions of clients that were still
// connected), and the store limits are applied the way the server applies
// them on start (messages over max_msgs or max_bytes dropped from the
// front, messages older than max_age expired). The limits are not recorded
// in the directory; they come from Options (see LimitsFromConfig).
//
// It never writes. The server's own stores.FileStore cannot be used for
// this: it opens every file read-write and creates the ones missing
// (server.dat, clients.dat, subs.dat, message index files), rebuilds
// missing or damaged index files, truncates zero-filled file ends, removes
// message files that the limits make obsolete, deletes a leftover
// .truncate.lck, and it fails the whole recovery on the first damaged
// channel. So the record framing is read here, and the payloads are
// decoded with the server's protobuf types (spb, pb); where the server
// would repair a file without losing data (a missing or damaged index, a
// zero-filled end) the reader does the same in memory and says so in
// Channel.Notes; where the server would refuse to start, the channel is
// reported broken (Channel.Err) and the other channels stay readable.
//
// Open refuses a directory that a running server holds (ErrLocked): the
// fault-tolerance lock file an FT server keeps, or, on Linux, any process
// that has one of the store's files open for writing.
package stanstore

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats-streaming-server/spb"
	"github.com/nats-io/nats-streaming-server/stores"
	"github.com/nats-io/nats-streaming-server/util"
)

// Sentinel errors callers branch on.
var (
	// ErrLocked: a running server holds the directory.
	ErrLocked = errors.New("STAN store directory is in use")
	// ErrNotStore: the path is not a STAN file store directory.
	ErrNotStore = errors.New("not a STAN file store directory")
	// ErrBroken: a store file cannot be read as the server wrote it
	// (corrupted or truncated). Channel.Err and iterator errors wrap it
	// for one channel; Open returns it for server.dat and clients.dat.
	ErrBroken = errors.New("STAN store file unreadable")
	// ErrNoChannel: Messages was asked for a channel the store lacks.
	ErrNoChannel = errors.New("no such channel in the STAN store")
)

const (
	serverFileName  = "server.dat"
	clientsFileName = "clients.dat"
	subsFileName    = "subs.dat"
	lockFileName    = ".rootdir.lck"

	defaultReadBuffer = 1 << 20
)

// Options say what the directory does not record.
type Options struct {
	// Limits are the store limits the server ran with: the server applies
	// them to what it serves every time it starts, so the reader does
	// too. Nil means the server's defaults (stores.DefaultStoreLimits:
	// 1,000,000 messages and 1 GB per channel, no max_age), which is what
	// a server started without limits applies.
	Limits *stores.StoreLimits
	// CRCPolynomial is the server's file_options crc_poly; 0 means
	// IEEE, the server's default.
	CRCPolynomial int64
	// Now is the time max_age is measured against; zero means time.Now().
	Now time.Time
	// ReadBufferSize is the buffer per open message file (0: 1 MiB).
	ReadBufferSize int
}

// Store is an open, read-only view of a STAN file store directory. It is
// safe for concurrent use; it holds no file open between calls (each
// Iterator opens its own).
type Store struct {
	dir       string
	clusterID string
	info      spb.ServerInfo
	limits    stores.StoreLimits
	crc       *crc32.Table
	bufSize   int
	channels  []*channelState
	byName    map[string]*channelState

	mu     sync.Mutex
	closed bool
}

// Channel is one channel as the server would present it after starting
// on the directory.
type Channel struct {
	Name string
	// FirstSeq and LastSeq as the server reports them: 0/0 for a channel
	// that never held a message, FirstSeq == LastSeq+1 once every message
	// has expired or been dropped.
	FirstSeq uint64
	LastSeq  uint64
	Msgs     uint64
	// Bytes is the server's accounting: each message's stored size plus
	// 40 bytes of record overhead (what monitoring reports).
	Bytes uint64
	// MaxMsgSize is the largest stored message record (subject, payload
	// and protocol fields): an upper bound of the largest payload.
	MaxMsgSize uint32
	// Limits are the effective limits applied to the channel, and
	// LimitsFrom the store limits key they come from ("" = global).
	Limits     stores.ChannelLimits
	LimitsFrom string
	// Subscriptions as the server would recover them, by subscription id.
	Subscriptions []Subscription
	// Notes list what the server would repair on start without losing
	// data (and the reader worked around in memory).
	Notes []string
	// Err is set when the channel cannot be read; it wraps ErrBroken and
	// names the file. The rest of the channel is then zero.
	Err error
}

// Subscription is one stored subscription.
type Subscription struct {
	ID       uint64
	ClientID string // empty for the shadow state of a durable queue group
	// Durable is the durable name, for plain durables and durable queue
	// groups alike; QueueGroup the group name (without the "durable:"
	// prefix STAN uses internally for durable queue groups).
	Durable    string
	QueueGroup string
	IsDurable  bool
	// Connected: the subscription's client was connected when the server
	// stopped (a restarted server resumes it as online until the client's
	// heartbeats fail). False for closed durables and shadows.
	Connected bool
	// Shadow: the state a durable queue group keeps once all its members
	// have left.
	Shadow      bool
	Inbox       string
	AckInbox    string
	MaxInflight int
	AckWait     time.Duration
	LastSent    uint64
	// Pending is every unacknowledged sequence, ascending. It can hold
	// sequences below the channel's first: the server drops such an entry
	// only when it next tries to redeliver it.
	Pending []uint64
}

// Open reads the directory's server information, clients, channels and
// subscriptions, and indexes the messages. It reads everything except
// message payloads (which Messages streams) and writes nothing. A damaged
// channel does not fail Open: it comes back with Channel.Err set.
func Open(ctx context.Context, dir string, o Options) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("STAN directory %s: %w", dir, err)
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("STAN directory %s does not exist: check --stan-dir: %w", abs, ErrNotStore)
	case err != nil:
		return nil, fmt.Errorf("STAN directory %s: %w", abs, err)
	case !st.IsDir():
		return nil, fmt.Errorf("STAN directory %s is not a directory: %w", abs, ErrNotStore)
	}
	if err := checkNotInUse(abs); err != nil {
		return nil, err
	}
	s := &Store{dir: abs, bufSize: o.ReadBufferSize, byName: map[string]*channelState{}}
	if s.bufSize <= 0 {
		s.bufSize = defaultReadBuffer
	}
	s.crc = crc32.IEEETable
	if o.CRCPolynomial != 0 && o.CRCPolynomial != int64(crc32.IEEE) {
		s.crc = crc32.MakeTable(uint32(o.CRCPolynomial))
	}
	lim := o.Limits
	if lim == nil {
		lim = &stores.DefaultStoreLimits
	}
	s.limits = *lim.Clone()
	if err := s.limits.Build(); err != nil {
		return nil, fmt.Errorf("STAN store limits: %w", err)
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}

	names, err := channelDirs(abs)
	if err != nil {
		return nil, err
	}
	if err := s.readServerInfo(len(names) > 0); err != nil {
		return nil, err
	}
	clients, err := readClients(filepath.Join(abs, clientsFileName), s.crc)
	if err != nil {
		return nil, err
	}
	matcher, err := newLimitsMatcher(&s.limits)
	if err != nil {
		return nil, fmt.Errorf("STAN store limits: %w", err)
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cs := &channelState{Channel: Channel{Name: name}}
		cs.Limits, cs.LimitsFrom = matcher.match(name)
		if err := s.recoverChannel(cs, clients, now); err != nil {
			cs.Channel = Channel{Name: name, Limits: cs.Limits, LimitsFrom: cs.LimitsFrom, Err: err}
			cs.slices = nil
		}
		s.channels = append(s.channels, cs)
		s.byName[name] = cs
	}
	// A server started while the directory was being read would make
	// what was read inconsistent: check again.
	if err := checkNotInUse(abs); err != nil {
		return nil, err
	}
	return s, nil
}

func checkNotInUse(dir string) error {
	next := "stop the STAN server first, or copy the directory while the server is stopped and pass the copy to --stan-dir"
	holder, err := ftLockHolder(dir)
	if err != nil {
		return fmt.Errorf("STAN directory %s: %w", dir, err)
	}
	if holder == "" {
		if holder, err = writerHolder(dir); err != nil {
			return fmt.Errorf("STAN directory %s: check for a running server: %w", dir, err)
		}
	}
	if holder != "" {
		return fmt.Errorf("STAN directory %s: %s: %s: %w", dir, holder, next, ErrLocked)
	}
	return nil
}

// channelDirs lists the channel directories: the server takes every
// subdirectory of the root for a channel.
func channelDirs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("STAN directory %s: %w", dir, err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

func (s *Store) readServerInfo(hasChannels bool) error {
	path := filepath.Join(s.dir, serverFileName)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("STAN directory %s has no %s: point --stan-dir at the server's file store directory (its -dir / store dir), the one holding %s and one directory per channel: %w",
			s.dir, serverFileName, serverFileName, ErrNotStore)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	broken := func(err error) error {
		return fmt.Errorf("%s: %v: the server would refuse to start on this directory too: restore the file from a backup: %w", path, err, ErrBroken)
	}
	if err := checkVersion(f); err != nil {
		return broken(err)
	}
	rr := newRecordReader(path, f, false, s.crc, 4096)
	_, payload, err := rr.next()
	if errors.Is(err, io.EOF) {
		if hasChannels {
			return broken(errors.New("no server information recorded, yet the directory holds channels"))
		}
		return fmt.Errorf("%s holds no server information: the server never initialized this directory: %w", path, ErrNotStore)
	}
	if err != nil {
		return broken(err)
	}
	if fi, err := f.Stat(); err == nil && fi.Size() != rr.off {
		return broken(fmt.Errorf("file is %d bytes, its one record ends at %d", fi.Size(), rr.off))
	}
	if err := s.info.Unmarshal(payload); err != nil {
		return broken(fmt.Errorf("decode server information: %w", err))
	}
	s.clusterID = s.info.ClusterID
	return nil
}

// Dir is the store directory (absolute).
func (s *Store) Dir() string { return s.dir }

// ClusterID is the cluster id recorded in server.dat.
func (s *Store) ClusterID() string { return s.clusterID }

// Limits are the store limits applied (inheritance resolved).
func (s *Store) Limits() stores.StoreLimits { return *s.limits.Clone() }

// Channels returns every channel, sorted by name, broken ones included
// (with Err set). The slices are copies the caller may keep.
func (s *Store) Channels() []Channel {
	out := make([]Channel, len(s.channels))
	for i, c := range s.channels {
		out[i] = c.copy()
	}
	return out
}

// Channel returns one channel; ok is false when the store lacks it.
func (s *Store) Channel(name string) (Channel, bool) {
	c, ok := s.byName[name]
	if !ok {
		return Channel{}, false
	}
	return c.copy(), true
}

// Close releases the store. Iterators still open stay usable until
// closed; new ones are refused.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// limitsMatcher finds a channel's limits the way the server does: the
// narrowest matching per-channel entry of the built limits, else the
// global limits.
type limitsMatcher struct {
	global stores.ChannelLimits
	list   *util.Sublist
}

type limitsEntry struct {
	key    string
	limits stores.ChannelLimits
}

func newLimitsMatcher(l *stores.StoreLimits) (*limitsMatcher, error) {
	m := &limitsMatcher{global: l.ChannelLimits, list: util.NewSublist()}
	for key, cl := range l.PerChannel {
		if err := m.list.Insert(key, &limitsEntry{key: key, limits: *cl}); err != nil {
			return nil, fmt.Errorf("per-channel limits %q: %w", key, err)
		}
	}
	return m, nil
}

func (m *limitsMatcher) match(channel string) (stores.ChannelLimits, string) {
	r := m.list.Match(channel)
	if len(r) == 0 {
		return m.global, ""
	}
	e := r[len(r)-1].(*limitsEntry)
	return e.limits, e.key
}

// brokenErr builds a channel's error: the channel, the file, what is wrong
// and what to do.
func brokenErr(channel, path string, cause error) error {
	return fmt.Errorf("channel %q: %s: %v: the server would refuse to start on this directory too: restore the file from a backup, or leave the channel out (--skip-broken) to migrate the others: %w",
		channel, path, cause, ErrBroken)
}
