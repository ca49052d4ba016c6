package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/internal/testkit/topotest"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/verify"
)

// envFor points the command at a test environment through the documented
// environment variables.
func envFor(e *testenv.Env) []string {
	return []string{
		"STAN_URL=" + e.Pair.STAN.URL(),
		"STAN_CLUSTER=" + e.Pair.STAN.ClusterID(),
		"STAN_MONITOR=" + e.Pair.STAN.MonitorURL(),
		"NATS_URL=" + e.Pair.JetStream.URL(),
	}
}

// fixturesDir is absolute, as tests that run a user's command line move
// to a working directory of their own.
var fixturesDir, _ = filepath.Abs("../../testdata/fixtures")

func startFixture(t *testing.T, name string) *testenv.Env {
	return testenv.StartFixture(t, filepath.Join(fixturesDir, name))
}

func TestPlanMigrateVerifyThroughTheBinary(t *testing.T) {
	env := startFixture(t, "core.yaml")
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.yaml")
	r := run(t, envFor(env), "plan", "-o", planFile)
	if r.code != 0 {
		t.Fatalf("plan: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"orders.eu", "orders_eu", "not durable: will not be migrated", "probed at migrate time"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan report lacks %q:\n%s", want, r.stdout)
		}
	}
	r = run(t, envFor(env), "migrate", "--plan", planFile)
	if r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, envFor(env), "migrate", "--plan", planFile)
	if r.code != 0 || !strings.Contains(r.stdout, "Nothing to do") {
		t.Fatalf("second migrate: exit %d, want a no-op that says so\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, envFor(env), "verify", "--plan", planFile, "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"ok": true`) {
		t.Fatalf("verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, nil, "status", "--plan", planFile)
	if r.code != 0 || !strings.Contains(r.stdout, "complete") {
		t.Fatalf("status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// killPoint says when to SIGKILL a running migrator: after a line
// containing trigger has appeared n times on its stderr, plus delay.
type killPoint struct {
	name    string
	trigger string
	n       int
	delay   time.Duration
}

// killMigratorAt runs migrate until the kill point and reports whether
// SIGKILL ended it (false: it finished before the point was reached).
func killMigratorAt(t *testing.T, env []string, args []string, kp killPoint) bool {
	t.Helper()
	cmd := exec.Command(binaryPath(t), args...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill := func() { once.Do(func() { _ = cmd.Process.Signal(syscall.SIGKILL) }) }
	go func() {
		sc := bufio.NewScanner(stderr)
		seen := 0
		for sc.Scan() {
			if kp.trigger != "" && strings.Contains(sc.Text(), kp.trigger) {
				seen++
				if seen == kp.n {
					time.AfterFunc(kp.delay, kill)
				}
			}
		}
	}()
	if kp.trigger == "" {
		time.AfterFunc(kp.delay, kill)
	}
	_ = cmd.Wait()
	once.Do(func() {}) // a trigger firing now would find the process gone
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// TestKillNineAtAnyPointThenRerunEndsIdentical kills the migrator with
// SIGKILL at many points of a 200,000-message migration; after each kill a
// re-run completes and verify finds nothing missing or duplicated.
func TestKillNineAtAnyPointThenRerunEndsIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 200,000 messages per kill point")
	}
	env := startFixture(t, "large.yaml")
	points := []killPoint{
		{name: "before connecting", delay: 0},
		{name: "before the first publish", trigger: "started ", n: 1},
		{name: "early in a channel", trigger: "started ", n: 1, delay: 150 * time.Millisecond},
		{name: "mid-channel", trigger: "started ", n: 1, delay: 600 * time.Millisecond},
		{name: "later mid-channel", trigger: "started ", n: 2, delay: 900 * time.Millisecond},
		{name: "between channels", trigger: "complete ", n: 1},
		{name: "after two channels", trigger: "complete ", n: 2, delay: 20 * time.Millisecond},
		{name: "during consumer creation", trigger: "consumer ", n: 1},
		{name: "after the last consumer of a channel", trigger: "consumer ", n: 2},
		{name: "with one channel left", trigger: "complete ", n: 3},
		{name: "while resuming", trigger: "resumed ", n: 1, delay: 100 * time.Millisecond},
	}
	// Both ways a user runs it: with the plan file, and without (the
	// first run plans with the defaults and saves the plan in
	// ./stanmigrate-state; the re-run is the same command in the same
	// directory, and resumes with that plan).
	for _, withPlan := range []bool{true, false} {
		inv := "migrate --plan FILE"
		if !withPlan {
			inv = "migrate without --plan"
		}
		for i, kp := range points {
			t.Run(inv+"/"+kp.name, func(t *testing.T) {
				killNineThenRerun(t, env, withPlan, i, kp)
			})
		}
	}
}

// killNineThenRerun kills migrate at kp, re-runs the same command and
// checks the result is exact.
func killNineThenRerun(t *testing.T, env *testenv.Env, withPlan bool, i int, kp killPoint) {
	// A fresh target per point: each kill starts from nothing,
	// except "while resuming", which needs an earlier partial run.
	js, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer js.Stop()
	e := append(envFor(env), "NATS_URL="+js.URL())
	args := []string{"migrate", "--parallel", "2"}
	verifyArgs := []string{"verify", "--json"}
	if withPlan {
		planFile := filepath.Join(t.TempDir(), "plan.yaml")
		if r := run(t, e, "plan", "-o", planFile); r.code != 0 {
			t.Fatalf("plan: %s", r.stderr)
		}
		args = append(args, "--plan", planFile)
		verifyArgs = append(verifyArgs, "--plan", planFile)
	} else {
		// The killed run, its re-run and verify all start in the
		// same working directory, where the state lives.
		t.Chdir(t.TempDir())
	}
	if kp.trigger == "resumed " &&
		!killMigratorAt(t, e, args, killPoint{trigger: "started ", n: 1, delay: 400 * time.Millisecond}) {
		t.Fatal("the partial run before resuming finished before it was killed")
	}
	if !killMigratorAt(t, e, args, kp) {
		t.Fatalf("kill point %d (%s) was never reached: the migrator finished first", i, kp.name)
	}
	_, err = os.Stat(filepath.Join("stanmigrate-state", "plan.yaml"))
	saved := !withPlan && err == nil
	r := run(t, e, append(args, "--json")...)
	if r.code != 0 {
		t.Fatalf("kill point %d (%s): re-run exit %d\n%s%s", i, kp.name, r.code, r.stdout, r.stderr)
	}
	var sum migrate.Summary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("re-run summary: %v\n%s", err, r.stdout)
	}
	if saved && !strings.Contains(r.stderr, "continuing with the plan saved in") {
		t.Errorf("kill point %d (%s): the re-run without --plan does not say it continues with the saved plan:\n%s", i, kp.name, r.stderr)
	}
	v := run(t, e, verifyArgs...)
	if v.code != 0 {
		t.Fatalf("kill point %d (%s): verify exit %d\n%s%s", i, kp.name, v.code, v.stdout, v.stderr)
	}
	var rep verify.Report
	if err := json.Unmarshal([]byte(v.stdout), &rep); err != nil {
		t.Fatalf("verify report: %v\n%s", err, v.stdout)
	}
	if len(rep.Channels) == 0 {
		t.Fatalf("kill point %d (%s): verify reports no channel", i, kp.name)
	}
	// The kill landed on the fast-ingest path: every stream takes
	// batches (the per-message path makes none).
	for _, c := range rep.Channels {
		if !allowsBatches(t, js.URL(), c.Stream) {
			t.Errorf("kill point %d (%s): stream %q takes no fast-ingest batches: the kill was not made mid-batch", i, kp.name, c.Stream)
		}
	}
	// The content hash the re-run reports was resumed from the
	// killed run's checkpoint: it must be the stream's.
	want := map[string]string{}
	for _, c := range rep.Channels {
		want[c.Channel] = c.Target.SHA256
	}
	for _, c := range sum.Channels {
		if c.Sum != want[c.Channel] {
			t.Errorf("kill point %d (%s): channel %q: migrate reports content hash %q, verify hashed the stream as %q", i, kp.name, c.Channel, c.Sum, want[c.Channel])
		}
	}
}

func TestInterruptExits130WithCheckpointAndRerunCompletes(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 200,000 messages")
	}
	env := startFixture(t, "large.yaml")
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.yaml")
	if r := run(t, envFor(env), "plan", "-o", planFile); r.code != 0 {
		t.Fatalf("plan: %s", r.stderr)
	}
	cmd := exec.Command(binaryPath(t), "migrate", "--plan", planFile)
	cmd.Env = append(os.Environ(), envFor(env)...)
	stderr, _ := cmd.StderrPipe()
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	sent := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			errOut.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "started ") {
				once.Do(func() {
					time.AfterFunc(300*time.Millisecond, func() { _ = cmd.Process.Signal(os.Interrupt); close(sent) })
				})
			}
		}
	}()
	err := cmd.Wait()
	<-sent
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("want exit 130 after SIGINT, got %v\n%s\n%s", err, out.String(), errOut.String())
	}
	cps, _ := filepath.Glob(filepath.Join(dir, "plan.state", "*.json"))
	if len(cps) == 0 {
		t.Fatalf("no checkpoint written in %s", filepath.Join(dir, "plan.state"))
	}
	if !strings.Contains(out.String(), "interrupted") {
		t.Errorf("no partial summary with interrupted channels:\n%s", out.String())
	}
	r := run(t, envFor(env), "migrate", "--plan", planFile)
	if r.code != 0 {
		t.Fatalf("re-run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = run(t, envFor(env), "verify", "--plan", planFile); r.code != 0 {
		t.Fatalf("verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestDemoExitsZeroEndingWithTheVerificationTable(t *testing.T) {
	r := run(t, nil, "demo")
	if r.code != 0 {
		t.Fatalf("demo: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"stanmigrate plan", "stanmigrate migrate", "EXPECTED START", "verified: 4 channel(s) and 4 consumer(s) identical"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestVerifyExitsOneNamingChannelAndSequenceAfterTampering(t *testing.T) {
	env := startFixture(t, "core.yaml")
	planFile := filepath.Join(t.TempDir(), "plan.yaml")
	if r := run(t, envFor(env), "plan", "-o", planFile); r.code != 0 {
		t.Fatalf("plan: %s", r.stderr)
	}
	if r := run(t, envFor(env), "migrate", "--plan", planFile, "--quiet"); r.code != 0 {
		t.Fatalf("migrate: %s", r.stderr)
	}
	js := env.JS(t)
	s, err := js.Stream(context.Background(), "payments")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(context.Background(), 333); err != nil {
		t.Fatal(err)
	}
	r := run(t, envFor(env), "verify", "--plan", planFile)
	if r.code != 1 {
		t.Fatalf("verify after tampering: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, `channel "payments"`) || !strings.Contains(r.stdout, "sequence 333") {
		t.Errorf("verify output does not name the channel and sequence:\n%s", r.stdout)
	}
}

// TestSecretsAppearNowhere runs plan, migrate, verify and status with
// recognisable secrets in URLs and flags (the embedded servers have no auth
// and ignore them) and looks for them in every output and written file.
func TestSecretsAppearNowhere(t *testing.T) {
	env := startFixture(t, "core.yaml")
	const secret = "s3cr3t-Zq7"
	withUser := func(u string) string { return strings.Replace(u, "://", "://admin:"+secret+"@", 1) }
	e := []string{
		"STAN_URL=" + withUser(env.Pair.STAN.URL()),
		"STAN_CLUSTER=" + env.Pair.STAN.ClusterID(),
		"STAN_MONITOR=" + withUser(env.Pair.STAN.MonitorURL()),
		"NATS_URL=" + withUser(env.Pair.JetStream.URL()),
	}
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.yaml")
	flags := []string{"--nats-password", secret + "-flag", "--stan-token", secret + "-token"}
	var outputs []string
	for _, args := range [][]string{
		{"plan", "-o", planFile},
		{"plan", "-o", "-", "--format", "json"},
		{"migrate", "--plan", planFile},
		{"migrate", "--plan", planFile, "--json"},
		{"verify", "--plan", planFile, "--json"},
		{"status", "--plan", planFile},
	} {
		r := run(t, e, append(args, flags...)...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		outputs = append(outputs, r.stdout, r.stderr)
	}
	// Failures print URLs too: a wrong cluster id names the server.
	r := run(t, append(e, "STAN_CLUSTER=nope"), "migrate", "--plan", planFile)
	outputs = append(outputs, r.stdout, r.stderr)
	// The URLs are reported, only without their credentials.
	for _, want := range []string{`"url": "nats://127.0.0.1:`, `"monitor": "http://127.0.0.1:`} {
		if !strings.Contains(outputs[2], want) {
			t.Errorf("plan JSON lacks the redacted URL %s:\n%s", want, outputs[2])
		}
	}
	for i, o := range outputs {
		if strings.Contains(o, secret) {
			t.Errorf("output %d contains the secret:\n%s", i, o)
		}
	}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s contains the secret", path)
		}
		if fi, _ := d.Info(); fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is readable by others: %v", path, fi.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// allowsBatches reports whether the stream on the server at url was made
// for fast-ingest batches.
func allowsBatches(t *testing.T, url, stream string) bool {
	t.Helper()
	_, js := topotest.JetStream(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %q: %v", stream, err)
	}
	return s.CachedInfo().Config.AllowBatchPublish
}
