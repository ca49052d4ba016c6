package migrate_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/embedded"
	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/testenv"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/plan"
	"github.com/stanmigrate/stanmigrate/verify"
)

// BenchmarkThroughput measures, in one run on the same data and servers,
// the raw ceilings (STAN read, JetStream async publish, the two pipelined
// with STAN acks after JetStream acks) next to migrate and verify. Run:
//
//	go test ./migrate -run '^$' -bench Throughput -benchtime 1x
//
// Each sub-benchmark moves the whole data set once per iteration and
// reports msgs/s and MB/s; each shape then logs one Markdown table row
// (the README's table) with migrate as a share of the pipelined ceiling
// and verify as a share of the raw STAN read.
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
	total := channels * perChannel
	bytes := float64(total * size)
	// rates keeps each sub-benchmark's msgs/s, keyed by its last name
	// element, for the summary row printed at the end.
	rates := map[string]float64{}
	report := func(b *testing.B, d time.Duration) {
		b.ReportMetric(float64(total)/d.Seconds(), "msgs/s")
		b.ReportMetric(bytes/d.Seconds()/1e6, "MB/s")
		name := b.Name()
		rates[name[strings.LastIndex(name, "/")+1:]] = float64(total) / d.Seconds()
	}
	defer func() {
		if rates["migrate"] == 0 || rates["verify"] == 0 {
			return
		}
		mbs := func(k string) string { return fmt.Sprintf("%.0f MB/s", rates[k]*float64(size)/1e6) }
		pct := func(k, of string) string { return fmt.Sprintf("%.0f%%", 100*rates[k]/rates[of]) }
		b.Logf("| %d B, %d ch | %.0fk (%s) | %.0fk | %.0fk (%s) | **%.0fk** (%s, **%s**) | %.0fk (%s) | **%.0fk** (**%s** of raw read) |",
			size, channels, rates["raw-stan-read"]/1e3, mbs("raw-stan-read"), rates["raw-js-publish"]/1e3,
			rates["pipelined"]/1e3, mbs("pipelined"), rates["migrate"]/1e3, mbs("migrate"), pct("migrate", "pipelined"),
			rates["migrate-minimal-headers"]/1e3, pct("migrate-minimal-headers", "pipelined"),
			rates["verify"]/1e3, pct("verify", "raw-stan-read"))
	}()
	// Targets live in the parent's temporary directory: a sub-benchmark's
	// own is removed when it ends, and verify reads the migrated target.
	root := b.TempDir()
	var targets int
	freshTarget := func(b *testing.B) *embedded.JetStream {
		targets++
		js, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: filepath.Join(root, fmt.Sprintf("js-%d", targets))})
		if err != nil {
			b.Fatal(err)
		}
		return js
	}
	chans := make([]string, channels)
	for i := range chans {
		chans[i] = spec.Channels[i].Name
	}

	b.Run("raw-stan-read", func(b *testing.B) {
		defer cores(b)()
		var d time.Duration
		for i := 0; i < b.N; i++ {
			d += rawRead(b, env, chans, perChannel)
		}
		report(b, d/time.Duration(b.N))
	})
	b.Run("raw-js-publish", func(b *testing.B) {
		defer cores(b)()
		var d time.Duration
		payload := make([]byte, size)
		for i := 0; i < b.N; i++ {
			js := freshTarget(b)
			d += rawPublish(b, js, chans, perChannel, payload)
			js.Stop()
		}
		report(b, d/time.Duration(b.N))
	})
	b.Run("pipelined", func(b *testing.B) {
		defer cores(b)()
		var d time.Duration
		for i := 0; i < b.N; i++ {
			js := freshTarget(b)
			d += pipelined(b, env, js, chans, perChannel)
			js.Stop()
		}
		report(b, d/time.Duration(b.N))
	})
	var migrated *embedded.JetStream
	migrateRun := func(b *testing.B, headers string) {
		defer cores(b)()
		var d time.Duration
		for i := 0; i < b.N; i++ {
			if migrated != nil {
				migrated.Stop()
			}
			migrated = freshTarget(b)
			env.Pair.JetStream = migrated
			p, err := env.Plan(ctx)
			if err != nil {
				b.Fatal(err)
			}
			p.Headers = headers
			opts := env.MigrateOptions()
			opts.StateDir = filepath.Join(b.TempDir(), "state")
			start := time.Now()
			if _, err := migrate.Run(ctx, p, opts); err != nil {
				b.Fatal(err)
			}
			d += time.Since(start)
		}
		report(b, d/time.Duration(b.N))
	}
	// The lean header set (Msg-Id and timestamp) first, so that the
	// default's target is the one verify then reads.
	b.Run("migrate-minimal-headers", func(b *testing.B) { migrateRun(b, plan.HeadersMinimal) })
	b.Run("migrate", func(b *testing.B) { migrateRun(b, plan.HeadersFull) })
	b.Run("verify", func(b *testing.B) {
		defer cores(b)()
		p, err := env.Plan(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var d time.Duration
		for i := 0; i < b.N; i++ {
			start := time.Now()
			if rep, err := verify.Run(ctx, p, env.VerifyOptions()); err != nil {
				for _, c := range rep.Channels {
					b.Log(c.Problem)
				}
				b.Fatal(err)
			}
			d += time.Since(start)
		}
		report(b, d/time.Duration(b.N))
	})
	if migrated != nil {
		migrated.Stop()
	}
}

// cores reports the CPU the whole process (both embedded servers and
// the client) used per second of the sub-benchmark: 2 on this machine
// means the run was CPU-bound, less that something waited.
func cores(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	c0, t0 := cpu(), time.Now()
	return func() { b.ReportMetric(float64(cpu()-c0)/float64(time.Since(t0)), "cores") }
}

func rawRead(b *testing.B, env *testenv.Env, chans []string, per int) time.Duration {
	sc, err := stan.Connect(env.Pair.STAN.ClusterID(), fmt.Sprintf("bench-read-%d", time.Now().UnixNano()), stan.NatsURL(env.Pair.STAN.URL()))
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	var left atomic.Int64
	left.Store(int64(len(chans) * per))
	done := make(chan struct{})
	start := time.Now()
	for _, c := range chans {
		_, err := sc.Subscribe(c, func(m *stan.Msg) {
			_ = m.Ack()
			if left.Add(-1) == 0 {
				close(done)
			}
		}, stan.DeliverAllAvailable(), stan.SetManualAckMode(), stan.MaxInflight(8192))
		if err != nil {
			b.Fatal(err)
		}
	}
	<-done
	return time.Since(start)
}

func rawPublish(b *testing.B, target *embedded.JetStream, chans []string, per int, payload []byte) time.Duration {
	nc, err := nats.Connect(target.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	ctx := context.Background()
	for _, c := range chans {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "raw_" + c[len("bench."):], Subjects: []string{c}}); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	for i := 0; i < per; i++ {
		for _, c := range chans {
			if _, err := js.PublishAsync(c, payload); err != nil {
				b.Fatal(err)
			}
		}
	}
	<-js.PublishAsyncComplete()
	return time.Since(start)
}

// pipelined is the naive ceiling for a correct migrator: read STAN,
// publish asynchronously, ack STAN when JetStream acked. No headers, no
// sequence expectations, no checkpoints.
func pipelined(b testing.TB, env *testenv.Env, target *embedded.JetStream, chans []string, per int) time.Duration {
	nc, err := nats.Connect(target.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	sc, err := stan.Connect(env.Pair.STAN.ClusterID(), fmt.Sprintf("bench-pipe-%d", time.Now().UnixNano()), stan.NatsURL(env.Pair.STAN.URL()))
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	var left atomic.Int64
	left.Store(int64(len(chans) * per))
	done := make(chan struct{})
	start := time.Now()
	for _, c := range chans {
		js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "pipe_" + c[len("bench."):], Subjects: []string{c}}); err != nil {
			b.Fatal(err)
		}
		acks := make(chan struct {
			f jetstream.PubAckFuture
			m *stan.Msg
		}, 8192)
		go func() {
			for a := range acks {
				select {
				case <-a.f.Ok():
				case err := <-a.f.Err():
					b.Error(err)
				}
				_ = a.m.Ack()
				if left.Add(-1) == 0 {
					close(done)
				}
			}
		}()
		_, err := sc.Subscribe(c, func(m *stan.Msg) {
			f, err := js.PublishAsync(m.Subject, m.Data)
			if err != nil {
				b.Error(err)
				return
			}
			acks <- struct {
				f jetstream.PubAckFuture
				m *stan.Msg
			}{f, m}
		}, stan.DeliverAllAvailable(), stan.SetManualAckMode(), stan.MaxInflight(8192))
		if err != nil {
			b.Fatal(err)
		}
	}
	<-done
	return time.Since(start)
}
