package embedded

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
	_ "unsafe" // go:linkname, for the FT heartbeat timings below

	natsd "github.com/nats-io/nats-server/v2/server"
	stand "github.com/nats-io/nats-streaming-server/server"
	"github.com/nats-io/nats-streaming-server/stores"
)

// FT heartbeat timings of nats-streaming-server (server/ft.go). The
// server exposes no option for them: they are package variables its own
// tests change, read when an FT server starts. The active server
// publishes a heartbeat every ftHBInterval; a standby that hears none for
// ftHBMissedInterval tries for the store lock (each server randomises both
// by ±10%). Defaults: 1s and 1.25s.
//
//go:linkname ftHBInterval github.com/nats-io/nats-streaming-server/server.ftHBInterval
var ftHBInterval time.Duration

//go:linkname ftHBMissedInterval github.com/nats-io/nats-streaming-server/server.ftHBMissedInterval
var ftHBMissedInterval time.Duration

// FT timings every STANFT uses: heartbeats ten times as often as the
// server's default, and a missed-heartbeat window a little shorter than
// the default, so a standby takes over in about a second.
//
// Why change them at all: the store lock that keeps a standby from
// activating is a POSIX record lock (fcntl F_SETLK), which belongs to a
// process, not to a server. Both servers of an embedded pair run in one
// process, so a standby's lock attempt always succeeds. With the default
// timings the gap between one heartbeat and the standby's patience can be
// as small as 25ms; a pause that long (a GC, a loaded CI machine) makes the
// standby activate beside the active server, which then panics
// ("ft: serverID ... claims to be active, aborting") and takes the whole
// test process down. With these timings the standby activates only after
// about ten heartbeats in a row go missing.
const (
	FTHeartbeatInterval       = 100 * time.Millisecond
	FTMissedHeartbeatInterval = time.Second
)

var ftTimingsOnce sync.Once

func setFTTimings() {
	ftTimingsOnce.Do(func() {
		ftHBInterval = FTHeartbeatInterval
		ftHBMissedInterval = FTMissedHeartbeatInterval
	})
}

// STANFTConfig describes an embedded fault-tolerant NATS Streaming group.
type STANFTConfig struct {
	ClusterID string
	// Dir is the file store every server of the group shares. Required.
	Dir string
	// Group is the FT group name, "ft" when empty.
	Group string
	// Nodes is the number of servers, 2 when zero.
	Nodes int
	// Limits are the store limits; nil means unlimited (see STANConfig).
	Limits *stores.StoreLimits
	// Configure, when set, may adjust node i's options before every start.
	Configure func(i int, s *stand.Options, n *natsd.Options)
}

// STANFT is a fault-tolerant NATS Streaming group: servers sharing one
// file store, each embedding a NATS server routed to the others. One is
// active; the others stand by and take over when its heartbeats stop.
// See FTHeartbeatInterval for why the rig changes the server's FT timings
// and what sharing one process costs.
type STANFT struct {
	cfg   STANFTConfig
	nodes []*STANNode
}

// StartSTANFT starts node 0, waits until it is active, then starts the
// other nodes in standby. (Started together, every server would find no
// heartbeat and, in one process, get the store lock.)
func StartSTANFT(cfg STANFTConfig) (*STANFT, error) {
	if cfg.Dir == "" {
		return nil, errors.New("embedded STAN FT: a store directory is required")
	}
	if cfg.ClusterID == "" {
		cfg.ClusterID = ClusterID
	}
	if cfg.Group == "" {
		cfg.Group = "ft"
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 2
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	setFTTimings()
	// A node that cannot start is tried again on fresh ports: the ports
	// were free when picked, but test packages running at once pick from
	// the same range, and the standby starts seconds after the pick.
	var err error
	for range 3 {
		var f *STANFT
		var started bool
		if f, started, err = startSTANFT(cfg); started {
			return f, err
		}
	}
	return nil, err
}

// startSTANFT is one try of StartSTANFT; started is false when a node
// could not start (nothing is left running then).
func startSTANFT(cfg STANFTConfig) (*STANFT, bool, error) {
	f := &STANFT{cfg: cfg}
	for i := 0; i < cfg.Nodes; i++ {
		n, err := newSTANNode(i, fmt.Sprintf("stan-ft%d", i))
		if err != nil {
			return nil, true, err
		}
		n.opts = f.options
		f.nodes = append(f.nodes, n)
	}
	for i, n := range f.nodes {
		if err := n.Start(); err != nil {
			f.Stop()
			return nil, false, err
		}
		if i == 0 {
			if _, err := f.WaitActive(-1, 30*time.Second); err != nil {
				f.Stop()
				return nil, true, err
			}
		}
	}
	if err := f.waitStandbys(10 * time.Second); err != nil {
		f.Stop()
		return nil, true, err
	}
	if err := f.WaitServing(10 * time.Second); err != nil {
		f.Stop()
		return nil, true, err
	}
	return f, true, nil
}

func (f *STANFT) options(n *STANNode) (*stand.Options, *natsd.Options) {
	s := stand.GetDefaultOptions()
	s.ID = f.cfg.ClusterID
	s.StoreType = stores.TypeFile
	s.FilestoreDir = f.cfg.Dir
	s.FTGroupName = f.cfg.Group
	s.StoreLimits = stores.StoreLimits{}
	if f.cfg.Limits != nil {
		s.StoreLimits = *f.cfg.Limits.Clone()
	}
	o := n.natsOptions("stan-ft-"+f.cfg.ClusterID, f.nodes)
	if f.cfg.Configure != nil {
		f.cfg.Configure(n.index, s, o)
	}
	return s, o
}

// ClusterID is the STAN cluster id.
func (f *STANFT) ClusterID() string { return f.cfg.ClusterID }

// Dir is the shared file store directory.
func (f *STANFT) Dir() string { return f.cfg.Dir }

// Size is the number of servers.
func (f *STANFT) Size() int { return len(f.nodes) }

// Node is node i.
func (f *STANFT) Node(i int) *STANNode { return f.nodes[i] }

// URLs is every node's client URL, comma-joined.
func (f *STANFT) URLs() string { return strings.Join(f.URLList(), ",") }

// URLList is every node's client URL.
func (f *STANFT) URLList() []string { return nodeURLs(f.nodes) }

// MonitorURLs is every node's monitoring base URL, by node index.
func (f *STANFT) MonitorURLs() []string { return nodeMonitorURLs(f.nodes) }

// Active is the index of the one running node in state FT_ACTIVE, -1 when
// none (or more than one) is.
func (f *STANFT) Active() int {
	found := -1
	for i, n := range f.nodes {
		if s := n.Server(); s != nil && s.State() == stand.FTActive {
			if found >= 0 {
				return -1
			}
			found = i
		}
	}
	return found
}

// WaitActive waits for an active node other than except (-1: any), and
// until a client can reach it through every running node (see
// STANNode.Serving), and returns its index.
func (f *STANFT) WaitActive(except int, timeout time.Duration) (int, error) {
	start := time.Now()
	a, err := waitIndex(timeout, except, f.Active, "active STAN FT server")
	if err != nil {
		return a, err
	}
	return a, waitServing(f.nodes, timeout-time.Since(start))
}

// WaitServing waits until a client can reach the active server through
// every running node (see STANNode.Serving), as after Restart.
func (f *STANFT) WaitServing(timeout time.Duration) error { return waitServing(f.nodes, timeout) }

// waitStandbys waits until every running node but the active one reports
// FT_STANDBY.
func (f *STANFT) waitStandbys(timeout time.Duration) error {
	return waitFor(timeout, 10*time.Millisecond, func() error {
		active := 0
		for i, n := range f.nodes {
			s := n.Server()
			if s == nil {
				continue
			}
			switch st := s.State(); st {
			case stand.FTActive:
				active++
			case stand.FTStandby:
			default:
				return fmt.Errorf("node %d is %v (last error %v)", i, st, s.LastError())
			}
		}
		if active != 1 {
			return fmt.Errorf("%d active servers", active)
		}
		return nil
	})
}

// KillActive shuts the active node down and returns its index. A standby
// takes over about FTMissedHeartbeatInterval later (see WaitActive).
func (f *STANFT) KillActive() (int, error) {
	a := f.Active()
	if a < 0 {
		return -1, errors.New("embedded STAN FT: no active server")
	}
	f.nodes[a].Shutdown()
	return a, nil
}

// Shutdown stops node i.
func (f *STANFT) Shutdown(i int) { f.nodes[i].Shutdown() }

// Restart restarts node i on its ports and the shared store. While
// another node is active it comes back as a standby.
func (f *STANFT) Restart(i int) error { return f.nodes[i].Restart() }

// Stop shuts every node down, standbys first so none takes over from the
// active one on the way.
func (f *STANFT) Stop() {
	a := f.Active()
	var standbys []*STANNode
	for i, n := range f.nodes {
		if i != a {
			standbys = append(standbys, n)
		}
	}
	stopNodes(standbys)
	if a >= 0 {
		f.nodes[a].Shutdown()
	}
}
