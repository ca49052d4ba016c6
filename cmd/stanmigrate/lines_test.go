package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/naming"
	"github.com/stanmigrate/stanmigrate/internal/testkit/serverbin"
	"github.com/stanmigrate/stanmigrate/internal/testkit/topotest"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/verify"
)

// lineChannels are testdata/fixtures/lines.yaml's channels and how many
// messages each holds once copied.
var lineChannels = map[string]uint64{"bulk.a": 36000, "bulk.b": 40000}

// TestEveryReleaseLine migrates into a nats-server process of every
// supported release line (serverbin: 2.10, 2.11, 2.12 and the current
// one, built from the module proxy and cached per machine). On each line
// the plan names the line; migrate is SIGKILLed in the middle of the copy
// and run again; while the re-run copies, the target server is SIGKILLed
// and restarted, and the re-run rides it out; verify then finds every
// channel and consumer identical, with the content hash migrate reports;
// and an application reading the consumers of durables that had pending
// messages receives exactly STAN's pending set, then the messages STAN
// had not sent, never one it had acknowledged.
//
// The lines run in parallel, each with its own STAN and target, and every
// command runs through the binary (the in-process runner sets the
// environment, which parallel subtests cannot share). The kills are
// triggered by what the target stores, not by time.
func TestEveryReleaseLine(t *testing.T) {
	bin := binaryPath(t)
	for _, l := range serverbin.Lines() {
		t.Run(string(l), func(t *testing.T) {
			t.Parallel()
			migrateOnLine(t, bin, l)
		})
	}
}

func migrateOnLine(t *testing.T, bin string, l serverbin.Line) {
	began := time.Now()
	// The server first: a line that could not be built fails here, at once.
	srv := serverbin.Start(t, l, serverbin.Options{})
	env := startFixture(t, "lines.yaml")
	seeded := time.Since(began)
	e := append(envFor(env), "NATS_URL="+srv.URL())
	planFile := filepath.Join(t.TempDir(), "plan.yaml")
	step := func(what string, r result) {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("nats-server %s (v%s): %s: exit %d\nstdout:\n%s\nstderr:\n%s", l, srv.Version(), what, r.code, r.stdout, r.stderr)
		}
	}

	r := runBinary(t, bin, e, "plan", "-o", planFile)
	step("stanmigrate plan", r)
	for _, want := range []string{"target server " + srv.Version(), "release line " + string(l) + ":"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("nats-server %s: the plan report does not name the target's release line (%q):\n%s", l, want, r.stdout)
		}
	}

	w := &storedWatcher{js: lineJS(t, srv.URL())}
	var total uint64
	for _, n := range lineChannels {
		total += n
	}
	args := []string{"migrate", "--plan", planFile}

	// kill -9 of the migrator once a fifth of the messages are stored.
	var at map[string]uint64
	br, acted := runBinaryUntil(t, bin, e, args, func() bool { at = w.stored(); return sumCounts(at) >= total/5 }, func(cmd *exec.Cmd) {
		_ = cmd.Process.Signal(syscall.SIGKILL)
	})
	if !acted || !br.signaled(syscall.SIGKILL) {
		t.Fatalf("nats-server %s: the first migrate was not killed mid-copy (exit %d):\n%s%s", l, br.code, br.stdout, br.stderr)
	}
	// Lines before 2.14 have no fast-ingest batches: migrate says it
	// publishes each message asynchronously; 2.14 and later take them.
	fellBack := strings.Contains(br.stderr, "publishing: each message asynchronously")
	var major, minor int
	if _, err := fmt.Sscanf(string(l), "%d.%d", &major, &minor); err != nil {
		t.Fatalf("release line %q: %v", l, err)
	}
	if wantFallBack := major == 2 && minor < 14; fellBack != wantFallBack {
		t.Errorf("nats-server %s: the run says it publishes each message asynchronously: %v, want %v\n%s", l, fellBack, wantFallBack, br.stderr)
	}

	if after := sumCounts(w.stored()); after >= total {
		t.Fatalf("nats-server %s: the kill landed after the copy (%d of %d messages stored): the fixture is too small for this machine", l, after, total)
	}
	t.Logf("nats-server %s: migrator killed with %v of %d messages stored", l, at, total)

	// The re-run, with the target server killed -9 and restarted half-way
	// through: it must ride the restart out and complete. Both channels
	// are still copying then, so their consumers are made after it.
	var restartErr error
	br, acted = runBinaryUntil(t, bin, e, append(args, "--json"), func() bool { at = w.stored(); return sumCounts(at) >= total/2 }, func(*exec.Cmd) {
		if restartErr = srv.Kill(); restartErr == nil {
			restartErr = srv.Restart()
		}
	})
	if restartErr != nil {
		t.Fatalf("nats-server %s: kill and restart of the target: %v", l, restartErr)
	}
	if !acted {
		t.Fatalf("nats-server %s: the re-run ended (exit %d) before half the messages were stored, with %v: the target was never killed", l, br.code, at)
	}
	for ch, n := range lineChannels {
		if at[ch] >= n {
			t.Fatalf("nats-server %s: channel %q was already copied (%d messages) when the target was killed: its consumers would not be made after the restart; the fixture is too small for this machine", l, ch, at[ch])
		}
	}
	t.Logf("nats-server %s: target server killed and restarted with %v of %d messages stored", l, at, total)
	step("re-run of migrate after kill -9, through a kill -9 and restart of the target", br.result)
	var ms migrate.Summary
	if err := json.Unmarshal([]byte(br.stdout), &ms); err != nil {
		t.Fatalf("re-run summary: %v\n%s", err, br.stdout)
	}

	r = runBinary(t, bin, e, "verify", "--plan", planFile, "--json")
	step("stanmigrate verify", r)
	var rep verify.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("verify report: %v\n%s", err, r.stdout)
	}
	if !rep.OK || len(rep.Channels) != 2 || len(rep.Consumers) != 3 {
		t.Fatalf("nats-server %s: verify reports ok=%v over %d channel(s) and %d consumer(s), want ok over 2 and 3:\n%s", l, rep.OK, len(rep.Channels), len(rep.Consumers), r.stdout)
	}
	// The hash the re-run reports was resumed from the killed run's
	// checkpoint and carried through the server's restart: it must be the
	// one verify computes over the stream.
	want := map[string]string{}
	for _, c := range rep.Channels {
		want[c.Channel] = c.Target.SHA256
	}
	if len(ms.Channels) != len(rep.Channels) {
		t.Errorf("nats-server %s: migrate summary has %d channel(s), verify %d", l, len(ms.Channels), len(rep.Channels))
	}
	made := map[string]migrate.ConsumerResult{}
	for _, c := range ms.Channels {
		if c.Sum != want[c.Channel] {
			t.Errorf("nats-server %s: channel %q: migrate reports content hash %q, verify hashed the stream as %q", l, c.Channel, c.Sum, want[c.Channel])
		}
		for _, cr := range c.Consumers {
			made[cr.Consumer] = cr
		}
	}

	// What the applications receive: STAN's pending set, then what STAN
	// had not sent; never what they had acknowledged on STAN.
	js := lineJS(t, srv.URL())
	for _, tc := range []struct {
		channel, consumer string
		acked             uint64 // acknowledged on STAN past the start
		want              []uint64
	}{
		// Pending 29951-29959 and 30000; 29960-29999 acknowledged.
		{"bulk.b", naming.ConsumerName("svc-b", "worker", ""), 40,
			append(seqs(29951, 29959), 30000, 30001, 30002, 30003)},
		// Pending 4001, 4006, 4010 (3999 and 4000 were dropped from the
		// channel's front); 4002-4005 and 4007-4009 acknowledged.
		{"bulk.a", naming.ConsumerName("", "q", "crew"), 7,
			[]uint64{4001, 4006, 4010, 4011, 4012, 4013}},
	} {
		stream := naming.StreamName(tc.channel)
		if cr := made[tc.consumer]; cr.Status != "created" || cr.Acked != tc.acked {
			t.Errorf("nats-server %s: the re-run reports consumer %q as %+v: want it created, acknowledging the %d message(s) STAN had acknowledged past its start", l, tc.consumer, cr, tc.acked)
		}
		if got := readConsumer(t, js, stream, tc.consumer, len(tc.want)); !slices.Equal(got, tc.want) {
			t.Errorf("nats-server %s: consumer %q on stream %q delivers %v first, want %v", l, tc.consumer, stream, got, tc.want)
		}
	}
	t.Logf("nats-server %s (v%s): done in %s (STAN seeded and target started in %s)", l, srv.Version(), time.Since(began).Round(100*time.Millisecond), seeded.Round(100*time.Millisecond))
}

func seqs(lo, hi uint64) []uint64 {
	var s []uint64
	for i := lo; i <= hi; i++ {
		s = append(s, i)
	}
	return s
}

func sumCounts(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// runBinary runs the stanmigrate binary with env added to the test's
// environment (through exec, so parallel tests do not share it).
func runBinary(t testing.TB, bin string, env []string, args ...string) result {
	t.Helper()
	r, _ := runBinaryUntil(t, bin, env, args, nil, nil)
	return r.result
}

// binResult is what a run of the binary printed, its exit code (-1 when a
// signal ended it) and how it ended.
type binResult struct {
	result
	state *os.ProcessState
}

// signaled tells whether sig ended the process.
func (r binResult) signaled(sig syscall.Signal) bool {
	ws, ok := r.state.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// runBinaryUntil runs the binary and, while it runs, checks until every
// few milliseconds; the first time it holds, act runs once, given the
// command (to signal it). acted tells whether act ran before the command
// ended.
func runBinaryUntil(t testing.TB, bin string, env, args []string, until func() bool, act func(*exec.Cmd)) (r binResult, acted bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var watch sync.WaitGroup
	if until != nil {
		watch.Add(1)
		go func() {
			defer watch.Done()
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-exited:
					return
				case <-tick.C:
				}
				if until() {
					acted = true
					act(cmd)
					return
				}
			}
		}()
	}
	err := cmd.Wait()
	close(exited)
	watch.Wait()
	r = binResult{result{stdout: so.String(), stderr: se.String(), code: cmd.ProcessState.ExitCode()}, cmd.ProcessState}
	if ctx.Err() != nil {
		t.Fatalf("%s %v: still running after 5 minutes\n%s%s", bin, args, r.stdout, r.stderr)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return r, acted
}

// storedWatcher reads how many messages the target stores per channel,
// through its own connection, which rides out the target's restart.
type storedWatcher struct {
	js jetstream.JetStream
}

// stored is each channel's stream's message count; a stream not there
// yet (or a server not answering) counts as none.
func (w *storedWatcher) stored() map[string]uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n := map[string]uint64{}
	for ch := range lineChannels {
		if s, err := w.js.Stream(ctx, naming.StreamName(ch)); err == nil {
			n[ch] = s.CachedInfo().State.Msgs
		}
	}
	return n
}

// lineJS is a JetStream client for the test that reconnects for as long
// as the test lasts.
func lineJS(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	_, js := topotest.JetStream(t, url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	return js
}

// readConsumer reads a pull consumer as an application would, acking each
// message, until n messages came or none came for a while; it returns the
// stream sequences delivered, in order.
func readConsumer(t *testing.T, js jetstream.JetStream, stream, consumer string, n int) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := js.Consumer(ctx, stream, consumer)
	if err != nil {
		t.Fatalf("consumer %q on stream %q: %v", consumer, stream, err)
	}
	var got []uint64
	for len(got) < n {
		batch, err := c.Fetch(n-len(got), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("consumer %q: fetch: %v", consumer, err)
		}
		k := 0
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				t.Fatalf("consumer %q: %v", consumer, err)
			}
			got = append(got, md.Sequence.Stream)
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatalf("consumer %q: ack %d: %v", consumer, md.Sequence.Stream, err)
			}
			k++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("consumer %q: fetch: %v", consumer, err)
		}
		if k == 0 {
			break
		}
	}
	return got
}
