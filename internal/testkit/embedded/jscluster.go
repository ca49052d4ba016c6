package embedded

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	natsd "github.com/nats-io/nats-server/v2/server"
	"github.com/stanmigrate/stanmigrate/internal/freeport"
)

// ClusterTag is the tag every node of a JetStreamCluster carries, next to
// its own "az:<index>".
const ClusterTag = "stanmigrate"

// JetStreamClusterConfig describes an embedded JetStream cluster.
type JetStreamClusterConfig struct {
	// Dir is the root directory; node i keeps its JetStream store in
	// Dir/node<i>. Required.
	Dir string
	// Name is the cluster name ("js-cluster" when empty): what a stream's
	// placement names as its cluster.
	Name string
	// Nodes is the number of servers, 3 when zero.
	Nodes int
	// Account is the account the leader queries look in, "$G" (the global
	// account of a server without accounts) when empty.
	Account string
	// Tags, when set, gives node i its server tags (placement tags).
	// Nil: node i is tagged "az:<i>" and ClusterTag.
	Tags func(i int) []string
	// MaxStore caps each node's JetStream file storage in bytes (0: server
	// default).
	MaxStore int64
	// Partitionable routes every pair of nodes through a forwarder the rig
	// can cut, for ClusterNode.Kill and Isolate. Off, nodes route directly.
	Partitionable bool
	// Configure, when set, may adjust node i's options before every start
	// (auth, TLS). It runs after the rig has set ports, routes and tags.
	Configure func(i int, o *natsd.Options)
}

// JetStreamCluster is a cluster of embedded nats-servers with JetStream,
// routed together over loopback. Nodes keep their ports, names and store
// directories across Restart.
type JetStreamCluster struct {
	cfg   JetStreamClusterConfig
	nodes []*ClusterNode
	// pipes[i][j] carries node i's route to node j (Partitionable only).
	pipes [][]*pipe
}

// ClusterNode is one server of a JetStreamCluster.
type ClusterNode struct {
	c           *JetStreamCluster
	index       int
	name        string
	dir         string
	port        int
	clusterPort int
	mu          sync.Mutex
	srv         *natsd.Server
}

// StartJetStreamCluster starts the nodes and waits until the meta leader is
// elected, every node has joined it and all are current.
func StartJetStreamCluster(cfg JetStreamClusterConfig) (*JetStreamCluster, error) {
	if cfg.Dir == "" {
		return nil, errors.New("embedded JetStream cluster: a store directory is required")
	}
	if cfg.Name == "" {
		cfg.Name = "js-cluster"
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.Account == "" {
		cfg.Account = natsd.DEFAULT_GLOBAL_ACCOUNT
	}
	c := &JetStreamCluster{cfg: cfg}
	for i := 0; i < cfg.Nodes; i++ {
		n := &ClusterNode{c: c, index: i, name: fmt.Sprintf("%s-n%d", cfg.Name, i), dir: filepath.Join(cfg.Dir, fmt.Sprintf("node%d", i))}
		var err error
		if n.port, err = freeport.Port(); err != nil {
			return nil, err
		}
		if n.clusterPort, err = freeport.Port(); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, n)
	}
	if cfg.Partitionable {
		if err := c.makePipes(); err != nil {
			c.Stop()
			return nil, err
		}
	}
	for _, n := range c.nodes {
		if err := n.Start(); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if err := c.WaitReady(30 * time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// options builds node n's options afresh (the server keeps and changes the
// ones it is given).
func (n *ClusterNode) options() *natsd.Options {
	c := n.c
	var routes []*url.URL
	for j, o := range c.nodes {
		if o == n {
			continue
		}
		port := o.clusterPort
		if c.pipes != nil {
			port = c.pipes[n.index][j].port()
		}
		routes = append(routes, &url.URL{Scheme: "nats", Host: "127.0.0.1:" + strconv.Itoa(port)})
	}
	o := &natsd.Options{
		ServerName: n.name,
		Host:       "127.0.0.1",
		Port:       n.port,
		NoSigs:     true,
		NoLog:      true,
		JetStream:  true,
		StoreDir:   n.dir,
		Cluster: natsd.ClusterOpts{
			Name: c.cfg.Name,
			Host: "127.0.0.1",
			Port: n.clusterPort,
		},
		Routes: routes,
		Tags:   jwt.TagList(n.Tags()),
	}
	if c.pipes != nil {
		// Servers tell each other the route address a node advertises,
		// and connect to one they know no route to; that connection would
		// bypass the pipes. Advertise an address nothing listens on
		// (port 1 needs root to bind), so only the configured routes,
		// through the pipes, connect.
		o.Cluster.Advertise = "127.0.0.1:1"
	}
	if c.cfg.MaxStore > 0 {
		o.JetStreamMaxStore = c.cfg.MaxStore
	}
	if c.cfg.Configure != nil {
		c.cfg.Configure(n.index, o)
	}
	return o
}

// Start starts a stopped node on its ports and store directory, back on
// the network if it was isolated. It waits for the client port, not for
// the node to rejoin JetStream (see WaitReady, WaitStreamCurrent).
func (n *ClusterNode) Start() error {
	n.c.setIsolated(n.index, false)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		return fmt.Errorf("embedded JetStream cluster: %s already running", n.name)
	}
	srv, err := natsd.NewServer(n.options())
	if err != nil {
		return fmt.Errorf("embedded JetStream cluster: %s: %w", n.name, err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("embedded JetStream cluster: %s not ready after 10s", n.name)
	}
	n.srv = srv
	return nil
}

// Shutdown stops the node (a clean shutdown, as an operator's restart
// would), keeping its store for a later Start.
func (n *ClusterNode) Shutdown() {
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Kill takes the node off the network, then shuts it down: to its peers a
// crash, with no leader hand-over, so the other nodes elect a new leader
// only when their election timers run out. Its clients are disconnected.
// Start brings it back. It needs a Partitionable cluster.
func (n *ClusterNode) Kill() error {
	if err := n.Isolate(); err != nil {
		return err
	}
	n.Shutdown()
	return nil
}

// Isolate cuts the node's routes to every other node and keeps them cut
// (the node keeps running and keeps its clients) until Heal or Start. It
// needs a Partitionable cluster.
func (n *ClusterNode) Isolate() error {
	if n.c.pipes == nil {
		return errors.New("embedded JetStream cluster: not started Partitionable")
	}
	n.c.setIsolated(n.index, true)
	return nil
}

// Heal restores the node's routes after Isolate.
func (n *ClusterNode) Heal() { n.c.setIsolated(n.index, false) }

// Restart shuts the node down and starts it again on the same ports and
// store.
func (n *ClusterNode) Restart() error {
	n.Shutdown()
	return n.Start()
}

// Running says whether the node is started.
func (n *ClusterNode) Running() bool { return n.server() != nil }

// Server is the running server, nil when the node is stopped.
func (n *ClusterNode) Server() *natsd.Server { return n.server() }

func (n *ClusterNode) server() *natsd.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// Index is the node's position in the cluster.
func (n *ClusterNode) Index() int { return n.index }

// Name is the node's server name (what stream info reports as leader).
func (n *ClusterNode) Name() string { return n.name }

// URL is the node's client URL.
func (n *ClusterNode) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// ClusterPort is the port the node listens on for routes.
func (n *ClusterNode) ClusterPort() int { return n.clusterPort }

// Dir is the node's JetStream store directory.
func (n *ClusterNode) Dir() string { return n.dir }

// Tags are the node's server tags.
func (n *ClusterNode) Tags() []string {
	if n.c.cfg.Tags != nil {
		return n.c.cfg.Tags(n.index)
	}
	return []string{fmt.Sprintf("az:%d", n.index), ClusterTag}
}

// Name is the cluster name.
func (c *JetStreamCluster) Name() string { return c.cfg.Name }

// Size is the number of nodes.
func (c *JetStreamCluster) Size() int { return len(c.nodes) }

// Node is node i.
func (c *JetStreamCluster) Node(i int) *ClusterNode { return c.nodes[i] }

// URLs is every node's client URL, comma-joined: the server list a client
// is given.
func (c *JetStreamCluster) URLs() string { return strings.Join(c.URLList(), ",") }

// URLList is every node's client URL.
func (c *JetStreamCluster) URLList() []string {
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = n.URL()
	}
	return urls
}

// Start starts every stopped node (after Stop, a whole-cluster restart)
// and waits until the cluster is ready again.
func (c *JetStreamCluster) Start() error {
	for _, n := range c.nodes {
		if !n.Running() {
			if err := n.Start(); err != nil {
				return err
			}
		}
	}
	return c.WaitReady(30 * time.Second)
}

// Stop shuts every node down.
func (c *JetStreamCluster) Stop() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.Shutdown() }()
	}
	wg.Wait()
	for _, row := range c.pipes {
		for _, p := range row {
			if p != nil {
				p.close()
			}
		}
	}
}

func (c *JetStreamCluster) makePipes() error {
	c.pipes = make([][]*pipe, len(c.nodes))
	for i := range c.nodes {
		c.pipes[i] = make([]*pipe, len(c.nodes))
		for j, to := range c.nodes {
			if i == j {
				continue
			}
			p, err := newPipe("127.0.0.1:" + strconv.Itoa(to.clusterPort))
			if err != nil {
				return err
			}
			c.pipes[i][j] = p
		}
	}
	return nil
}

// setIsolated cuts or restores every pipe to and from node i.
func (c *JetStreamCluster) setIsolated(i int, cut bool) {
	if c.pipes == nil {
		return
	}
	for j := range c.nodes {
		if j != i {
			c.pipes[i][j].setCut(cut)
			c.pipes[j][i].setCut(cut)
		}
	}
}

// MetaLeader is the index of the node leading the JetStream meta group,
// -1 when none does.
func (c *JetStreamCluster) MetaLeader() int {
	return c.only(func(s *natsd.Server) bool { return s.JetStreamIsLeader() })
}

// StreamLeader is the index of the node leading stream (in the configured
// account), -1 when none does.
func (c *JetStreamCluster) StreamLeader(stream string) int {
	return c.only(func(s *natsd.Server) bool { return s.JetStreamIsStreamLeader(c.cfg.Account, stream) })
}

// only is the one running node for which is holds, -1 when none or more
// than one does (an old leader that has not yet noticed it lost).
func (c *JetStreamCluster) only(is func(*natsd.Server) bool) int {
	found := -1
	for i, n := range c.nodes {
		if s := n.server(); s != nil && is(s) {
			if found >= 0 {
				return -1
			}
			found = i
		}
	}
	return found
}

// WaitMetaLeader waits for a meta leader other than node except (-1: any)
// and returns its index.
func (c *JetStreamCluster) WaitMetaLeader(except int, timeout time.Duration) (int, error) {
	return waitIndex(timeout, except, c.MetaLeader, "JetStream meta leader")
}

// WaitStreamLeader waits for a leader of stream other than node except
// (-1: any) and returns its index.
func (c *JetStreamCluster) WaitStreamLeader(stream string, except int, timeout time.Duration) (int, error) {
	return waitIndex(timeout, except, func() int { return c.StreamLeader(stream) }, "leader of stream "+stream)
}

// WaitReady waits until a meta leader knows every node as a peer and
// every running node is current with the meta group.
func (c *JetStreamCluster) WaitReady(timeout time.Duration) error {
	return waitFor(timeout, 10*time.Millisecond, func() error {
		l := c.MetaLeader()
		if l < 0 {
			return errors.New("no JetStream meta leader")
		}
		ls := c.nodes[l].server()
		if ls == nil {
			return errors.New("meta leader stopped")
		}
		if p := len(ls.JetStreamClusterPeers()); p != len(c.nodes) {
			return fmt.Errorf("meta leader knows %d peers of %d", p, len(c.nodes))
		}
		for _, n := range c.nodes {
			if s := n.server(); s != nil && !s.JetStreamIsCurrent() {
				return fmt.Errorf("%s not current with the meta group", n.name)
			}
		}
		return nil
	})
}

// StreamState is node i's own copy of the stream's state (each replica
// keeps one); false when the node is stopped or holds no replica.
func (c *JetStreamCluster) StreamState(i int, stream string) (natsd.StreamState, bool) {
	s := c.nodes[i].server()
	if s == nil {
		return natsd.StreamState{}, false
	}
	info, err := s.Jsz(&natsd.JSzOptions{Account: c.cfg.Account, Streams: true})
	if err != nil {
		return natsd.StreamState{}, false
	}
	for _, a := range info.AccountDetails {
		for _, d := range a.Streams {
			if d.Name == stream {
				return d.State, true
			}
		}
	}
	return natsd.StreamState{}, false
}

// WaitStreamCurrent waits until node i's replica of stream is current with
// its leader and holds the leader's last sequence: a restarted node has
// caught up.
func (c *JetStreamCluster) WaitStreamCurrent(i int, stream string, timeout time.Duration) error {
	return waitFor(timeout, 20*time.Millisecond, func() error {
		s := c.nodes[i].server()
		if s == nil {
			return fmt.Errorf("node %d stopped", i)
		}
		l := c.StreamLeader(stream)
		if l < 0 {
			return fmt.Errorf("no leader of stream %s", stream)
		}
		if !s.JetStreamIsStreamCurrent(c.cfg.Account, stream) {
			return fmt.Errorf("node %d not current on stream %s", i, stream)
		}
		want, ok := c.StreamState(l, stream)
		if !ok {
			return fmt.Errorf("leader state of %s unavailable", stream)
		}
		got, ok := c.StreamState(i, stream)
		if !ok {
			return fmt.Errorf("node %d holds no replica of %s", i, stream)
		}
		if got.LastSeq != want.LastSeq || got.Msgs != want.Msgs {
			return fmt.Errorf("node %d at %d msgs / last %d, leader at %d / %d", i, got.Msgs, got.LastSeq, want.Msgs, want.LastSeq)
		}
		return nil
	})
}

// waitIndex polls get until it returns an index other than -1 and except.
func waitIndex(timeout time.Duration, except int, get func() int, what string) (int, error) {
	found := -1
	err := waitFor(timeout, 5*time.Millisecond, func() error {
		found = get()
		if found < 0 || found == except {
			if except >= 0 {
				return fmt.Errorf("no %s other than node %d", what, except)
			}
			return fmt.Errorf("no %s", what)
		}
		return nil
	})
	return found, err
}

// waitFor polls check every interval until it returns nil or timeout
// passes, then returns its last error.
func waitFor(timeout, interval time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("embedded: after %v: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}
