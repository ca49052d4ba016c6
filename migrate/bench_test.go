package migrate_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/source"
	sourcedir "github.com/stanmigrate/stanmigrate/internal/source/dir"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/internal/testkit/ceiling"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/storetest"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/plan"
	"github.com/stanmigrate/stanmigrate/verify"
)

// BenchmarkThroughput measures, in one run on the same data and servers,
// the raw ceilings (STAN read, JetStream async publish, the two pipelined
// with STAN acks after JetStream acks, without and with stan2js's
// headers) next to migrate and verify. Run:
//
//	go test ./migrate -run '^$' -bench Throughput -benchtime 5x -v
//
// Each iteration is a round that measures every column once, one after
// the other, so that drift on a shared machine (other load, caches, the
// servers' growing stores) touches all columns of a round alike. A shape
// reports the median rate of each column and, for migrate and verify, the
// median of their per-round ratios to the ceiling they are held to; with
// -v it logs the row the README's table holds. The migrate-ttl column is
// migrate with a Nats-TTL on every message (expiry: original), to measure
// that header's cost against the migrate column. To profile migrate
// against the pipelined ceiling on one shape:
//
//	STANMIGRATE_BENCH_COLUMNS=pipelined go test ./migrate -run '^$' -bench 'Throughput/128B/1ch' -benchtime 3x -cpuprofile base.out
//	STANMIGRATE_BENCH_COLUMNS=migrate go test ./migrate -run '^$' -bench 'Throughput/128B/1ch' -benchtime 3x -cpuprofile migrate.out
//	go tool pprof -top -diff_base base.out migrate.out
func BenchmarkThroughput(b *testing.B) {
	for _, size := range []int{128, 1024, 65536} {
		for _, channels := range []int{1, 8} {
			total := 200_000
			if size == 65536 {
				total = 8_000
			}
			b.Run(fmt.Sprintf("%dB/%dch", size, channels), func(b *testing.B) {
				benchShape(b, size, channels, total/channels)
			})
		}
	}
}

// column is one measurement of a round.
type column struct {
	name string
	run  func(b *testing.B) time.Duration
}

func benchShape(b *testing.B, size, channels, perChannel int) {
	spec := &fixture.Spec{}
	for i := 0; i < channels; i++ {
		spec.Channels = append(spec.Channels, fixture.Channel{Name: fmt.Sprintf("bench.%d", i), Messages: perChannel, Size: size})
	}
	ctx := context.Background()
	env, err := testenv.Start(ctx, b.TempDir(), spec)
	if err != nil {
		b.Fatal(err)
	}
	defer env.Stop()
	// A copy of the store, for the offline source: what migrate reads
	// from a stopped server's directory, with no STAN server in the loop.
	env.Pair.STAN.Stop()
	stopped := filepath.Join(b.TempDir(), "stan")
	storetest.CopyDir(b, env.Pair.STAN.Dir(), stopped)
	if err := env.Pair.STAN.Start(); err != nil {
		b.Fatal(err)
	}
	src := ceiling.Source{ClusterID: env.Pair.STAN.ClusterID(), URL: env.Pair.STAN.URL(), PerChannel: perChannel}
	for _, c := range spec.Channels {
		src.Channels = append(src.Channels, c.Name)
	}
	// Every column that writes gets a fresh target, removed as soon as
	// it is done with (verify reads the one migrate wrote): gigabytes of
	// stores left behind would be written back to disk while later
	// columns run.
	root := b.TempDir()
	var targets int
	dirs := map[*embedded.JetStream]string{}
	freshTarget := func(b *testing.B) *embedded.JetStream {
		targets++
		dir := filepath.Join(root, fmt.Sprintf("js-%d", targets))
		js, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		dirs[js] = dir
		return js
	}
	drop := func(js *embedded.JetStream) {
		js.Stop()
		_ = os.RemoveAll(dirs[js])
		_ = os.RemoveAll(dirs[js] + ".state")
		delete(dirs, js)
	}
	timed := func(b *testing.B, f func() (time.Duration, error)) time.Duration {
		d, err := f()
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	payload := make([]byte, size)
	var migrated *embedded.JetStream
	migrateInto := func(b *testing.B, headers string, keep bool, publish string, offline bool, ttl ...bool) time.Duration {
		js := freshTarget(b)
		env.Pair.JetStream = js
		p, err := env.Plan(ctx)
		if err != nil {
			b.Fatal(err)
		}
		p.Headers = headers
		if len(ttl) > 0 && ttl[0] {
			// As if the channels had a day's max_age: every message gets
			// a Nats-TTL (the stream allows per-message TTL).
			for i := range p.Channels {
				p.Channels[i].Limits.MaxAge = plan.Duration(24 * time.Hour)
				p.Channels[i].Expiry = plan.ExpiryOriginal
			}
		}
		opts := env.MigrateOptions()
		opts.State = state.NewDir(dirs[js] + ".state")
		opts.Publish = publish
		var from source.Source = env.Src(b)
		if offline {
			d, err := sourcedir.Open(ctx, stopped, sourcedir.Options{Limits: spec.StoreLimits(), LimitsFrom: "the fixture"})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			from = d
		}
		start := time.Now()
		if _, err := migrate.Run(ctx, from, p, opts); err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		if keep {
			migrated = js
		} else {
			drop(js)
		}
		return d
	}
	columns := []column{
		{"raw-stan-read", func(b *testing.B) time.Duration {
			return timed(b, func() (time.Duration, error) { return ceiling.STANRead(src, true) })
		}},
		{"raw-js-publish", func(b *testing.B) time.Duration {
			js := freshTarget(b)
			defer drop(js)
			return timed(b, func() (time.Duration, error) {
				return ceiling.JetStreamPublish(js.URL(), src.Channels, perChannel, payload)
			})
		}},
		{"pipelined", func(b *testing.B) time.Duration {
			js := freshTarget(b)
			defer drop(js)
			return timed(b, func() (time.Duration, error) { return ceiling.Pipelined(src, js.URL(), false) })
		}},
		{"raw-fast-ingest", func(b *testing.B) time.Duration {
			js := freshTarget(b)
			defer drop(js)
			return timed(b, func() (time.Duration, error) {
				return ceiling.FastIngest(js.URL(), src.Channels, perChannel, payload, true)
			})
		}},
		{"migrate-minimal-headers", func(b *testing.B) time.Duration {
			return migrateInto(b, jsformat.HeadersMinimal, false, migrate.PublishAuto, false)
		}},
		{"migrate-ttl", func(b *testing.B) time.Duration {
			return migrateInto(b, jsformat.HeadersFull, false, migrate.PublishAuto, false, true)
		}},
		{"migrate-async", func(b *testing.B) time.Duration {
			return migrateInto(b, jsformat.HeadersFull, false, migrate.PublishAsync, false)
		}},
		{"offline-migrate", func(b *testing.B) time.Duration {
			return migrateInto(b, jsformat.HeadersFull, false, migrate.PublishAuto, true)
		}},
		{"pipelined-headers", func(b *testing.B) time.Duration {
			js := freshTarget(b)
			defer drop(js)
			return timed(b, func() (time.Duration, error) { return ceiling.Pipelined(src, js.URL(), true) })
		}},
		{"migrate", func(b *testing.B) time.Duration {
			return migrateInto(b, jsformat.HeadersFull, true, migrate.PublishAuto, false)
		}},
		{"verify", func(b *testing.B) time.Duration {
			defer drop(migrated)
			p, err := env.Plan(ctx)
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			if rep, err := verify.Run(ctx, env.Src(b), p, env.VerifyOptions()); err != nil {
				for _, c := range rep.Channels {
					b.Log(c.Problem)
				}
				b.Fatal(err)
			}
			return time.Since(start)
		}},
	}
	// STANMIGRATE_BENCH_COLUMNS (comma separated) runs only those
	// columns, to profile one against another: the ratios of the columns
	// left out are not reported.
	only := os.Getenv("STANMIGRATE_BENCH_COLUMNS")
	if only != "" {
		keep := map[string]bool{}
		for _, n := range strings.Split(only, ",") {
			keep[strings.TrimSpace(n)] = true
		}
		if keep["verify"] && !keep["migrate"] {
			b.Fatal("STANMIGRATE_BENCH_COLUMNS: verify reads what the migrate column wrote; add migrate")
		}
		columns = slices.DeleteFunc(columns, func(c column) bool { return !keep[c.name] })
	}
	b.Run("rounds", func(b *testing.B) {
		defer ceiling.Cores(b)()
		took := ceiling.Rounds{}
		for i := 0; i < b.N; i++ {
			for _, c := range roundOrder(columns, i) {
				took[c.name] = append(took[c.name], c.run(b))
			}
		}
		total := channels * perChannel
		rate := func(col string) float64 { return took.Rate(col, total) }
		for _, c := range columns {
			b.ReportMetric(rate(c.name), c.name+"-msgs/s")
		}
		if len(took["migrate-ttl"]) > 0 && len(took["migrate"]) > 0 {
			// Nats-TTL's cost: the median over rounds of the ratio.
			b.ReportMetric(took.Share("migrate-ttl", "migrate"), "ttl-vs-migrate-%")
		}
		// The issue-19 target: migrate at >= 1.25x a naive pipelined
		// migrator carrying the same stan2js headers.
		vsNaive := 0.0
		if len(took["migrate"]) > 0 && len(took["pipelined-headers"]) > 0 {
			vsNaive = took.Share("migrate", "pipelined-headers") / 100
			b.ReportMetric(vsNaive, "migrate-vs-naive-headers-x")
			if ceiling.Final(b) {
				var each []string
				for i := range took["migrate"] {
					each = append(each, fmt.Sprintf("%.2f", float64(took["pipelined-headers"][i])/float64(took["migrate"][i])))
				}
				b.Logf("migrate / naive pipelined with headers, round by round: %s", strings.Join(each, " "))
			}
		}
		if only != "" {
			return
		}
		migratePct, minimalPct, asyncPct := took.Share("migrate", "pipelined"), took.Share("migrate-minimal-headers", "pipelined"), took.Share("migrate-async", "pipelined")
		offlinePct, verifyPct := took.Share("offline-migrate", "raw-fast-ingest"), took.Share("verify", "raw-stan-read")
		b.ReportMetric(migratePct, "migrate-%")
		b.ReportMetric(offlinePct, "offline-%")
		b.ReportMetric(verifyPct, "verify-%")
		if !ceiling.Final(b) {
			return
		}
		mbs := func(k string) string { return fmt.Sprintf("%.0f MB/s", rate(k)*float64(size)/1e6) }
		b.Logf("naive pipelined with stan2js headers: %.0fk msgs/s; migrate %.2fx of it", rate("pipelined-headers")/1e3, vsNaive)
		b.Logf("| %d B, %d ch | %.0fk (%s) | %.0fk | %.0fk (%s) | **%.0fk** (%s, **%.0f%%**) | %.0fk (%.0f%%) | %.0fk (%.0f%%) | %.0fk | **%.0fk** (**%.0f%%**) | **%.0fk** (**%.0f%%** of raw read) |",
			size, channels, rate("raw-stan-read")/1e3, mbs("raw-stan-read"), rate("raw-js-publish")/1e3,
			rate("pipelined")/1e3, mbs("pipelined"), rate("migrate")/1e3, mbs("migrate"), migratePct,
			rate("migrate-minimal-headers")/1e3, minimalPct, rate("migrate-async")/1e3, asyncPct,
			rate("raw-fast-ingest")/1e3, rate("offline-migrate")/1e3, offlinePct, rate("verify")/1e3, verifyPct)
	})
}

// roundOrder runs the naive pipeline with headers right before migrate in
// even rounds and right after verify in odd ones: the pair the issue-19
// ratio compares runs back to back, each first half the time, so neither
// always inherits what the columns before it left the machine (page
// cache to write back, a heap to collect).
func roundOrder(columns []column, round int) []column {
	if round%2 == 0 {
		return columns
	}
	out := make([]column, 0, len(columns))
	var naive []column
	for _, c := range columns {
		if c.name == "pipelined-headers" {
			naive = append(naive, c)
			continue
		}
		out = append(out, c)
	}
	return append(out, naive...)
}
