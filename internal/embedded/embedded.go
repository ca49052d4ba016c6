// Package embedded runs one real NATS Streaming server and one real
// JetStream server inside the process: what `stanmigrate demo` ships, and
// what the test rigs under internal/testkit build their topologies on.
// Servers keep their ports and store directories across Restart so fault
// tests can stop and revive them the way an operator's deployment would.
package embedded

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"
	stand "github.com/nats-io/nats-streaming-server/server"
	"github.com/nats-io/nats-streaming-server/stores"
	"github.com/stanmigrate/stanmigrate/internal/freeport"
)

// ClusterID is the STAN cluster id used when none is given.
const ClusterID = "test-cluster"

// STANConfig describes an embedded NATS Streaming server.
type STANConfig struct {
	ClusterID string
	// Dir holds the file store. Empty means a memory store.
	Dir string
	// Limits are the store limits, as a STAN configuration file would set
	// them. Nil means unlimited everything (not STAN's own defaults, which
	// cap a server at 100 channels and would surprise a large fixture).
	Limits *stores.StoreLimits
	// NoMonitor starts the server without its HTTP monitoring port, like a
	// STAN server started without -m.
	NoMonitor bool
	// Configure, when set, may adjust the options before start (TLS, auth).
	Configure func(*stand.Options, *natsd.Options)
}

// STAN is a running (or stopped) embedded NATS Streaming server.
type STAN struct {
	cfg      STANConfig
	port     int
	httpPort int
	// monScheme is http, or https when Configure moved monitoring to its
	// TLS port.
	monScheme string
	mu        sync.Mutex
	srv       *stand.StanServer
}

// StartSTAN starts a NATS Streaming server on free loopback ports.
func StartSTAN(cfg STANConfig) (*STAN, error) {
	if cfg.ClusterID == "" {
		cfg.ClusterID = ClusterID
	}
	port, err := freeport.Port()
	if err != nil {
		return nil, err
	}
	s := &STAN{cfg: cfg, port: port}
	if !cfg.NoMonitor {
		if s.httpPort, err = freeport.Port(); err != nil {
			return nil, err
		}
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// Start (re)starts a stopped server on the same ports and store directory.
func (s *STAN) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("embedded STAN: already running")
	}
	sopts := stand.GetDefaultOptions()
	sopts.ID = s.cfg.ClusterID
	if s.cfg.Limits != nil {
		sopts.StoreLimits = *s.cfg.Limits.Clone()
	} else {
		sopts.StoreLimits = stores.StoreLimits{}
	}
	if s.cfg.Dir != "" {
		sopts.StoreType = stores.TypeFile
		sopts.FilestoreDir = s.cfg.Dir
	} else {
		sopts.StoreType = stores.TypeMemory
	}
	nopts := stand.DefaultNatsServerOptions
	nopts.Host = "127.0.0.1"
	nopts.Port = s.port
	nopts.NoSigs = true
	nopts.NoLog = true
	if s.httpPort > 0 {
		nopts.HTTPHost = "127.0.0.1"
		nopts.HTTPPort = s.httpPort
	}
	if s.cfg.Configure != nil {
		s.cfg.Configure(sopts, &nopts)
	}
	s.monScheme = "http"
	if nopts.HTTPSPort > 0 {
		s.monScheme = "https"
	}
	srv, err := stand.RunServerWithOpts(sopts, &nopts)
	if err != nil {
		return fmt.Errorf("embedded STAN: %w", err)
	}
	s.srv = srv
	return nil
}

// Stop shuts the server down, keeping its store for a later Start.
func (s *STAN) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv = nil
	}
}

// Restart stops and starts the server on the same ports and store.
func (s *STAN) Restart() error {
	s.Stop()
	return s.Start()
}

// ClusterID is the server's cluster id.
func (s *STAN) ClusterID() string { return s.cfg.ClusterID }

// URL is the NATS URL STAN clients connect to.
func (s *STAN) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// MonitorURL is the monitoring base URL (https when a Configure hook moved
// monitoring to TLS), empty without monitoring.
func (s *STAN) MonitorURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.httpPort == 0 {
		return ""
	}
	return fmt.Sprintf("%s://127.0.0.1:%d", s.monScheme, s.httpPort)
}

// Dir is the file store directory (empty for a memory store).
func (s *STAN) Dir() string { return s.cfg.Dir }

// JetStreamConfig describes an embedded JetStream-enabled nats-server.
type JetStreamConfig struct {
	// Dir holds the JetStream file store; required.
	Dir string
	// MaxStore caps JetStream file storage in bytes (0: server default).
	MaxStore int64
	// Disabled starts a plain nats-server without JetStream, to test how
	// the tool reacts to a target that cannot take streams.
	Disabled bool
	// Configure, when set, may adjust the options before start.
	Configure func(*natsd.Options)
}

// JetStream is a running (or stopped) embedded nats-server with JetStream.
type JetStream struct {
	cfg  JetStreamConfig
	port int
	mu   sync.Mutex
	srv  *natsd.Server
}

// StartJetStream starts a JetStream server on a free loopback port.
func StartJetStream(cfg JetStreamConfig) (*JetStream, error) {
	if cfg.Dir == "" && !cfg.Disabled {
		return nil, errors.New("embedded JetStream: a store directory is required")
	}
	port, err := freeport.Port()
	if err != nil {
		return nil, err
	}
	j := &JetStream{cfg: cfg, port: port}
	if err := j.Start(); err != nil {
		return nil, err
	}
	return j, nil
}

// Start (re)starts a stopped server on the same port and store directory.
func (j *JetStream) Start() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.srv != nil {
		return errors.New("embedded JetStream: already running")
	}
	opts := &natsd.Options{
		ServerName: "js-" + strconv.Itoa(j.port),
		Host:       "127.0.0.1",
		Port:       j.port,
		NoSigs:     true,
		NoLog:      true,
		JetStream:  !j.cfg.Disabled,
		StoreDir:   j.cfg.Dir,
	}
	if j.cfg.MaxStore > 0 {
		opts.JetStreamMaxStore = j.cfg.MaxStore
	}
	if j.cfg.Configure != nil {
		j.cfg.Configure(opts)
	}
	srv, err := natsd.NewServer(opts)
	if err != nil {
		return fmt.Errorf("embedded JetStream: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return errors.New("embedded JetStream: not ready after 10s")
	}
	j.srv = srv
	return nil
}

// Stop shuts the server down, keeping its store for a later Start.
func (j *JetStream) Stop() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.srv != nil {
		j.srv.Shutdown()
		j.srv.WaitForShutdown()
		j.srv = nil
	}
}

// Restart stops and starts the server on the same port and store.
func (j *JetStream) Restart() error {
	j.Stop()
	return j.Start()
}

// URL is the client URL.
func (j *JetStream) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", j.port) }

// Version is the nats-server version compiled in.
func (j *JetStream) Version() string { return natsd.VERSION }

// Pair is a STAN source and a JetStream target, the shape of every
// migration test and of the demo.
type Pair struct {
	STAN      *STAN
	JetStream *JetStream
}

// StartPair starts both servers with file stores under root.
func StartPair(root string, limits *stores.StoreLimits) (*Pair, error) {
	st, err := StartSTAN(STANConfig{Dir: filepath.Join(root, "stan"), Limits: limits})
	if err != nil {
		return nil, err
	}
	js, err := StartJetStream(JetStreamConfig{Dir: filepath.Join(root, "jetstream")})
	if err != nil {
		st.Stop()
		return nil, err
	}
	return &Pair{STAN: st, JetStream: js}, nil
}

// Stop stops both servers.
func (p *Pair) Stop() {
	p.JetStream.Stop()
	p.STAN.Stop()
}
