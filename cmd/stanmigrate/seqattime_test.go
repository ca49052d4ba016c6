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
	// firstAtOrAfter is the answer by STAN's own timestamps, read in order.
	firstAtOrAfter := func(at time.Time) (bool, uint64) {
		for seq := uint64(1); seq <= n; seq++ {
			if !times[seq].Before(at) {
				return true, seq
			}
		}
		return false, n + 1
	}
	// Sequence 11 opens the third burst: a time just after 10's is 11's.
	cases := []struct {
		name string
		at   time.Time
		arg  string // --time, when not at in RFC 3339
	}{
		{"before the first message", times[1].Add(-time.Hour), ""},
		{"a message's own time", times[7], ""},
		{"between two bursts", times[10].Add(time.Nanosecond), ""},
		{"the last message's time", times[n], ""},
		{"after the last message", times[n].Add(time.Millisecond), ""},
		{"a duration ago reaching before the first", time.Now().Add(-time.Hour), "1h"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			arg := c.arg
			if arg == "" {
				arg = rfc(c.at)
			}
			r := run(t, env, "seq-at-time", "--channel", "ticks.eu", "--time", arg, "--json")
			if r.code != 0 {
				t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			var res seek.Result
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatalf("--json output does not parse: %v\n%s", err, r.stdout)
			}
			found, seq := firstAtOrAfter(c.at)
			if res.Found != found || res.Seq != seq || res.Stream != "ticks_eu" {
				t.Fatalf("stream %q found %v at %d, want ticks_eu %v at %d", res.Stream, res.Found, res.Seq, found, seq)
			}
			if found && !res.Timestamp.Equal(times[seq]) {
				t.Errorf("timestamp %v, want STAN's %v for sequence %d", res.Timestamp, times[seq], seq)
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
