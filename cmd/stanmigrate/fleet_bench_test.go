package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
)

// BenchmarkFleet runs 1, 2 and 3 migrate processes sharing one state
// bucket (--state kv:NAME) over the same plan, into a fresh JetStream
// server each time, in interleaved rounds, and reports the fleet's
// messages/s. On one 2-core machine shared with both servers it cannot
// show a multi-machine gain (every worker competes for the same cores);
// it shows what coordination costs. Run:
//
//	go test ./cmd/stanmigrate -run '^$' -bench Fleet -benchtime 3x
func BenchmarkFleet(b *testing.B) {
	spec := &fixture.Spec{}
	const channels, perChannel, size = 6, 50_000, 100
	for i := range channels {
		spec.Channels = append(spec.Channels, fixture.Channel{Name: fmt.Sprintf("fleet.%d", i+1), Messages: perChannel, Size: size})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	env, err := testenv.Start(ctx, b.TempDir(), spec)
	if err != nil {
		b.Fatal(err)
	}
	defer env.Stop()
	bin := binaryPath(b)
	planFile := filepath.Join(b.TempDir(), "plan.yaml")
	stanEnv := []string{"STAN_URL=" + env.Pair.STAN.URL(), "STAN_CLUSTER=" + env.Pair.STAN.ClusterID(), "STAN_MONITOR=" + env.Pair.STAN.MonitorURL(),
		"NATS_URL=" + env.Pair.JetStream.URL()}
	if r := runBinary(b, bin, stanEnv, "plan", "-o", planFile); r.code != 0 {
		b.Fatalf("plan: %s", r.stderr)
	}
	total := float64(channels * perChannel)
	elapsed := map[int]time.Duration{}
	for i := 0; i < b.N; i++ {
		for _, n := range []int{1, 2, 3} {
			js, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			e := append(append([]string{}, stanEnv...), "NATS_URL="+js.URL())
			start := time.Now()
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for w := range n {
				wg.Go(func() {
					cmd := exec.CommandContext(ctx, bin, "migrate", "--plan", planFile, "--state", "kv:bench", "--quiet")
					cmd.Env = append(cmd.Environ(), e...)
					cmd.Dir = b.TempDir()
					if out, err := cmd.CombinedOutput(); err != nil {
						errs <- fmt.Errorf("worker %d: %v\n%s", w, err, out)
					}
				})
			}
			wg.Wait()
			elapsed[n] += time.Since(start)
			js.Stop()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
		}
	}
	for _, n := range []int{1, 2, 3} {
		b.ReportMetric(total*float64(b.N)/elapsed[n].Seconds(), fmt.Sprintf("msgs/s-%dworkers", n))
	}
}
