package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	stand "github.com/nats-io/nats-streaming-server/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/plan"
)

// serverState is what an operator could compare on both servers: every
// file of both stores with its checksum, STAN's channels, subscriptions,
// clients and counters from monitoring, and every JetStream stream and
// consumer with its configuration and state from the JetStream API.
type serverState struct {
	Files      map[string]string
	STAN       []string
	JetStream  []string
	STANCounts string
}

func captureState(t *testing.T, env *testenv.Env) serverState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := serverState{Files: map[string]string{}}
	for _, dir := range []string{env.Pair.STAN.Dir(), filepath.Join(env.Root, "jetstream")} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(env.Root, path)
			if d.IsDir() {
				s.Files[rel+"/"] = "dir"
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			s.Files[rel] = hex.EncodeToString(sum[:])
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	chans, err := env.Monitor().Channels(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chans {
		// STAN lists a channel's subscriptions in no fixed order.
		sort.Slice(c.Subscriptions, func(i, j int) bool { return c.Subscriptions[i].Inbox < c.Subscriptions[j].Inbox })
		b, _ := json.Marshal(c)
		s.STAN = append(s.STAN, "channel "+string(b))
	}
	var clients stand.Clientsz
	getJSON(t, env.Pair.STAN.MonitorURL()+"/streaming/clientsz?subs=1", &clients)
	for _, c := range clients.Clients {
		for _, subs := range c.Subscriptions {
			sort.Slice(subs, func(i, j int) bool { return subs[i].Inbox < subs[j].Inbox })
		}
		b, _ := json.Marshal(c)
		s.STAN = append(s.STAN, "client "+string(b))
	}
	sort.Strings(s.STAN)
	var sz stand.Serverz
	getJSON(t, env.Pair.STAN.MonitorURL()+"/streaming/serverz", &sz)
	s.STANCounts = fmt.Sprintf("clients %d, subscriptions %d, channels %d, msgs %d, bytes %d, state %s",
		sz.Clients, sz.Subscriptions, sz.Channels, sz.TotalMsgs, sz.TotalBytes, sz.State)

	js := env.JS(t)
	ai, err := js.AccountInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.JetStream = append(s.JetStream, fmt.Sprintf("account streams %d consumers %d storage %d reserved %d", ai.Streams, ai.Consumers, ai.Store, ai.ReservedStore))
	for si := range js.ListStreams(ctx).Info() {
		b, _ := json.Marshal(struct {
			Config jetstream.StreamConfig
			State  jetstream.StreamState
		}{si.Config, si.State})
		s.JetStream = append(s.JetStream, "stream "+string(b))
		st, err := js.Stream(ctx, si.Config.Name)
		if err != nil {
			t.Fatal(err)
		}
		for ci := range st.ListConsumers(ctx).Info() {
			b, _ := json.Marshal(struct {
				Stream, Name                                 string
				Config                                       jetstream.ConsumerConfig
				Delivered, AckFloor                          uint64
				AckPending, Redelivered, Waiting, NumPending int
			}{ci.Stream, ci.Name, ci.Config, ci.Delivered.Stream, ci.AckFloor.Stream, ci.NumAckPending, ci.NumRedelivered, ci.NumWaiting, int(ci.NumPending)})
			s.JetStream = append(s.JetStream, "consumer "+string(b))
		}
	}
	sort.Strings(s.JetStream)
	return s
}

func getJSON(t *testing.T, url string, into any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

func diffState(t *testing.T, before, after serverState) {
	t.Helper()
	for f, sum := range before.Files {
		if a, ok := after.Files[f]; !ok {
			t.Errorf("file %s disappeared", f)
		} else if a != sum {
			t.Errorf("file %s changed", f)
		}
	}
	for f := range after.Files {
		if _, ok := before.Files[f]; !ok {
			t.Errorf("file %s appeared", f)
		}
	}
	diffLines(t, "STAN monitoring", before.STAN, after.STAN)
	diffLines(t, "JetStream API", before.JetStream, after.JetStream)
	if before.STANCounts != after.STANCounts {
		t.Errorf("STAN serverz: before %s, after %s", before.STANCounts, after.STANCounts)
	}
}

func diffLines(t *testing.T, what string, before, after []string) {
	t.Helper()
	in := func(lines []string) map[string]bool {
		m := map[string]bool{}
		for _, l := range lines {
			m[l] = true
		}
		return m
	}
	b, a := in(before), in(after)
	for _, l := range before {
		if !a[l] {
			t.Errorf("%s: gone or changed: %s", what, l)
		}
	}
	for _, l := range after {
		if !b[l] {
			t.Errorf("%s: new or changed: %s", what, l)
		}
	}
}

// TestPlanChangesNeitherServer runs the real `plan`, in every output
// format, against the core fixture and a target that already holds a
// stream migrated by an earlier run and a foreign stream with a consumer,
// and finds both servers identical afterwards: every store file
// byte-for-byte, STAN's channels, subscriptions and clients, and every
// JetStream stream and consumer.
func TestPlanChangesNeitherServer(t *testing.T) {
	env := startFixture(t, "core.yaml")
	dir := t.TempDir()
	earlier := filepath.Join(dir, "earlier.yaml")
	if r := run(t, envFor(env), "plan", "-o", earlier, "--channel", "audit.*"); r.code != 0 {
		t.Fatalf("plan: exit %d\n%s", r.code, r.stderr)
	}
	if r := run(t, envFor(env), "migrate", "--plan", earlier, "--quiet"); r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := env.JS(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ARCHIVE", Subjects: []string{"archive.>"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := js.Publish(ctx, "archive.x", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.CreateConsumer(ctx, "ARCHIVE", jetstream.ConsumerConfig{Durable: "reader", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}

	before := captureState(t, env)
	if len(before.JetStream) != 4 { // account, two streams, one consumer
		t.Fatalf("target not prepared as intended:\n%s", strings.Join(before.JetStream, "\n"))
	}
	planFile := filepath.Join(dir, "plan.yaml")
	for _, args := range [][]string{
		{"plan", "-o", planFile},
		{"plan", "-o", "-", "--format", "json"},
		{"plan", "-o", "-", "--format", "markdown", "--exclude", "orders.*"},
	} {
		if r := run(t, envFor(env), args...); r.code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	diffState(t, before, captureState(t, env))

	// The plan saw the earlier run's stream as resumable, not as a conflict.
	p, err := plan.Load(planFile)
	if err != nil {
		t.Fatal(err)
	}
	if b := p.Blockers(); len(b) != 0 {
		t.Errorf("blockers: %+v", b)
	}
	resumed := false
	for _, f := range p.Findings {
		if strings.Contains(f.Object, `stream "audit_log"`) && strings.Contains(f.Message, "migrate resumes it") {
			resumed = true
		}
	}
	if !resumed {
		t.Errorf("no finding says audit_log is resumed: %+v", p.Findings)
	}
}

// TestMigrateExitsTwoWhileThePlanHasBlockers: with a stream on the target
// whose subjects overlap a channel, `plan` reports the blocker, and
// `migrate` refuses to start, with or without a plan file: exit 2, the
// blocker named on stderr, and the target's streams and consumers exactly
// as they were.
func TestMigrateExitsTwoWhileThePlanHasBlockers(t *testing.T) {
	env := startFixture(t, "core.yaml")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := env.JS(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "AUDIT", Subjects: []string{"audit.*"}}); err != nil {
		t.Fatal(err)
	}
	before := captureState(t, env).JetStream

	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.yaml")
	r := run(t, envFor(env), "plan", "-o", planFile)
	if r.code != 0 {
		t.Fatalf("plan: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	const blocker = `subject "audit.log" overlaps stream "AUDIT"`
	if !strings.Contains(r.stdout, "BLOCKER") || !strings.Contains(r.stdout, blocker) {
		t.Errorf("plan report does not list the blocker:\n%s", r.stdout)
	}
	for _, args := range [][]string{
		{"migrate", "--plan", planFile},
		{"migrate", "--state", filepath.Join(dir, "state")},
	} {
		r := run(t, envFor(env), args...)
		if r.code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stderr, "blocker") || !strings.Contains(r.stderr, blocker) {
			t.Errorf("%v: stderr does not name the blocker: %s", args, r.stderr)
		}
	}
	if after := captureState(t, env).JetStream; strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("the target changed:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
}

// TestChannelSelectionIsRecordedAndMigratedAlone: repeatable --channel
// globs and --exclude globs choose the channels; the plan file and the
// report record what was left out, and migrating that plan creates
// streams for the selected channels only.
func TestChannelSelectionIsRecordedAndMigratedAlone(t *testing.T) {
	env := startFixture(t, "core.yaml")
	planFile := filepath.Join(t.TempDir(), "plan.yaml")
	r := run(t, envFor(env), "plan", "-o", planFile,
		"--channel", "orders.*", "--channel", "pay*", "--channel", "audit.*", "--exclude", "audit.*")
	if r.code != 0 {
		t.Fatalf("plan: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "Left out by selection: audit.log, sessions") {
		t.Errorf("report does not say what was left out:\n%s", r.stdout)
	}
	p, err := plan.Load(planFile)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range p.Channels {
		got = append(got, c.Name)
	}
	if strings.Join(got, ",") != "orders.eu,payments" || strings.Join(p.Excluded, ",") != "audit.log,sessions" {
		t.Fatalf("plan file: channels %v, excluded %v", got, p.Excluded)
	}
	if r := run(t, envFor(env), "migrate", "--plan", planFile, "--quiet"); r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	js := env.JS(t)
	var streams []string
	for n := range js.StreamNames(context.Background()).Name() {
		streams = append(streams, n)
	}
	sort.Strings(streams)
	if strings.Join(streams, ",") != "orders_eu,payments" {
		t.Errorf("streams on the target: %v, want orders_eu and payments only", streams)
	}
}
