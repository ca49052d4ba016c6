package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/stan.go"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/stanmigrate/stanmigrate/internal/freeport"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/plan"
	"github.com/stanmigrate/stanmigrate/verify"
)

// runOperated runs a command line in-process as run does, letting hook
// set the options tests inject (afterRun, logEvery) on migrate and
// verify. terminal says whether stderr is one.
func runOperated(t testing.TB, env []string, terminal bool, hook func(*operateOptions), args ...string) result {
	t.Helper()
	return runWith(t, env, terminal, runners{
		migrate: func(ctx context.Context, o *migrateOptions) error { hook(&o.op); return runMigrate(ctx, o) },
		verify:  func(ctx context.Context, o *verifyOptions) error { hook(&o.op); return runVerify(ctx, o) },
	}, args...)
}

// scrape is one read of /metrics: family name to its metrics.
type scrape map[string]*dto.MetricFamily

func getScrape(addr string) (scrape, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	return scrape(fams), err
}

func getHealth(addr string) (int, string, error) {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// value is the metric's value for a channel ("" for a run-wide one),
// and whether it exists.
func (s scrape) value(name, channel string) (float64, bool) {
	f, ok := s[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.Metric {
		if channel != "" && label(m, "channel") != channel {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// ours is the stanmigrate_ metric names a scrape holds.
func (s scrape) ours() []string {
	var out []string
	for n := range s {
		if strings.HasPrefix(n, "stanmigrate_") {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// scraper reads /metrics and /healthz every 100 ms while a run goes on.
type scraper struct {
	mu      sync.Mutex
	scrapes []scrape
	health  []string // "code body"
	stop    chan struct{}
	done    chan struct{}
}

func startScraper(addr string) *scraper {
	s := &scraper{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			sc, err := getScrape(addr)
			if err != nil {
				continue // not listening yet, or already closed
			}
			code, body, err := getHealth(addr)
			s.mu.Lock()
			s.scrapes = append(s.scrapes, sc)
			if err == nil {
				s.health = append(s.health, fmt.Sprintf("%d %s", code, body))
			}
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *scraper) close() {
	close(s.stop)
	<-s.done
}

// freshTarget is an empty JetStream server for one run, as NATS_URL.
func freshTarget(t *testing.T) string {
	t.Helper()
	js, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(js.Stop)
	return "NATS_URL=" + js.URL()
}

// planned writes a plan of env with the plan command and loads it.
func planned(t *testing.T, env *testenv.Env) (string, *plan.Plan) {
	t.Helper()
	planFile := filepath.Join(t.TempDir(), "plan.yaml")
	if r := run(t, envFor(env), "plan", "-o", planFile); r.code != 0 {
		t.Fatalf("plan: %s", r.stderr)
	}
	p, err := plan.Load(planFile)
	if err != nil {
		t.Fatal(err)
	}
	return planFile, p
}

func metricsAddr(t *testing.T) string {
	t.Helper()
	port, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// TestMetricsDuringAMigration scrapes /metrics and /healthz while migrate
// copies the core fixture (capped so that the copy lasts a few seconds),
// and once more after the run, before the server stops. It checks what an
// operator watching the dashboard relies on: some channel's lag is above
// zero during the run and every channel's is zero at the end; the
// counters agree with the summary; the stream's last sequence is the
// summary's; every channel ends in phase done; /healthz says progressing
// throughout and complete at the end. Then verify serves its metrics too,
// and docs/metrics.md's table names exactly the stanmigrate_ metrics the
// two runs served.
func TestMetricsDuringAMigration(t *testing.T) {
	env := startFixture(t, "core.yaml")
	planFile, p := planned(t, env)
	rate := max(p.Totals.Msgs/3, 50) // about three seconds of copying
	addr := metricsAddr(t)
	sc := startScraper(addr)
	var final scrape
	var finalCode int
	var finalHealth string
	hook := func(o *operateOptions) {
		o.afterRun = func(a string) {
			var err error
			if final, err = getScrape(a); err != nil {
				t.Errorf("final scrape: %v", err)
			}
			finalCode, finalHealth, _ = getHealth(a)
		}
	}
	target := freshTarget(t)
	r := runOperated(t, append(envFor(env), target), false, hook, "migrate", "--plan", planFile, "--json",
		"--metrics-listen", addr, "--rate", fmt.Sprint(rate))
	sc.close()
	if r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s", r.code, r.stderr)
	}
	var sum migrate.Summary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, r.stdout)
	}
	if final == nil {
		t.Fatal("no scrape after the run")
	}
	t.Logf("%d scrapes during the run; final health %d %q", len(sc.scrapes), finalCode, finalHealth)

	sawLag, sawLeases := false, false
	for _, s := range sc.scrapes {
		if v, _ := s.value("stanmigrate_leases_held", ""); v > 0 {
			sawLeases = true
		}
		for _, c := range sum.Channels {
			if v, _ := s.value("stanmigrate_lag_messages", c.Channel); v > 0 {
				sawLag = true
			}
		}
	}
	if !sawLeases {
		t.Errorf("no scrape during the run saw a channel lease held (%d scrapes)", len(sc.scrapes))
	}
	if v, _ := final.value("stanmigrate_leases_held", ""); v != 0 {
		t.Errorf("%v lease(s) held after the run, want 0", v)
	}
	if v, ok := final.value("stanmigrate_already_stored_total", ""); !ok || v != float64(sum.AlreadyStored) {
		t.Errorf("stanmigrate_already_stored_total %v (present %v), summary says %d", v, ok, sum.AlreadyStored)
	}
	if !sawLag {
		t.Errorf("no scrape during the run saw a channel's lag above zero (%d scrapes)", len(sc.scrapes))
	}
	for _, h := range sc.health {
		// The last scrapes may come after the run ended.
		if !strings.HasPrefix(h, "200 progressing") && h != "200 the run is complete" {
			t.Errorf("/healthz during the run: %s", h)
			break
		}
	}
	if finalCode != http.StatusOK || finalHealth != "the run is complete" {
		t.Errorf("/healthz after the run: %d %q", finalCode, finalHealth)
	}
	for _, c := range sum.Channels {
		checks := []struct {
			metric string
			want   float64
		}{
			{"stanmigrate_lag_messages", 0},
			{"stanmigrate_lag_seconds", 0},
			{"stanmigrate_copied_messages_total", float64(c.Copied)},
			{"stanmigrate_copied_bytes_total", float64(c.Bytes)},
			{"stanmigrate_stream_last_sequence", float64(c.LastSeq)},
		}
		for _, ck := range checks {
			got, ok := final.value(ck.metric, c.Channel)
			if !ok || got != ck.want {
				t.Errorf("%s{channel=%q} = %v (present %v), want %v", ck.metric, c.Channel, got, ok, ck.want)
			}
		}
		if ph := phaseOf(final, c.Channel); ph != string(migrate.PhaseDone) {
			t.Errorf("channel %q ends in phase %q, want done", c.Channel, ph)
		}
	}
	if got, _ := final.value("stanmigrate_rate_limit_messages_per_second", ""); got != float64(rate) {
		t.Errorf("rate limit metric %v, want %d", got, rate)
	}
	if got, _ := final.value("stanmigrate_planned_messages", ""); got != float64(p.Totals.Msgs) {
		t.Errorf("planned messages %v, want %d", got, p.Totals.Msgs)
	}

	// verify serves its own metrics.
	var vfinal scrape
	vaddr := metricsAddr(t)
	vr := runOperated(t, append(envFor(env), target), false, func(o *operateOptions) {
		o.afterRun = func(a string) { vfinal, _ = getScrape(a) }
	}, "verify", "--plan", planFile, "--json", "--metrics-listen", vaddr)
	if vr.code != 0 {
		t.Fatalf("verify: exit %d\n%s%s", vr.code, vr.stdout, vr.stderr)
	}
	var rep verify.Report
	if err := json.Unmarshal([]byte(vr.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Channels {
		if got, ok := vfinal.value("stanmigrate_verified_messages_total", c.Channel); c.Source.Msgs > 0 && (!ok || got == 0) {
			t.Errorf("verify: stanmigrate_verified_messages_total{channel=%q} = %v (present %v) for %d message(s)", c.Channel, got, ok, c.Source.Msgs)
		}
	}

	served := slices.Compact(slices.Sorted(slices.Values(append(final.ours(), vfinal.ours()...))))
	documented := documentedMetrics(t)
	for _, m := range served {
		if !slices.Contains(documented, m) {
			t.Errorf("%s is served but not in docs/metrics.md's table", m)
		}
	}
	for _, m := range documented {
		if !slices.Contains(served, m) {
			t.Errorf("docs/metrics.md's table lists %s, which neither run served", m)
		}
	}
	t.Run("Grafana dashboard queries exist", func(t *testing.T) {
		all := append(final.ours(), vfinal.ours()...)
		for n := range final {
			all = append(all, n) // go_ and process_ too
		}
		checkDashboard(t, all)
	})
}

func phaseOf(s scrape, channel string) string {
	f := s["stanmigrate_channel_phase"]
	if f == nil {
		return ""
	}
	for _, m := range f.Metric {
		if label(m, "channel") == channel && m.Gauge.GetValue() == 1 {
			return label(m, "phase")
		}
	}
	return ""
}

// documentedMetrics are the metrics docs/metrics.md's table names.
func documentedMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(stanmigrate_[a-z_]+)` \\|").FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return out
}

// checkDashboard: every metric a query of the Grafana dashboard names is
// among those served.
func checkDashboard(t *testing.T, served []string) {
	t.Helper()
	queried := dashboardMetrics(t)
	if len(queried) < 10 {
		t.Fatalf("the dashboard queries only %v: reading it went wrong", queried)
	}
	for _, m := range queried {
		if !slices.Contains(served, m) {
			t.Errorf("the dashboard queries %s, which no live run serves", m)
		}
	}
}

// dashboardMetrics are the metric names in the dashboard's queries (and
// its template variables).
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../examples/grafana/stanmigrate.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("examples/grafana/stanmigrate.json: %v", err)
	}
	var exprs []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(string); ok {
			exprs = append(exprs, q)
		}
	}
	name := regexp.MustCompile(`\b(stanmigrate_[a-z_]+|go_[a-z_]+|process_[a-z_]+)\b`)
	var out []string
	for _, e := range exprs {
		for _, m := range name.FindAllString(e, -1) {
			out = append(out, m)
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(out)))
}

// TestMetricsWhileFollowing is the cutover view: migrate --follow copies
// the history, then new messages are published to orders.eu while it
// tails. The metrics must show STAN's last sequence moving to the new
// end (read again while following), and at the end every channel with no
// lag, its stream at STAN's end and its counter equal to the summary.
func TestMetricsWhileFollowing(t *testing.T) {
	env := startFixture(t, "core.yaml")
	planFile, _ := planned(t, env)
	addr := metricsAddr(t)
	var final scrape
	hook := func(o *operateOptions) {
		o.sourceEvery = 200 * time.Millisecond
		o.afterRun = func(a string) { final, _ = getScrape(a) }
	}
	done := make(chan result, 1)
	go func() {
		done <- runOperated(t, append(envFor(env), freshTarget(t)), false, hook, "migrate", "--plan", planFile, "--json",
			"--follow", "--until-idle", "4s", "--metrics-listen", addr)
	}()
	waitScrape := func(what string, ok func(scrape) bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if s, err := getScrape(addr); err == nil && ok(s) {
				return
			}
			select {
			case r := <-done:
				t.Fatalf("the run ended before %s: exit %d\n%s", what, r.code, r.stderr)
			case <-time.After(50 * time.Millisecond):
			}
		}
		t.Fatalf("no scrape showed %s within a minute", what)
	}
	waitScrape("orders.eu following with its history copied", func(s scrape) bool {
		v, _ := s.value("stanmigrate_stream_last_sequence", "orders.eu")
		return phaseOf(s, "orders.eu") == string(migrate.PhaseFollowing) && v == 600
	})
	sc, err := stan.Connect(env.Pair.STAN.ClusterID(), "late-producer", stan.NatsURL(env.Pair.STAN.URL()))
	if err != nil {
		t.Fatal(err)
	}
	const extra = 200
	for i := range extra {
		if err := sc.Publish("orders.eu", []byte(fmt.Sprintf("late-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	sc.Close()
	// Still following: not the final read when the channel finishes.
	waitScrape("STAN's last sequence of orders.eu at its new end while following", func(s scrape) bool {
		v, _ := s.value("stanmigrate_source_last_sequence", "orders.eu")
		return v == 600+extra && phaseOf(s, "orders.eu") == string(migrate.PhaseFollowing)
	})
	r := <-done
	if r.code != 0 {
		t.Fatalf("migrate --follow: exit %d\n%s", r.code, r.stderr)
	}
	var sum migrate.Summary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, r.stdout)
	}
	if final == nil {
		t.Fatal("no scrape after the run")
	}
	for _, c := range sum.Channels {
		lag, _ := final.value("stanmigrate_lag_messages", c.Channel)
		copied, _ := final.value("stanmigrate_copied_messages_total", c.Channel)
		last, _ := final.value("stanmigrate_stream_last_sequence", c.Channel)
		src, _ := final.value("stanmigrate_source_last_sequence", c.Channel)
		if lag != 0 || copied != float64(c.Copied) || last != float64(c.LastSeq) || src > last {
			t.Errorf("channel %q at the end: lag %v, copied %v (summary %d), stream last %v (summary %d), STAN last %v",
				c.Channel, lag, copied, c.Copied, last, c.LastSeq, src)
		}
	}
	if v, _ := final.value("stanmigrate_stream_last_sequence", "orders.eu"); v != 600+extra {
		t.Errorf("orders.eu's stream ends at %v, want %d", v, 600+extra)
	}
}
