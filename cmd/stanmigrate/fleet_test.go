package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/naming"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/topotest"
)

// fleetWorker is one migrate process of a fleet, started as a user would
// on its own machine: its own working directory (deleted if it dies), the
// same command line as the others.
type fleetWorker struct {
	name string
	dir  string
	cmd  *exec.Cmd
	out  bytes.Buffer

	mu     sync.Mutex
	stderr strings.Builder
	done   chan struct{}
}

func (w *fleetWorker) log() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stderr.String()
}

func (w *fleetWorker) signaled(sig syscall.Signal) bool {
	ws, ok := w.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// startWorker runs bin with args in a fresh directory; onLine sees each
// line it logs.
func startWorker(t *testing.T, ctx context.Context, bin, name string, env, args []string, onLine func(*fleetWorker, string)) *fleetWorker {
	t.Helper()
	w := &fleetWorker{name: name, dir: t.TempDir(), done: make(chan struct{})}
	w.cmd = exec.CommandContext(ctx, bin, args...)
	w.cmd.Dir = w.dir
	w.cmd.Env = append(os.Environ(), env...)
	w.cmd.Stdout = &w.out
	pipe, err := w.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			w.mu.Lock()
			w.stderr.WriteString(line + "\n")
			w.mu.Unlock()
			if onLine != nil {
				onLine(w, line)
			}
		}
		_ = w.cmd.Wait()
		close(w.done)
	}()
	return w
}

// fleetRig is a STAN seeded with fleet.yaml, a three-node JetStream
// cluster, an R3 plan, and the migrate command line every worker runs.
type fleetRig struct {
	cluster  *embedded.JetStreamCluster
	env      []string
	planFile string
	args     []string
}

func startFleet(t *testing.T, bucket string) fleetRig {
	t.Helper()
	env := startFixture(t, "fleet.yaml")
	cl := topotest.JetStreamCluster(t, embedded.JetStreamClusterConfig{})
	e := append(envFor(env), "NATS_URL="+cl.URLs())
	planFile := filepath.Join(t.TempDir(), "plan.yaml")
	if r := run(t, e, "plan", "-o", planFile, "--replicas", "3"); r.code != 0 {
		t.Fatalf("plan: exit %d\n%s", r.code, r.stderr)
	}
	return fleetRig{cluster: cl, env: e, planFile: planFile,
		args: []string{"migrate", "--plan", planFile, "--state", "kv:" + bucket, "--parallel", "2", "--lease-ttl", "3s"}}
}

var completeLine = regexp.MustCompile(`^complete "([^"]+)": (\d+) message\(s\) copied`)

// copiedBy reads, from a worker's log, how many messages it copied of
// each channel it completed.
func copiedBy(log string) map[string]uint64 {
	out := map[string]uint64{}
	for _, line := range strings.Split(log, "\n") {
		if m := completeLine.FindStringSubmatch(line); m != nil {
			n, _ := strconv.ParseUint(m[2], 10, 64)
			out[m[1]] += n
		}
	}
	return out
}

var alreadyLine = regexp.MustCompile(`([\d,]+) publish\(es\) refused as already stored`)

// TestFleetOfThreeSharesTheChannels is the fleet as operators run it: the
// same `migrate --plan FILE --state kv:NAME` on three machines at once
// into a three-node cluster with R3 streams. One worker is SIGKILLed
// mid-copy and another while it probes a durable queue group, and their
// working directories are deleted (their machines are gone). The last
// worker finishes every channel, taking the dead probe over from the
// intent in the bucket; verify passes, the consumers deliver STAN's
// pending sets, and no message was stored twice.
func TestFleetOfThreeSharesTheChannels(t *testing.T) {
	if testing.Short() {
		t.Skip("three processes, 200,000 messages")
	}
	f := startFleet(t, "fleet")
	cl, e, args := f.cluster, f.env, f.args

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var (
		mu             sync.Mutex
		midCopy, probe *fleetWorker
	)
	kill := func(w *fleetWorker) { _ = w.cmd.Process.Signal(syscall.SIGKILL) }
	onLine := func(w *fleetWorker, line string) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case midCopy == nil && strings.HasPrefix(line, "started "):
			midCopy = w
			time.AfterFunc(300*time.Millisecond, func() { kill(w) })
		case probe == nil && w != midCopy && strings.HasPrefix(line, `probing "jobs":`) && strings.Contains(line, "resumed as client"):
			probe = w
			kill(w)
		}
	}
	bin := binaryPath(t)
	var workers []*fleetWorker
	for i := range 3 {
		workers = append(workers, startWorker(t, ctx, bin, fmt.Sprintf("worker-%d", i+1), e, args, onLine))
	}
	for _, w := range workers {
		select {
		case <-w.done:
		case <-ctx.Done():
			t.Fatalf("%s still running after 4 minutes:\n%s", w.name, w.log())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if midCopy == nil || !midCopy.signaled(syscall.SIGKILL) {
		t.Fatal("no worker was killed mid-copy")
	}
	if probe == nil || !probe.signaled(syscall.SIGKILL) {
		var logs strings.Builder
		for _, w := range workers {
			fmt.Fprintf(&logs, "--- %s (exit %d):\n%s", w.name, w.cmd.ProcessState.ExitCode(), w.log())
		}
		t.Fatalf("no worker was killed while probing the queue group:\n%s", logs.String())
	}
	for _, dead := range []*fleetWorker{midCopy, probe} {
		if err := os.RemoveAll(dead.dir); err != nil {
			t.Fatal(err)
		}
	}
	var survivors []*fleetWorker
	for _, w := range workers {
		if w == midCopy || w == probe {
			continue
		}
		survivors = append(survivors, w)
		if code := w.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("surviving %s: exit %d\n%s%s", w.name, code, w.out.String(), w.log())
		}
	}
	last := survivors[0]
	if !strings.Contains(last.log(), "taking it over") {
		t.Errorf("the surviving worker does not say it took the dead worker's probe over:\n%s", last.log())
	}

	// No channel was copied twice: of the processes that lived, one
	// copied each channel (what a dead one copied, the stream held, and
	// the survivor resumed from it), and every publish the target refused
	// as already stored is counted.
	copiers := map[string][]string{}
	if len(copiedBy(last.log())) == 0 {
		t.Fatalf("no %q line in the surviving worker's log: the check below would see nothing\n%s", "complete", last.log())
	}
	for _, w := range survivors {
		for ch, n := range copiedBy(w.log()) {
			if n > 0 {
				copiers[ch] = append(copiers[ch], w.name)
			}
		}
	}
	for ch, who := range copiers {
		if len(who) > 1 {
			t.Errorf("channel %q was copied by %v", ch, who)
		}
	}
	already := "0"
	if m := alreadyLine.FindStringSubmatch(last.out.String()); m != nil {
		already = m[1]
	}
	t.Logf("worker killed mid-copy: %s; during the probe: %s; the survivor's summary:\n%s\npublishes refused as already stored: %s",
		midCopy.name, probe.name, last.out.String(), already)

	// A second machine's view: status and verify read the bucket.
	st := run(t, e, "status", "--state", "kv:fleet")
	if st.code != 0 || !strings.Contains(st.stdout, "7 of 7 channel(s) complete") {
		t.Errorf("status from the bucket: exit %d\n%s%s", st.code, st.stdout, st.stderr)
	}
	if v := run(t, e, "verify", "--state", "kv:fleet"); v.code != 0 {
		t.Fatalf("verify from the plan in the bucket: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}

	// What the applications receive: STAN's pending sets first.
	js := lineJS(t, cl.URLs())
	for _, tc := range []struct {
		channel, consumer string
		want              []uint64
	}{
		{"bulk.2", naming.ConsumerName("svc-2", "worker", ""), []uint64{29991, 29992, 29993, 29994, 30000}},
		{"bulk.4", naming.ConsumerName("svc-4", "worker", ""), seqs(20001, 20005)},
		{"jobs", naming.ConsumerName("", "wq", "workers"), seqs(101, 110)},
	} {
		stream := naming.StreamName(tc.channel)
		if got := readConsumer(t, js, stream, tc.consumer, len(tc.want)); !slices.Equal(got, tc.want) {
			t.Errorf("consumer %q on stream %q delivers %v first, want %v", tc.consumer, stream, got, tc.want)
		}
	}
}

// TestStaleWriterChangesNothing: a worker paused (SIGSTOP) mid-copy past
// its lease is a stale writer. Another worker takes its channels over
// and finishes the migration; when the paused one resumes, it finds its
// leases gone, writes nothing (its publishes are refused by the
// expected-last-sequence check, its checkpoint writes by the revision
// check) and exits 0, leaving streams, consumers and checkpoints exactly
// as the other worker left them.
func TestStaleWriterChangesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("two processes, 200,000 messages")
	}
	f := startFleet(t, "stale")
	cl, e, planFile, args := f.cluster, f.env, f.planFile, f.args
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := binaryPath(t)

	paused := make(chan struct{})
	var once sync.Once
	var pausedAt time.Time
	a := startWorker(t, ctx, bin, "worker-a", e, args, func(w *fleetWorker, line string) {
		if strings.HasPrefix(line, "started ") {
			once.Do(func() {
				time.AfterFunc(300*time.Millisecond, func() {
					_ = w.cmd.Process.Signal(syscall.SIGSTOP)
					pausedAt = time.Now()
					close(paused)
				})
			})
		}
	})
	defer func() { _ = a.cmd.Process.Signal(syscall.SIGCONT) }()
	select {
	case <-paused:
	case <-a.done:
		t.Fatalf("worker-a finished before it could be paused:\n%s", a.log())
	}
	var resumedOnce sync.Once
	b := startWorker(t, ctx, bin, "worker-b", e, args, func(_ *fleetWorker, line string) {
		// The first channel worker-b resumes is one worker-a held: its
		// own start the others.
		if strings.HasPrefix(line, "resumed ") {
			resumedOnce.Do(func() {
				t.Logf("worker-a's first channel moved to worker-b %v after worker-a was paused (--lease-ttl 3s)", time.Since(pausedAt).Round(10*time.Millisecond))
			})
		}
	})
	select {
	case <-b.done:
	case <-ctx.Done():
		t.Fatalf("worker-b still running:\n%s", b.log())
	}
	if code := b.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("worker-b: exit %d\n%s%s", code, b.out.String(), b.log())
	}
	if !strings.Contains(b.log(), "waiting for it to finish or for its lease to expire") {
		t.Errorf("worker-b never waited on worker-a's leases:\n%s", b.log())
	}
	before := targetState(t, cl.URLs(), "stale")

	// worker-a wakes up, a stale writer.
	_ = a.cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-a.done:
	case <-ctx.Done():
		t.Fatalf("worker-a still running after it resumed:\n%s", a.log())
	}
	if code := a.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the stale worker-a: exit %d, want 0\n%s%s", code, a.out.String(), a.log())
	}
	if !strings.Contains(a.log(), "handed over") {
		t.Errorf("worker-a does not say its channels were taken over:\n%s", a.log())
	}
	after := targetState(t, cl.URLs(), "stale")
	if before != after {
		t.Errorf("the stale writer changed the target:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	t.Logf("worker-a after resuming:\n%s", a.out.String())
	if v := run(t, e, "verify", "--plan", planFile, "--state", "kv:stale"); v.code != 0 {
		t.Fatalf("verify: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
}

// targetState describes every stream and consumer a migration made, and
// the checkpoints in its bucket, as a user's `nats stream info` would.
func targetState(t *testing.T, url, bucket string) string {
	t.Helper()
	nc, js := topotest.JetStream(t, url)
	defer nc.Close()
	ctx := context.Background()
	var b strings.Builder
	for name := range js.StreamNames(ctx).Name() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		st := s.CachedInfo().State
		if name == "KV_"+bucket {
			continue // leases come and go; checkpoints are read below
		}
		fmt.Fprintf(&b, "stream %s: %d msgs %d..%d, %d deleted\n", name, st.Msgs, st.FirstSeq, st.LastSeq, st.NumDeleted)
		for c := range s.ListConsumers(ctx).Info() {
			fmt.Fprintf(&b, "  consumer %s: start %d, delivered %d, ack floor %d, pending %d\n", c.Name, c.Config.OptStartSeq,
				c.Delivered.Stream, c.AckFloor.Stream, c.NumPending)
		}
	}
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := kv.ListKeysFiltered(ctx, "checkpoint.>")
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s: revision %d\n", k, e.Revision())
	}
	return b.String()
}
