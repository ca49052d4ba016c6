package serverbin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/testkit/serverbin"
	"github.com/stanmigrate/stanmigrate/internal/testkit/topotest"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		buildHelper()
		return
	}
	// Build every line in the background while the quick tests run.
	serverbin.Prepare()
	code := m.Run()
	fmt.Print(serverbin.Summary())
	os.Exit(code)
}

// TestPins checks that each line's nested module pins a release of that
// line, and 2.10 at least 2.10.28.
func TestPins(t *testing.T) {
	for _, l := range serverbin.Lines() {
		v, err := l.Version()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(v, string(l)+".") {
			t.Errorf("line %s pins v%s, not a %s release", l, v, l)
		}
		if strings.Contains(v, "-") {
			t.Errorf("line %s pins the pre-release v%s", l, v)
		}
		dir, _ := l.ModuleDir()
		if _, err := os.Stat(filepath.Join(dir, "go.sum")); err != nil {
			t.Errorf("line %s: %v", l, err)
		}
	}
	v, _ := serverbin.Line2_10.Version()
	if patch, _ := strconv.Atoi(strings.TrimPrefix(v, "2.10.")); patch < 28 {
		t.Errorf("line 2.10 pins v%s, want >= 2.10.28", v)
	}
}

// TestNestedModulesStayOutOfMainModule checks that `./...` of the main
// module (go vet, go test) does not reach into the nested modules.
func TestNestedModulesStayOutOfMainModule(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	cmd := exec.Command("go", "list", "-find", "./...")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	pkgs := strings.Fields(string(out))
	if !contains(pkgs, "github.com/stanmigrate/stanmigrate/internal/testkit/serverbin") {
		t.Fatalf("go list ./... at %s does not list serverbin itself:\n%s", root, out)
	}
	for _, p := range pkgs {
		if strings.Contains(p, "/serverbin/lines") {
			t.Errorf("main module's ./... includes the nested module package %s", p)
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestCrashRestart runs each line's server, stores messages in a file
// stream, SIGKILLs the process and restarts it: the messages are still there.
func TestCrashRestart(t *testing.T) {
	for _, l := range serverbin.Lines() {
		t.Run(string(l), func(t *testing.T) {
			t.Parallel()
			s := serverbin.Start(t, l, serverbin.Options{})
			pinned, _ := l.Version()
			if s.Version() != pinned || !strings.HasPrefix(s.Version(), string(l)+".") {
				t.Fatalf("server reports version %s, want %s (line %s)", s.Version(), pinned, l)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			nc, js := connect(t, s)
			if nc.ConnectedServerVersion() != pinned {
				t.Errorf("INFO says version %s, want %s", nc.ConnectedServerVersion(), pinned)
			}
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
				Name: "CRASH", Subjects: []string{"crash.>"}, Storage: jetstream.FileStorage,
			}); err != nil {
				t.Fatal(err)
			}
			const n = 20
			for i := 1; i <= n; i++ {
				ack, err := js.Publish(ctx, fmt.Sprintf("crash.%d", i%3), []byte(fmt.Sprintf("msg %d", i)))
				if err != nil {
					t.Fatal(err)
				}
				if ack.Sequence != uint64(i) {
					t.Fatalf("ack seq %d, want %d", ack.Sequence, i)
				}
			}
			nc.Close()

			pid := s.PID()
			if err := s.Kill(); err != nil {
				t.Fatal(err)
			}
			if s.Running() || s.PID() != 0 {
				t.Fatal("server still running after Kill")
			}
			port := s.Port()
			if err := s.Restart(); err != nil {
				t.Fatal(err)
			}
			if s.PID() == pid || s.Port() != port {
				t.Fatalf("restart: pid %d->%d, port %d->%d", pid, s.PID(), port, s.Port())
			}

			nc, js = connect(t, s)
			st, err := js.Stream(ctx, "CRASH")
			if err != nil {
				t.Fatal(err)
			}
			info, err := st.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.State.Msgs != n || info.State.LastSeq != n {
				t.Fatalf("after SIGKILL and restart: %d messages, last seq %d; want %d, %d", info.State.Msgs, info.State.LastSeq, n, n)
			}
			for i := 1; i <= n; i++ {
				m, err := st.GetMsg(ctx, uint64(i))
				if err != nil {
					t.Fatalf("get %d: %v", i, err)
				}
				if want := fmt.Sprintf("msg %d", i); string(m.Data) != want || m.Subject != fmt.Sprintf("crash.%d", i%3) {
					t.Fatalf("seq %d: %s %q, want %q", i, m.Subject, m.Data, want)
				}
			}
			if ack, err := js.Publish(ctx, "crash.x", []byte("after")); err != nil || ack.Sequence != n+1 {
				t.Fatalf("publish after restart: %v %v", ack, err)
			}
			nc.Close()

			// A clean stop and restart as well.
			if err := s.Stop(); err != nil {
				t.Fatal(err)
			}
			if err := s.Restart(); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(s.LogTail(1000), "start #3") {
				t.Errorf("log %s does not show three starts", s.LogPath())
			}
		})
	}
}

// answer is how a server answered a JetStream publish.
type answer struct {
	Duplicate bool   // a PubAck with "duplicate": true
	Seq       uint64 // the PubAck's sequence
	ErrCode   int    // the JetStream err_code of an error answer, 0 for an ack
	Desc      string // the error's description (not compared)
}

func (a answer) same(b answer) bool {
	return a.Duplicate == b.Duplicate && a.Seq == b.Seq && a.ErrCode == b.ErrCode
}

func (a answer) String() string {
	if a.ErrCode != 0 {
		return fmt.Sprintf("error %d (%s)", a.ErrCode, a.Desc)
	}
	if a.Duplicate {
		return fmt.Sprintf("duplicate ack seq %d", a.Seq)
	}
	return fmt.Sprintf("ack seq %d", a.Seq)
}

// JSStreamWrongLastSequenceErrF, "wrong last sequence: {seq}".
const errWrongLastSeq = 10071

// resendWant is how each line answers the resend of stored message 2 to a
// stream whose last sequence is 3: with Nats-Expected-Last-Sequence: 1
// only, and with it plus message 2's Nats-Msg-Id (inside the duplicate
// window). Before 2.12 nats-server checks the message id first and answers
// a duplicate ack; from 2.12 on it checks the expected last sequence first.
var resendWant = map[serverbin.Line]struct{ seqOnly, seqAndID answer }{
	serverbin.Line2_10: {answer{ErrCode: errWrongLastSeq}, answer{Duplicate: true, Seq: 2}},
	serverbin.Line2_11: {answer{ErrCode: errWrongLastSeq}, answer{Duplicate: true, Seq: 2}},
	serverbin.Line2_12: {answer{ErrCode: errWrongLastSeq}, answer{ErrCode: errWrongLastSeq}},
	serverbin.Line2_15: {answer{ErrCode: errWrongLastSeq}, answer{ErrCode: errWrongLastSeq}},
}

// TestResendWithExpectedLastSequence records what each line answers when
// a message already stored is published again with the expected last
// sequence it was first published with, as a migrator resuming after an
// unconfirmed publish does. It checks again after a SIGKILL and restart
// (the duplicate window is rebuilt from the store).
func TestResendWithExpectedLastSequence(t *testing.T) {
	for _, l := range serverbin.Lines() {
		t.Run(string(l), func(t *testing.T) {
			t.Parallel()
			want, ok := resendWant[l]
			if !ok {
				t.Fatalf("no recorded resend behaviour for line %s", l)
			}
			s := serverbin.Start(t, l, serverbin.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			nc, js := connect(t, s)
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
				Name: "RESEND", Subjects: []string{"resend.>"}, Storage: jetstream.FileStorage,
				Duplicates: 10 * time.Minute,
			}); err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 3; i++ {
				a := publish(t, nc, i, i-1, true)
				if !a.same(answer{Seq: uint64(i)}) {
					t.Fatalf("first publish of message %d: %v", i, a)
				}
			}

			check := func(phase string) {
				t.Helper()
				var report []string
				for _, c := range []struct {
					name   string
					withID bool
					want   answer
				}{
					{"expected-last-seq only", false, want.seqOnly},
					{"expected-last-seq + repeated msg id", true, want.seqAndID},
				} {
					got := publish(t, nc, 2, 1, c.withID)
					report = append(report, fmt.Sprintf("%s: %v", c.name, got))
					if !got.same(c.want) {
						t.Errorf("%s, %s: nats-server %s answered %v, want %v", phase, c.name, s.Version(), got, c.want)
					}
				}
				// Control: the repeated id alone is a duplicate on every line.
				got := publish(t, nc, 2, -1, true)
				report = append(report, fmt.Sprintf("msg id only: %v", got))
				if !got.same(answer{Duplicate: true, Seq: 2}) {
					t.Errorf("%s, msg id only: nats-server %s answered %v, want a duplicate ack of 2", phase, s.Version(), got)
				}
				t.Logf("nats-server v%s %s: %s", s.Version(), phase, strings.Join(report, "; "))
			}
			check("live")

			nc.Close()
			if err := s.Kill(); err != nil {
				t.Fatal(err)
			}
			if err := s.Restart(); err != nil {
				t.Fatal(err)
			}
			nc, _ = connect(t, s)
			check("after SIGKILL+restart")
			info, err := mustStream(ctx, t, nc, "RESEND").Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.State.Msgs != 3 || info.State.LastSeq != 3 {
				t.Fatalf("resends changed the stream: %d messages, last seq %d", info.State.Msgs, info.State.LastSeq)
			}
		})
	}
}

// publish sends message i (subject resend.<i>, id "id-<i>") with
// Nats-Expected-Last-Sequence: expect (none when expect < 0) and returns
// the server's answer as sent on the wire.
func publish(t *testing.T, nc *nats.Conn, i, expect int, withID bool) answer {
	t.Helper()
	m := nats.NewMsg(fmt.Sprintf("resend.%d", i))
	m.Data = []byte(fmt.Sprintf("message %d", i))
	if expect >= 0 {
		m.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.Itoa(expect))
	}
	if withID {
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("id-%d", i))
	}
	resp, err := nc.RequestMsg(m, 10*time.Second)
	if err != nil {
		t.Fatalf("publish %d: %v", i, err)
	}
	var r struct {
		Seq       uint64 `json:"seq"`
		Duplicate bool   `json:"duplicate"`
		Error     *struct {
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		t.Fatalf("publish %d: answer %q: %v", i, resp.Data, err)
	}
	if r.Error != nil {
		return answer{ErrCode: r.Error.ErrCode, Desc: r.Error.Description}
	}
	return answer{Seq: r.Seq, Duplicate: r.Duplicate}
}

func connect(t *testing.T, s *serverbin.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return topotest.JetStream(t, s.URL(), nats.MaxReconnects(0))
}

func mustStream(ctx context.Context, t *testing.T, nc *nats.Conn, name string) jetstream.Stream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestStartReportsUnbuildableLine: a line that cannot be built fails the
// test (never skips it) with a message naming the line.
func TestStartReportsUnbuildableLine(t *testing.T) {
	_, err := serverbin.Launch("2.99", serverbin.Options{StoreDir: t.TempDir(), Dir: t.TempDir()})
	var be *serverbin.BuildError
	if !errors.As(err, &be) || be.Line != "2.99" || !strings.Contains(err.Error(), "line 2.99") {
		t.Fatalf("Launch of an unknown line: %v", err)
	}

	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		serverbin.Start(rec, "2.99", serverbin.Options{})
	}()
	<-done
	if !rec.fatal || !strings.Contains(rec.msg, "cannot build nats-server line 2.99") {
		t.Fatalf("Start of an unknown line: fatal=%v %q", rec.fatal, rec.msg)
	}
}

// fatalRecorder catches a Fatalf instead of failing the test.
type fatalRecorder struct {
	testing.TB
	fatal bool
	msg   string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.fatal, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *fatalRecorder) Skipf(format string, args ...any) {
	r.msg = "skipped: " + fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestBuildErrorShowsOutputTail(t *testing.T) {
	var out strings.Builder
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&out, "line %d\n", i)
	}
	err := &serverbin.BuildError{Line: "2.12", Version: "2.12.15", ModuleDir: "/m", Output: out.String(), Err: errors.New("go build: exit status 1")}
	msg := err.Error()
	for _, want := range []string{"line 2.12 (v2.12.15) in /m: go build: exit status 1", "line 100", "line 71\n"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "line 70\n") {
		t.Errorf("message has more than the tail:\n%s", msg)
	}
}

// TestConfigFragments: the JetStream and Config fragments reach the server.
func TestConfigFragments(t *testing.T) {
	s := serverbin.Start(t, serverbin.Current, serverbin.Options{
		JetStream: "max_file_store: 64MB\nmax_memory_store: 8MB",
		Config:    "max_payload: 65536\nlame_duck_grace_period: 1s",
	})
	nc, _ := connect(t, s)
	if nc.MaxPayload() != 65536 {
		t.Errorf("max payload %d, want 65536", nc.MaxPayload())
	}
	resp, err := http.Get(s.MonitorURL() + "/varz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var varz struct {
		JetStream struct {
			Config struct {
				MaxStorage int64 `json:"max_storage"`
				MaxMemory  int64 `json:"max_memory"`
			} `json:"config"`
		} `json:"jetstream"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&varz); err != nil {
		t.Fatal(err)
	}
	if c := varz.JetStream.Config; c.MaxStorage != 64<<20 || c.MaxMemory != 8<<20 {
		t.Errorf("jetstream limits %+v, want 64MB file and 8MB memory", c)
	}
	cfg, err := os.ReadFile(s.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "  max_file_store: 64MB\n") {
		t.Errorf("config file:\n%s", cfg)
	}
}

// The build-once test runs copies of this test binary as separate
// processes, all asking for the same line with an empty cache.
const helperEnv = "SERVERBIN_TEST_BUILD_HELPER"

func buildHelper() {
	r := serverbin.Results(serverbin.Current)[0]
	errText := ""
	if r.Err != nil {
		errText = r.Err.Error()
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{"path": r.Path, "built": r.Built, "err": errText})
}

// TestBuildOncePerMachine starts three processes that want the current
// line from a fresh cache holding a truncated binary: the broken file is
// not reused, exactly one process builds, the others reuse its result.
func TestBuildOncePerMachine(t *testing.T) {
	if _, err := serverbin.Binary(serverbin.Current); err != nil {
		t.Fatal(err) // also warms the Go build cache for the builds below
	}
	cache := t.TempDir()
	version, _ := serverbin.Current.Version()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		Path  string `json:"path"`
		Built bool   `json:"built"`
		Err   string `json:"err"`
	}
	entries := func() []string {
		m, _ := filepath.Glob(filepath.Join(cache, version+"-*", "nats-server"))
		return m
	}
	var wg sync.WaitGroup
	results := make([]result, 3)
	errs := make([]error, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"=1", serverbin.CacheEnv+"="+cache)
			out, err := cmd.Output()
			if err != nil {
				errs[i] = fmt.Errorf("helper: %v: %s", err, out)
				return
			}
			errs[i] = json.Unmarshal(out, &results[i])
		}()
	}
	wg.Wait()
	built := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if r.Err != "" {
			t.Fatalf("helper %d: %s", i, r.Err)
		}
		if r.Path != results[0].Path {
			t.Fatalf("helpers disagree on the path: %s vs %s", r.Path, results[0].Path)
		}
		if r.Built {
			built++
		}
	}
	if built != 1 {
		t.Fatalf("%d of 3 processes built the binary, want exactly 1: %+v", built, results)
	}
	if got := entries(); len(got) != 1 || got[0] != results[0].Path {
		t.Fatalf("cache holds %v, want %s", got, results[0].Path)
	}

	// A truncated binary in the cache is rebuilt, not reused.
	if err := os.WriteFile(results[0].Path, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", serverbin.CacheEnv+"="+cache)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil || r.Err != "" || !r.Built {
		t.Fatalf("after truncating the cached binary: %s (%v)", out, err)
	}
	v, err := exec.Command(r.Path, "--version").Output()
	if err != nil || !strings.Contains(string(v), "v"+version) {
		t.Fatalf("rebuilt binary: %q %v", v, err)
	}
}
