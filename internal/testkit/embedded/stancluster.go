package embedded

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"
	stand "github.com/nats-io/nats-streaming-server/server"
	"github.com/nats-io/nats-streaming-server/stores"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go/pb"
	"github.com/stanmigrate/stanmigrate/internal/freeport"
)

// STANNode is one NATS Streaming server of a STANCluster or STANFT, with
// the NATS server it embeds (routed to the other nodes' NATS servers) and
// its monitoring port. It keeps its ports and directories across Restart.
type STANNode struct {
	index       int
	name        string
	port        int
	clusterPort int
	httpPort    int
	opts        func(n *STANNode) (*stand.Options, *natsd.Options)
	mu          sync.Mutex
	srv         *stand.StanServer
	// probe is how Serving connects (the credentials STAN's own
	// connections use) and what it asks.
	probe    []nats.Option
	pingSubj string
	// https: monitoring serves HTTPS (a TLS Security moves it there).
	https bool
}

func newSTANNode(index int, name string) (*STANNode, error) {
	n := &STANNode{index: index, name: name}
	var err error
	for _, p := range []*int{&n.port, &n.clusterPort, &n.httpPort} {
		if *p, err = freeport.Port(); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// natsOptions are the options of the NATS server node n embeds, routed to
// every node of nodes.
func (n *STANNode) natsOptions(cluster string, nodes []*STANNode) *natsd.Options {
	o := stand.DefaultNatsServerOptions
	o.ServerName = n.name
	o.Host = "127.0.0.1"
	o.Port = n.port
	o.HTTPHost = "127.0.0.1"
	o.HTTPPort = n.httpPort
	o.Cluster = natsd.ClusterOpts{Name: cluster, Host: "127.0.0.1", Port: n.clusterPort}
	for _, p := range nodes {
		if p != n {
			o.Routes = append(o.Routes, &url.URL{Scheme: "nats", Host: "127.0.0.1:" + strconv.Itoa(p.clusterPort)})
		}
	}
	return &o
}

// Start starts a stopped node on its ports and directories. A clustered
// node returns before the cluster has a leader; an FT node returns in
// standby, before it has tried for the store lock.
func (n *STANNode) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		return fmt.Errorf("embedded STAN: %s already running", n.name)
	}
	sopts, nopts := n.opts(n)
	probe, err := clientOptions(sopts, nopts)
	if err != nil {
		return fmt.Errorf("embedded STAN: %s: %w", n.name, err)
	}
	srv, err := stand.RunServerWithOpts(sopts, nopts)
	if err != nil {
		return fmt.Errorf("embedded STAN: %s: %w", n.name, err)
	}
	n.srv = srv
	n.https = nopts.HTTPSPort != 0
	n.probe = probe
	n.pingSubj = sopts.DiscoverPrefix + "." + sopts.ID + ".pings"
	return nil
}

// pingProbe is a STAN client PING for a connection the server does not
// know: the server that leads (or is FT active) answers it with an error,
// and registers nothing.
var pingProbe, _ = (&pb.Ping{ConnID: []byte("embedded-probe")}).Marshal()

// Serving checks that a STAN client connecting through this node's NATS
// server reaches a STAN server ready for it: the leader (or the FT active
// server) answers a client PING sent here. A server reports the Raft role
// Leader or the state FT_ACTIVE before it has subscribed to client
// requests, and its subscriptions take a moment more to reach the other
// nodes over the routes; a client connecting in between fails at once
// ("connect request timeout": no responders).
func (n *STANNode) Serving() error {
	n.mu.Lock()
	running, probe, subj := n.srv != nil, n.probe, n.pingSubj
	n.mu.Unlock()
	if !running {
		return fmt.Errorf("%s stopped", n.name)
	}
	opts := append(append([]nats.Option(nil), probe...), nats.Name("embedded-probe"), nats.Timeout(time.Second),
		nats.NoReconnect(), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	nc, err := nats.Connect(n.URL(), opts...)
	if err != nil {
		return fmt.Errorf("%s: %w", n.name, err)
	}
	defer nc.Close()
	if _, err := nc.Request(subj, pingProbe, 500*time.Millisecond); err != nil {
		return fmt.Errorf("%s: STAN not answering: %w", n.name, err)
	}
	return nil
}

// waitServing waits until every running node of nodes is Serving.
func waitServing(nodes []*STANNode, timeout time.Duration) error {
	return waitFor(timeout, 20*time.Millisecond, func() error {
		for _, n := range nodes {
			if n.Running() {
				if err := n.Serving(); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// clientOptions are the NATS options of a client authenticating the way
// the STAN server's own connections do (server.go createNatsClientConn).
func clientOptions(s *stand.Options, n *natsd.Options) ([]nats.Option, error) {
	var o []nats.Option
	if s.TLSServerName != "" || s.TLSSkipVerify {
		o = append(o, nats.Secure(&tls.Config{ServerName: s.TLSServerName, InsecureSkipVerify: s.TLSSkipVerify}))
	} else if s.Secure {
		o = append(o, nats.Secure())
	}
	if s.NATSCredentials != "" {
		o = append(o, nats.UserCredentials(s.NATSCredentials))
	}
	o = append(o, s.NATSClientOpts...)
	user, pass, token := n.Username, n.Password, n.Authorization
	if user == "" {
		user = s.Username
	}
	if pass == "" {
		pass = s.Password
	}
	if token == "" {
		token = s.Token
	}
	if user != "" {
		o = append(o, nats.UserInfo(user, pass))
	}
	if token != "" {
		o = append(o, nats.Token(token))
	}
	if s.NKeySeedFile != "" {
		nk, err := nats.NkeyOptionFromSeed(s.NKeySeedFile)
		if err != nil {
			return nil, err
		}
		o = append(o, nk)
	}
	if s.ClientCA != "" {
		o = append(o, nats.RootCAs(s.ClientCA))
	}
	if s.ClientCert != "" {
		o = append(o, nats.ClientCert(s.ClientCert, s.ClientKey))
	}
	return o, nil
}

// Shutdown stops the node (and the NATS server it embeds, closing the
// connections of clients connected through it), keeping its stores.
func (n *STANNode) Shutdown() {
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
	}
}

// Restart shuts the node down and starts it again on the same ports and
// stores.
func (n *STANNode) Restart() error {
	n.Shutdown()
	return n.Start()
}

// Running says whether the node is started.
func (n *STANNode) Running() bool { return n.Server() != nil }

// Server is the running server, nil when the node is stopped.
func (n *STANNode) Server() *stand.StanServer {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// Index is the node's position in its cluster or FT group.
func (n *STANNode) Index() int { return n.index }

// Name is the node's name (its NATS server name, and its Raft node ID in a
// cluster).
func (n *STANNode) Name() string { return n.name }

// URL is the client URL of the NATS server the node embeds.
func (n *STANNode) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// MonitorURL is the node's monitoring base URL: http, or https when a
// TLS Security moved monitoring to HTTPS.
func (n *STANNode) MonitorURL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	scheme := "http"
	if n.https {
		scheme = "https"
	}
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme, n.httpPort)
}

// Serverz is what the node's /streaming/serverz reports, asked in process
// (no HTTP, so TLS and a port being shut down do not matter).
func (n *STANNode) Serverz() (*stand.Serverz, error) {
	srv := n.Server()
	if srv == nil {
		return nil, fmt.Errorf("%s stopped", n.name)
	}
	req, err := http.NewRequest(http.MethodGet, stand.ServerPath, nil)
	if err != nil {
		return nil, err
	}
	w := &recorder{header: http.Header{}, status: http.StatusOK}
	srv.HandleServerz(w, req)
	if w.status != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %d %s", n.name, stand.ServerPath, w.status, w.body.String())
	}
	var z stand.Serverz
	if err := json.Unmarshal(w.body.Bytes(), &z); err != nil {
		return nil, fmt.Errorf("%s %s: %w", n.name, stand.ServerPath, err)
	}
	return &z, nil
}

// recorder is an in-memory http.ResponseWriter.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }

// monitorClient is short-timed: a node being shut down must not stall a
// poll.
var monitorClient = &http.Client{Timeout: 2 * time.Second}

// GetServerz reads /streaming/serverz from a STAN monitoring base URL.
func GetServerz(monitorURL string) (*stand.Serverz, error) {
	resp, err := monitorClient.Get(monitorURL + stand.ServerPath)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", stand.ServerPath, resp.Status)
	}
	var z stand.Serverz
	if err := json.NewDecoder(resp.Body).Decode(&z); err != nil {
		return nil, fmt.Errorf("%s: %w", stand.ServerPath, err)
	}
	return &z, nil
}

// IsFTActive reads /streaming/isFTActive from a STAN monitoring base URL:
// 200 on the active server of an FT group, 204 otherwise (standby, and
// also a standalone or clustered server).
func IsFTActive(monitorURL string) (bool, error) {
	resp, err := monitorClient.Get(monitorURL + stand.IsFTActivePath)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNoContent:
		return false, nil
	}
	return false, fmt.Errorf("%s: %s", stand.IsFTActivePath, resp.Status)
}

// STANClusterConfig describes an embedded clustered (Raft) NATS Streaming
// server.
type STANClusterConfig struct {
	ClusterID string
	// Dir is the root directory; node i keeps its message store in
	// Dir/node<i>/store and its Raft log in Dir/node<i>/raft. Required.
	Dir string
	// Nodes is the number of servers, 3 when zero.
	Nodes int
	// Limits are the store limits; nil means unlimited (see STANConfig).
	Limits *stores.StoreLimits
	// Raft timings; zero keeps nats-streaming-server's defaults (heartbeat
	// and election 2s, lease 1s). Lease must not exceed heartbeat.
	RaftHeartbeatTimeout, RaftElectionTimeout, RaftLeaseTimeout time.Duration
	// Configure, when set, may adjust node i's options before every start.
	Configure func(i int, s *stand.Options, n *natsd.Options)
}

// FastRaft returns cfg with Raft timings four times shorter than the
// server's defaults (heartbeat and election 500ms, lease 250ms): a leader
// shut down is replaced in about 1.5s instead of about 6s.
func (cfg STANClusterConfig) FastRaft() STANClusterConfig {
	cfg.RaftHeartbeatTimeout = 500 * time.Millisecond
	cfg.RaftElectionTimeout = 500 * time.Millisecond
	cfg.RaftLeaseTimeout = 250 * time.Millisecond
	return cfg
}

// STANCluster is a clustered NATS Streaming server: nodes replicating
// through Raft, each embedding a NATS server routed to the others, so
// clients given every URL fail over between them.
type STANCluster struct {
	cfg   STANClusterConfig
	nodes []*STANNode
}

// StartSTANCluster starts the nodes and waits for a leader.
func StartSTANCluster(cfg STANClusterConfig) (*STANCluster, error) {
	if cfg.Dir == "" {
		return nil, errors.New("embedded STAN cluster: a store directory is required")
	}
	if cfg.ClusterID == "" {
		cfg.ClusterID = ClusterID
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	c := &STANCluster{cfg: cfg}
	for i := 0; i < cfg.Nodes; i++ {
		n, err := newSTANNode(i, fmt.Sprintf("stan-n%d", i))
		if err != nil {
			return nil, err
		}
		n.opts = c.options
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		for _, d := range []string{c.storeDir(n), c.raftDir(n)} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, err
			}
		}
	}
	if err := c.Start(); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Start starts every stopped node at once (after Stop, a whole-cluster
// restart) and waits until a leader is settled.
func (c *STANCluster) Start() error {
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		if n.Running() {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = n.Start() }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	_, err := c.WaitSettled(30 * time.Second)
	return err
}

func (c *STANCluster) storeDir(n *STANNode) string {
	return filepath.Join(c.cfg.Dir, fmt.Sprintf("node%d", n.index), "store")
}

func (c *STANCluster) raftDir(n *STANNode) string {
	return filepath.Join(c.cfg.Dir, fmt.Sprintf("node%d", n.index), "raft")
}

func (c *STANCluster) options(n *STANNode) (*stand.Options, *natsd.Options) {
	s := stand.GetDefaultOptions()
	s.ID = c.cfg.ClusterID
	s.StoreType = stores.TypeFile
	s.FilestoreDir = c.storeDir(n)
	s.StoreLimits = stores.StoreLimits{}
	if c.cfg.Limits != nil {
		s.StoreLimits = *c.cfg.Limits.Clone()
	}
	peers := make([]string, len(c.nodes))
	for i, p := range c.nodes {
		peers[i] = p.name
	}
	s.Clustering = stand.ClusteringOptions{
		Clustered:            true,
		NodeID:               n.name,
		Peers:                peers,
		RaftLogPath:          c.raftDir(n),
		LogCacheSize:         stand.DefaultLogCacheSize,
		LogSnapshots:         stand.DefaultLogSnapshots,
		TrailingLogs:         stand.DefaultTrailingLogs,
		RaftHeartbeatTimeout: c.cfg.RaftHeartbeatTimeout,
		RaftElectionTimeout:  c.cfg.RaftElectionTimeout,
		RaftLeaseTimeout:     c.cfg.RaftLeaseTimeout,
	}
	o := n.natsOptions("stan-"+c.cfg.ClusterID, c.nodes)
	if c.cfg.Configure != nil {
		c.cfg.Configure(n.index, s, o)
	}
	return s, o
}

// ClusterID is the STAN cluster id.
func (c *STANCluster) ClusterID() string { return c.cfg.ClusterID }

// Size is the number of nodes.
func (c *STANCluster) Size() int { return len(c.nodes) }

// Node is node i.
func (c *STANCluster) Node(i int) *STANNode { return c.nodes[i] }

// URLs is every node's client URL, comma-joined.
func (c *STANCluster) URLs() string { return strings.Join(c.URLList(), ",") }

// URLList is every node's client URL.
func (c *STANCluster) URLList() []string { return nodeURLs(c.nodes) }

// MonitorURLs is every node's monitoring base URL, by node index.
func (c *STANCluster) MonitorURLs() []string { return nodeMonitorURLs(c.nodes) }

// Leader is the index of the one running node whose serverz reports the
// Raft role "Leader", -1 when none (or, briefly, more than one) does.
func (c *STANCluster) Leader() int {
	found := -1
	for i, n := range c.nodes {
		if !n.Running() {
			continue
		}
		if z, err := n.Serverz(); err == nil && z.Role == "Leader" {
			if found >= 0 {
				return -1
			}
			found = i
		}
	}
	return found
}

// WaitLeader waits for a leader other than node except (-1: any) and
// returns its index. It goes by the Raft role alone, the moment an
// election ends; WaitSettled also waits until clients can reach it.
func (c *STANCluster) WaitLeader(except int, timeout time.Duration) (int, error) {
	return waitIndex(timeout, except, c.Leader, "STAN cluster leader")
}

// WaitSettled waits until one running node reports the role Leader,
// every other running node Follower (a node that lost its leader reports
// Candidate until the election ends), and a client can reach the leader
// through every running node (see STANNode.Serving); it returns the
// leader's index.
func (c *STANCluster) WaitSettled(timeout time.Duration) (int, error) {
	leader := -1
	err := waitFor(timeout, 20*time.Millisecond, func() error {
		leader = -1
		for i, n := range c.nodes {
			if !n.Running() {
				continue
			}
			z, err := n.Serverz()
			if err != nil {
				return fmt.Errorf("node %d: %w", i, err)
			}
			switch {
			case z.Role == "Leader" && leader < 0:
				leader = i
			case z.Role != "Follower":
				return fmt.Errorf("node %d is %s", i, z.Role)
			}
		}
		if leader < 0 {
			return errors.New("no STAN cluster leader")
		}
		for _, n := range c.nodes {
			if n.Running() {
				if err := n.Serving(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return leader, err
}

// Shutdown stops node i.
func (c *STANCluster) Shutdown(i int) { c.nodes[i].Shutdown() }

// Restart restarts node i on its ports and stores.
func (c *STANCluster) Restart(i int) error { return c.nodes[i].Restart() }

// RestartLeader shuts the leader down, waits for another node to be
// elected, starts the old leader again as a follower, waits until the
// cluster is settled and returns the old and new leaders' indexes.
func (c *STANCluster) RestartLeader(timeout time.Duration) (old, leader int, err error) {
	if old, err = c.WaitLeader(-1, timeout); err != nil {
		return -1, -1, err
	}
	c.nodes[old].Shutdown()
	if leader, err = c.WaitLeader(old, timeout); err != nil {
		return old, -1, err
	}
	if err = c.nodes[old].Start(); err != nil {
		return old, leader, err
	}
	leader, err = c.WaitSettled(timeout)
	return old, leader, err
}

// Stop shuts every node down.
func (c *STANCluster) Stop() { stopNodes(c.nodes) }

func nodeURLs(nodes []*STANNode) []string {
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.URL()
	}
	return urls
}

func nodeMonitorURLs(nodes []*STANNode) []string {
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.MonitorURL()
	}
	return urls
}

func stopNodes(nodes []*STANNode) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.Shutdown() }()
	}
	wg.Wait()
}
