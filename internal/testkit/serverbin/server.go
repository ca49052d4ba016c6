package serverbin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/freeport"
)

// Options configure a nats-server process. The zero value is a JetStream
// server on loopback with fresh temporary directories.
type Options struct {
	// StoreDir is the JetStream store directory, kept across Kill and
	// Restart. Empty: a new temporary directory (t.TempDir() under Start).
	StoreDir string
	// Dir receives the configuration file and the server's log. Empty: a
	// new temporary directory (t.TempDir() under Start).
	Dir string
	// Name is the server_name (default "serverbin-<line>").
	Name string
	// JetStream is a configuration fragment placed inside the jetstream
	// block, after store_dir: "max_file_store: 1GB", "domain: hub".
	JetStream string
	// Config is a configuration fragment appended at the top level after
	// the rig's own settings (accounts, authorization, cluster, debug, …).
	// A key the rig already set (listen, http, server_name, jetstream) is
	// overridden by a later one; use the JetStream field to extend that
	// block instead of replacing it.
	Config string
	// Port and MonitorPort fix the client and HTTP monitoring ports; 0 picks
	// free ones. They stay the same across Restart.
	Port, MonitorPort int
	// ReadyTimeout bounds the wait for /healthz to answer OK (default 60s).
	ReadyTimeout time.Duration
}

// startMarker begins the log of each start in the log file.
const startMarker = "=== serverbin: start "

// Server is a nats-server process of one release line.
type Server struct {
	line     Line
	version  string
	bin      string
	opts     Options
	cfgPath  string
	logPath  string
	starts   int
	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	exitErr  error
	reported string // version the running server reported in /varz
}

// Launch builds (or reuses) the line's binary and starts a server. It is
// Start without a testing.TB: the caller must Stop the server, and must set
// StoreDir and Dir or live with directories under os.TempDir.
func Launch(l Line, opts Options) (*Server, error) {
	bin, err := Binary(l)
	if err != nil {
		return nil, err
	}
	version, _ := l.Version()
	if opts.StoreDir == "" {
		if opts.StoreDir, err = os.MkdirTemp("", "serverbin-store-"); err != nil {
			return nil, err
		}
	}
	if opts.Dir == "" {
		if opts.Dir, err = os.MkdirTemp("", "serverbin-"); err != nil {
			return nil, err
		}
	}
	if opts.Name == "" {
		opts.Name = "serverbin-" + string(l)
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	s := &Server{
		line: l, version: version, bin: bin, opts: opts,
		cfgPath: filepath.Join(opts.Dir, "nats-server.conf"),
		logPath: filepath.Join(opts.Dir, "nats-server.log"),
	}
	pickPorts := opts.Port == 0 || opts.MonitorPort == 0
	// A free port can be taken by another process between our probe and
	// the server's bind: try again with new ports when the ports were ours
	// to choose.
	for attempt := 1; ; attempt++ {
		if opts.Port == 0 {
			if s.opts.Port, err = freeport.Port(); err != nil {
				return nil, err
			}
		}
		if opts.MonitorPort == 0 {
			if s.opts.MonitorPort, err = freeport.Port(); err != nil {
				return nil, err
			}
		}
		if err = s.writeConfig(); err != nil {
			return nil, err
		}
		err = s.start()
		if err == nil || !pickPorts || attempt == 3 || !s.bindFailed() {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Start starts a server of the line for the test, and stops it when the
// test ends (its log's tail is logged if the test failed). A line whose
// binary cannot be built fails the test, naming the line, the version and
// the end of the build output.
func Start(t testing.TB, l Line, opts Options) *Server {
	t.Helper()
	if opts.StoreDir == "" {
		opts.StoreDir = t.TempDir()
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	s, err := Launch(l, opts)
	if err != nil {
		t.Fatalf("nats-server %s: %v", l, err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("nats-server %s: stop: %v", l, err)
		}
		if t.Failed() {
			t.Logf("nats-server %s (v%s) log %s, last lines:\n%s", l, s.version, s.logPath, s.LogTail(40))
		}
	})
	return s
}

func (s *Server) writeConfig() error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by the serverbin test rig: nats-server %s (v%s).\n", s.line, s.version)
	fmt.Fprintf(&b, "server_name: %q\n", s.opts.Name)
	fmt.Fprintf(&b, "listen: \"127.0.0.1:%d\"\n", s.opts.Port)
	fmt.Fprintf(&b, "http: \"127.0.0.1:%d\"\n", s.opts.MonitorPort)
	b.WriteString("jetstream {\n")
	fmt.Fprintf(&b, "  store_dir: %q\n", s.opts.StoreDir)
	if f := strings.TrimSpace(s.opts.JetStream); f != "" {
		b.WriteString("  " + strings.ReplaceAll(f, "\n", "\n  ") + "\n")
	}
	b.WriteString("}\n")
	if f := strings.TrimSpace(s.opts.Config); f != "" {
		b.WriteString(f + "\n")
	}
	return os.WriteFile(s.cfgPath, []byte(b.String()), 0o644)
}

// start runs the process and waits until it is healthy.
func (s *Server) start() error {
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return errors.New("serverbin: server already running")
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.starts++
	fmt.Fprintf(logf, startMarker+"#%d of nats-server %s (v%s) at %s: %s -c %s\n",
		s.starts, s.line, s.version, time.Now().Format(time.RFC3339Nano), s.bin, s.cfgPath)
	cmd := exec.Command(s.bin, "-c", s.cfgPath)
	cmd.Dir = s.opts.Dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.mu.Unlock()
		return fmt.Errorf("serverbin: start nats-server %s: %w", s.line, err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited, s.exitErr, s.reported = cmd, exited, nil, ""
	go func() {
		err := cmd.Wait()
		logf.Close()
		s.mu.Lock()
		s.exitErr = err
		s.mu.Unlock()
		close(exited)
	}()
	s.mu.Unlock()

	if err := s.waitReady(exited); err != nil {
		s.Kill()
		return fmt.Errorf("serverbin: nats-server %s (v%s) not ready: %w\nconfig %s\nlog %s, last lines:\n%s",
			s.line, s.version, err, s.cfgPath, s.logPath, s.LogTail(30))
	}
	return nil
}

func (s *Server) waitReady(exited <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(s.opts.ReadyTimeout)
	var last error
	for {
		select {
		case <-exited:
			s.mu.Lock()
			err := s.exitErr
			s.mu.Unlock()
			return fmt.Errorf("process exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no healthy /healthz after %s (last: %v)", s.opts.ReadyTimeout, last)
		}
		if last = s.healthy(client); last == nil {
			v, err := s.varzVersion(client)
			if err != nil {
				return err
			}
			s.mu.Lock()
			s.reported = v
			s.mu.Unlock()
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (s *Server) healthy(c *http.Client) error {
	resp, err := c.Get(s.MonitorURL() + "/healthz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/healthz: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func (s *Server) varzVersion(c *http.Client) (string, error) {
	resp, err := c.Get(s.MonitorURL() + "/varz")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var v struct {
		Version string `json:"version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", fmt.Errorf("/varz: %w", err)
	}
	return v.Version, nil
}

// Line is the server's release line.
func (s *Server) Line() Line { return s.line }

// Version is the version the running server reported (/varz) when it last
// became ready, such as "2.10.29"; the pinned version before that.
func (s *Server) Version() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reported != "" {
		return s.reported
	}
	return s.version
}

// URL is the client URL, nats://127.0.0.1:<port>.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.opts.Port) }

// MonitorURL is the HTTP monitoring base URL.
func (s *Server) MonitorURL() string { return fmt.Sprintf("http://127.0.0.1:%d", s.opts.MonitorPort) }

// Port is the client port; MonitorPort the HTTP monitoring port.
func (s *Server) Port() int        { return s.opts.Port }
func (s *Server) MonitorPort() int { return s.opts.MonitorPort }

// StoreDir is the JetStream store directory.
func (s *Server) StoreDir() string { return s.opts.StoreDir }

// ConfigPath is the configuration file the server runs with.
func (s *Server) ConfigPath() string { return s.cfgPath }

// LogPath is the file the server's output goes to (across restarts).
func (s *Server) LogPath() string { return s.logPath }

// Binary is the nats-server executable.
func (s *Server) Binary() string { return s.bin }

// PID is the running process's id, 0 when stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Running tells whether the process is up (started and not yet exited).
func (s *Server) Running() bool {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// Kill SIGKILLs the process, like a crash, and waits for it to be gone.
// Killing a stopped server does nothing.
func (s *Server) Kill() error {
	return s.signalAndWait(syscall.SIGKILL, 0)
}

// Stop SIGTERMs the process and waits for a clean shutdown (SIGKILL after
// 30 seconds, reported as an error). Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	return s.signalAndWait(syscall.SIGTERM, 30*time.Second)
}

// Restart stops the server if it runs, then starts it again with the same
// ports, configuration and store directory, and waits until it is healthy.
// After Kill it is the recovery from a crash.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	// Another test may be probing the port for freeport.Port just now: that
	// lasts an instant, so try again for a while before giving up.
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		if err = s.start(); err == nil || !s.bindFailed() {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

func (s *Server) signalAndWait(sig syscall.Signal, grace time.Duration) error {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	var err error
	select {
	case <-exited:
	default:
		if e := cmd.Process.Signal(sig); e != nil && !errors.Is(e, os.ErrProcessDone) {
			err = e
		}
		if grace > 0 {
			select {
			case <-exited:
			case <-time.After(grace):
				cmd.Process.Kill()
				err = fmt.Errorf("serverbin: nats-server %s did not exit within %s of %v; killed", s.line, grace, sig)
			}
		}
		<-exited
	}
	s.mu.Lock()
	if s.cmd == cmd {
		s.cmd, s.exited = nil, nil
	}
	s.mu.Unlock()
	return err
}

// bindFailed tells whether the last start failed for a port in use.
func (s *Server) bindFailed() bool {
	b, _ := os.ReadFile(s.logPath)
	log := string(b)
	if i := strings.LastIndex(log, startMarker); i >= 0 {
		log = log[i:]
	}
	return strings.Contains(log, "address already in use")
}

// LogTail returns the last n lines of the server's log.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return tail(string(b), n)
}
