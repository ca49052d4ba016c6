package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/seek"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
)

// stanTimes publishes n messages to a STAN channel in bursts a few
// milliseconds apart and returns the timestamps STAN gave them, by
// sequence (1-based): the times an application's StartAtTime sees.
func stanTimes(t *testing.T, p *embedded.Pair, channel string, n int) []time.Time {
	t.Helper()
	sc, err := stan.Connect(p.STAN.ClusterID(), "seq-at-time-seeder", stan.NatsURL(p.STAN.URL()))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	for i := range n {
		if i%5 == 0 {
			time.Sleep(20 * time.Millisecond)
		}
		if err := sc.Publish(channel, []byte("tick")); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan *stan.Msg, n)
	sub, err := sc.Subscribe(channel, func(m *stan.Msg) { got <- m }, stan.DeliverAllAvailable())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	times := make([]time.Time, n+1)
	for range n {
		select {
		case m := <-got:
			times[m.Sequence] = time.Unix(0, m.Timestamp)
		case <-time.After(10 * time.Second):
			t.Fatal("STAN did not deliver the seeded messages")
		}
	}
	return times
}

func TestSeqAtTimeAnswersByTheOriginalSTANTimes(t *testing.T) {
	p, err := embedded.StartPair(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	const n = 20
	times := stanTimes(t, p, "ticks.eu", n)
	env := []string{
		"STAN_URL=" + p.STAN.URL(), "STAN_CLUSTER=" + p.STAN.ClusterID(),
		"STAN_MONITOR=" + p.STAN.MonitorURL(), "NATS_URL=" + p.JetStream.URL(),
	}
	if r := run(t, env, "migrate", "--state", t.TempDir(), "--quiet"); r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	// Sequence 11 opens the third burst: a time just after 10's is 11's.
	cases := []struct {
		name, at string
		found    bool
		seq      uint64
	}{
		{"before the first message", rfc(times[1].Add(-time.Hour)), true, 1},
		{"a message's own time", rfc(times[7]), true, 7},
		{"between two bursts", rfc(times[10].Add(time.Nanosecond)), true, 11},
		{"the last message's time", rfc(times[n]), true, n},
		{"after the last message", rfc(times[n].Add(time.Millisecond)), false, n + 1},
		{"a duration ago reaching before the first", "1h", true, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := run(t, env, "seq-at-time", "--channel", "ticks.eu", "--time", c.at, "--json")
			if r.code != 0 {
				t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			var res seek.Result
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatalf("--json output does not parse: %v\n%s", err, r.stdout)
			}
			if res.Found != c.found || res.Seq != c.seq || res.Stream != "ticks_eu" {
				t.Fatalf("stream %q found %v at %d, want ticks_eu %v at %d", res.Stream, res.Found, res.Seq, c.found, c.seq)
			}
			if c.found && !res.Timestamp.Equal(times[c.seq]) {
				t.Errorf("timestamp %v, want STAN's %v for sequence %d", res.Timestamp, times[c.seq], c.seq)
			}
		})
	}
	r := run(t, env, "seq-at-time", "--channel", "ticks.eu", "--time", rfc(times[10].Add(time.Nanosecond)))
	if r.code != 0 || !strings.HasPrefix(r.stdout, `sequence 11 of stream "ticks_eu" is the first at or after`) {
		t.Errorf("human output: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, env, "seq-at-time", "--channel", "ticks.eu", "--time", rfc(times[n].Add(time.Second)))
	if r.code != 0 || !strings.Contains(r.stdout, "start at sequence 21 for messages stored later") {
		t.Errorf("human output after the last: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, bad := range []struct{ args []string }{
		{[]string{"--channel", "ticks.eu", "--time", "yesterday"}},
		{[]string{"--channel", "ticks.eu", "--time", "-5m"}},
		{[]string{"--channel", "ticks.eu"}},
		{[]string{"--time", "1h"}},
		{[]string{"--channel", "no.such", "--time", "1h"}},
	} {
		r := run(t, env, append([]string{"seq-at-time"}, bad.args...)...)
		if r.code != 2 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || r.stdout != "" {
			t.Errorf("%v: exit %d, want 2 with one line on stderr\n%s%s", bad.args, r.code, r.stdout, r.stderr)
		}
	}
}
