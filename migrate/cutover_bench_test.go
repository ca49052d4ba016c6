package migrate_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/naming"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/internal/testkit/ceiling"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/verify"
)

// BenchmarkCutoverWindow measures the cutover window -- from the signal
// that finishes migrate --follow to the end of the verify that follows
// it -- for the same tail of new messages after a short and a long
// history. The history was verified before the window (its prefix is in
// the state store), so the window should cost the tail alone. Run:
//
//	go test ./migrate -run '^$' -bench CutoverWindow -benchtime 3x -v
//
// Each round measures both histories one after the other (interleaved),
// each with a fresh tail; the full re-read (verify --full) of the larger
// one is measured in the same round, for what the window cost before.
func BenchmarkCutoverWindow(b *testing.B) {
	const tail, size = 20_000, 128
	histories := []int{100_000, 1_000_000}
	envs := make([]*cutoverEnv, len(histories))
	for i, h := range histories {
		envs[i] = newCutoverEnv(b, h, size)
	}
	b.Run("rounds", func(b *testing.B) {
		took := ceiling.Rounds{}
		for i := 0; i < b.N; i++ {
			for j, e := range envs {
				w := e.window(b, tail, size)
				name := fmt.Sprintf("%dk", histories[j]/1000)
				took[name+"-window"] = append(took[name+"-window"], w.total)
				took[name+"-catchup"] = append(took[name+"-catchup"], w.migrate)
				took[name+"-tailverify"] = append(took[name+"-tailverify"], w.verify)
				if j == len(envs)-1 {
					took[name+"-fullverify"] = append(took[name+"-fullverify"], e.fullVerify(b))
				}
			}
		}
		short, long := fmt.Sprintf("%dk", histories[0]/1000), fmt.Sprintf("%dk", histories[1]/1000)
		ratio := float64(took.Median(long+"-window")) / float64(took.Median(short+"-window"))
		b.ReportMetric(took.Median(short+"-window").Seconds(), short+"-window-s")
		b.ReportMetric(took.Median(long+"-window").Seconds(), long+"-window-s")
		b.ReportMetric(ratio, "long/short")
		if !ceiling.Final(b) {
			return
		}
		for _, k := range []string{short, long} {
			b.Logf("| %s history, %dk tail | %.2f s | %.2f s | %.2f s |", k, tail/1000,
				took.Median(k+"-catchup").Seconds(), took.Median(k+"-tailverify").Seconds(), took.Median(k+"-window").Seconds())
		}
		b.Logf("verify --full after the %s history: %.2f s; window ratio %s/%s: %.2f (rounds: %d)",
			long, took.Median(long+"-fullverify").Seconds(), long, short, ratio, b.N)
	})
}

// cutoverEnv is one channel with its history migrated and verified.
type cutoverEnv struct {
	env   *testenv.Env
	store state.Store
	sc    stan.Conn
	total int
	seq   int
}

const cutoverChannel = "bench.cutover"

func newCutoverEnv(b *testing.B, history, size int) *cutoverEnv {
	ctx := context.Background()
	spec := &fixture.Spec{Channels: []fixture.Channel{{Name: cutoverChannel, Messages: history, Size: size}}}
	env, err := testenv.Start(ctx, b.TempDir(), spec)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(env.Stop)
	sc, err := stan.Connect(env.Pair.STAN.ClusterID(), "tail-producer", stan.NatsURL(env.Pair.STAN.URL()), stan.MaxPubAcksInflight(8192))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sc.Close() })
	e := &cutoverEnv{env: env, store: state.NewDir(filepath.Join(env.Root, "state")), sc: sc, total: history}
	p, err := env.Plan(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := migrate.Run(ctx, env.Src(b), p, env.MigrateOptions()); err != nil {
		b.Fatal(err)
	}
	// The history is verified before any window (as verify --follow
	// does while migrate follows).
	if rep, err := verify.Run(ctx, env.Src(b), p, e.verifyOptions(false)); err != nil || rep.Channels[0].Read != uint64(history) {
		b.Fatalf("verify the history: %v", err)
	}
	return e
}

func (e *cutoverEnv) verifyOptions(full bool) verify.Options {
	o := e.env.VerifyOptions()
	o.State, o.Full = e.store, full
	return o
}

// stages is one window: migrate's final catch-up and consumers, the tail
// verify after it, and the whole.
type stages struct{ migrate, verify, total time.Duration }

// window runs migrate --follow, publishes a tail while it follows, stops
// the producer and finishes: the window runs from the finish signal to
// the end of the verify that follows.
func (e *cutoverEnv) window(b *testing.B, tail, size int) stages {
	ctx := context.Background()
	p, err := e.env.Plan(ctx)
	if err != nil {
		b.Fatal(err)
	}
	finish := make(chan struct{})
	opts := e.env.MigrateOptions()
	opts.Follow, opts.Finish = true, finish
	done := make(chan error, 1)
	go func() { _, err := migrate.Run(ctx, e.env.Src(b), p, opts); done <- err }()
	e.publish(b, tail, size)
	e.waitCopied(b, ctx, e.total-tail/10) // following: all but the last moments' messages copied
	start := time.Now()
	close(finish)
	if err := <-done; err != nil {
		b.Fatalf("migrate --follow: %v", err)
	}
	copied := time.Now()
	rep, err := verify.Run(ctx, e.env.Src(b), p, e.verifyOptions(false))
	if err != nil {
		b.Fatalf("tail verify: %v", err)
	}
	end := time.Now()
	if c := rep.Channels[0]; c.Read != uint64(tail) || c.Earlier != uint64(e.total-tail) {
		b.Fatalf("tail verify read %d past %d verified earlier; want %d past %d", c.Read, c.Earlier, tail, e.total-tail)
	}
	return stages{migrate: copied.Sub(start), verify: end.Sub(copied), total: end.Sub(start)}
}

// publish writes n new messages to the channel and waits for STAN's acks.
func (e *cutoverEnv) publish(b *testing.B, n, size int) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	data := make([]byte, size)
	for range n {
		e.seq++
		copy(data, fmt.Sprintf("tail-%d", e.seq))
		wg.Add(1)
		if _, err := e.sc.PublishAsync(cutoverChannel, data, func(_ string, err error) {
			if err != nil {
				mu.Lock()
				first = err
				mu.Unlock()
			}
			wg.Done()
		}); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
	e.total += n
}

// waitCopied waits until the stream holds at least n messages.
func (e *cutoverEnv) waitCopied(b *testing.B, ctx context.Context, n int) {
	js := e.env.JS(b)
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s, err := js.Stream(ctx, naming.StreamName(cutoverChannel))
		if err == nil && s.CachedInfo().State.Msgs >= uint64(n) {
			return
		}
	}
	b.Fatalf("the stream never held %d messages", n)
}

// fullVerify is what the window's verify cost before prefixes: every
// message again.
func (e *cutoverEnv) fullVerify(b *testing.B) time.Duration {
	ctx := context.Background()
	p, err := e.env.Plan(ctx)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if _, err := verify.Run(ctx, e.env.Src(b), p, e.verifyOptions(true)); err != nil {
		b.Fatalf("verify --full: %v", err)
	}
	return time.Since(start)
}
