package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/naming"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/verify"
)

// background is a command running in-process beside the test, told to
// finish as the first Ctrl-C would.
type background struct {
	a    *app
	out  *bytes.Buffer
	errb *bytes.Buffer
	done chan int
}

func start(ctx context.Context, args ...string) *background {
	var so, se bytes.Buffer
	b := &background{a: newApp(&so, &se, false), out: &so, errb: &se, done: make(chan int, 1)}
	go func() { b.done <- b.a.execute(ctx, args) }()
	return b
}

// finish does what the first Ctrl-C does to a --follow run, once the
// command has installed its finish action.
func (b *background) finish(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		b.a.interrupts.mu.Lock()
		f := b.a.interrupts.finish
		b.a.interrupts.mu.Unlock()
		if f != nil {
			f()
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the command never installed its finish action")
		}
	}
}

func (b *background) wait(t *testing.T, what string) int {
	t.Helper()
	select {
	case code := <-b.done:
		return code
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s did not end; stderr:\n%s", what, b.errb)
		return 0
	}
}

// TestCutoverFinalVerifyReadsOnlyPastTheVerifiedPrefix is the cutover:
// migrate --follow and verify --follow run while producers write; verify
// stops at a known prefix, producers write more and stop, migrate
// finishes, and the final verify reads only what lies past the prefix.
// Deleting a message inside the prefix on JetStream makes the next
// verify fail naming it.
func TestCutoverFinalVerifyReadsOnlyPastTheVerifiedPrefix(t *testing.T) {
	env := startFixture(t, "core.yaml")
	defer setenv(t, envFor(env))()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.yaml")
	if r := run(t, nil, "plan", "-o", planFile); r.code != 0 {
		t.Fatalf("plan: exit %d: %s", r.code, r.stderr)
	}
	mig := start(ctx, "migrate", "--plan", planFile, "--follow")
	vctx, vcancel := context.WithCancel(ctx)
	defer vcancel()
	ver := start(vctx, "verify", "--plan", planFile, "--follow")

	const channel, seeded, during, after = "orders.eu", 600, 2000, 1000
	stream := naming.StreamName(channel)
	store := state.NewDir(filepath.Join(dir, "plan.state"))
	sc, err := stan.Connect(env.Pair.STAN.ClusterID(), "late-producer", stan.NatsURL(env.Pair.STAN.URL()))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	publish := func(from, n int) {
		for i := from; i < from+n; i++ {
			if err := sc.Publish(channel, fmt.Appendf(nil, "late-%d", i)); err != nil {
				t.Fatal(err)
			}
			if i == during/2 {
				// verify --follow keeps up: its prefix passes the
				// history while producers still write.
				waitPrefix(t, ctx, store, stream, seeded+1)
			}
		}
	}
	publish(0, during)
	// verify --follow stops (the second Ctrl-C) with its prefix at the
	// last message so far; more arrives after it.
	waitPrefix(t, ctx, store, stream, seeded+during)
	vcancel()
	if code := ver.wait(t, "verify --follow"); code != exitInterrupted {
		t.Fatalf("verify --follow cancelled: exit %d, want %d\n%s", code, exitInterrupted, ver.errb)
	}
	publish(during, after)
	sc.Close()

	mig.finish(t)
	if code := mig.wait(t, "migrate --follow"); code != 0 {
		t.Fatalf("migrate --follow: exit %d\n%s", code, mig.errb)
	}
	if !strings.Contains(mig.errb.String(), "cutover window (migrate): final catch-up") {
		t.Errorf("migrate --follow did not time the window; stderr:\n%s", mig.errb)
	}

	// The final verify reads only past the prefix.
	r := run(t, nil, "verify", "--plan", planFile, "--json")
	if r.code != 0 {
		t.Fatalf("the final verify: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	c := channelOf(t, []byte(r.stdout), channel)
	t.Logf("the final verify on %s: %d verified earlier (through %d), %d read now", channel, c.Earlier, c.EarlierSeq, c.Read)
	if c.Read != after || c.Earlier != seeded+during || c.EarlierSeq != seeded+during {
		t.Errorf("the final verify read %d message(s) past %d verified earlier (through %d); want %d past %d",
			c.Read, c.Earlier, c.EarlierSeq, after, seeded+during)
	}

	// verify --follow told to finish times its last round; nothing is
	// left to read.
	total := uint64(seeded + during + after)
	fin := start(ctx, "verify", "--plan", planFile, "--follow", "--json")
	fin.finish(t)
	if code := fin.wait(t, "verify --follow"); code != 0 {
		t.Fatalf("verify --follow after the cutover: exit %d\n%s\n%s", code, fin.out, fin.errb)
	}
	if c := channelOf(t, fin.out.Bytes(), channel); c.Read != 0 || c.Earlier != total {
		t.Errorf("verify --follow after the cutover: read %d, verified earlier %d; want 0 and %d", c.Read, c.Earlier, total)
	}
	if !strings.Contains(fin.errb.String(), "cutover window (verify): tail verify and consumers") {
		t.Errorf("verify --follow did not time the window; stderr:\n%s", fin.errb)
	}

	// Someone deletes a message inside the prefix on JetStream.
	s, err := env.JS(t).Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(ctx, 100); err != nil {
		t.Fatal(err)
	}
	for _, full := range []bool{false, true} {
		args := []string{"verify", "--plan", planFile}
		if full {
			args = append(args, "--full")
		}
		r = run(t, nil, args...)
		if r.code != exitFailed || !strings.Contains(r.stdout, `channel "orders.eu"`) || !strings.Contains(r.stdout, "sequence 100 missing from the stream") {
			t.Errorf("%s after a delete inside the prefix: exit %d, want %d naming sequence 100 of orders.eu\n%s\n%s", strings.Join(args, " "), r.code, exitFailed, r.stdout, r.stderr)
		}
	}
}

// waitPrefix waits until stream's verified prefix reaches seq.
func waitPrefix(t *testing.T, ctx context.Context, store state.Store, stream string, seq uint64) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		v, _, err := state.LoadVerified(ctx, store, stream)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if v != nil && v.Seq >= seq {
			return
		}
	}
	t.Fatalf("the verified prefix of stream %q never reached sequence %d", stream, seq)
}

func channelOf(t *testing.T, out []byte, channel string) verify.ChannelReport {
	t.Helper()
	var rep verify.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, out)
	}
	for _, c := range rep.Channels {
		if c.Channel == channel {
			return c
		}
	}
	t.Fatalf("verify --json: no channel %q in\n%s", channel, out)
	return verify.ChannelReport{}
}
