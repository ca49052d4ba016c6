package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
)

// BenchmarkMigratePeakRSS runs the real binary over one channel and
// reports the migrator process's peak resident memory (the kernel's
// ru_maxrss for the child), next to its rate. Memory must not grow with
// the number of messages: compare the 100k and 1M rows. Run:
//
//	go test ./cmd/stanmigrate -run '^$' -bench PeakRSS -benchtime 1x
func BenchmarkMigratePeakRSS(b *testing.B) {
	for _, c := range []struct {
		name     string
		messages int
		size     int
	}{
		{"100k-x-1KiB", 100_000, 1024},
		{"1M-x-1KiB", 1_000_000, 1024},
		{"20k-x-64KiB", 20_000, 65536},
	} {
		b.Run(c.name, func(b *testing.B) {
			spec := &fixture.Spec{Channels: []fixture.Channel{{Name: "rss", Messages: c.messages, Size: c.size}}}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			env, err := testenv.Start(ctx, b.TempDir(), spec)
			if err != nil {
				b.Fatal(err)
			}
			defer env.Stop()
			var peak int64
			var rate float64
			var out bytes.Buffer
			for i := 0; i < b.N; i++ {
				dir := b.TempDir()
				cmd := exec.CommandContext(ctx, binaryPath(b), "migrate", "--quiet",
					"--stan-url", env.Pair.STAN.URL(), "--stan-monitor", env.Pair.STAN.MonitorURL(),
					"--nats-url", env.Pair.JetStream.URL(), "--state", filepath.Join(dir, "state"))
				out.Reset()
				cmd.Stdout, cmd.Stderr = &out, &out
				start := time.Now()
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				hwm := watchHWM(cmd.Process.Pid)
				if err := cmd.Wait(); err != nil {
					b.Fatalf("migrate: %v\n%s", err, out.String())
				}
				rate = float64(c.messages) / time.Since(start).Seconds()
				peak = max(peak, <-hwm)
				// The next iteration needs an empty target.
				if i+1 < b.N {
					if err := env.Pair.JetStream.Restart(); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
			b.ReportMetric(rate, "msgs/s")
			b.Logf("%s: peak RSS %.1f MiB, %.0f msgs/s (including connect and plan)", c.name, float64(peak)/1024, rate)
		})
	}
}

// watchHWM polls the kernel's high-water mark of resident memory (VmHWM)
// for pid until the process is gone, and sends the last value in KiB.
// The child's ru_maxrss cannot be used: Go starts children with
// vfork-style cloning, so the high-water mark a child inherits includes
// the parent's resident memory (here: the test process with both servers
// and the seeded data).
func watchHWM(pid int) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var last int64
		path := "/proc/" + strconv.Itoa(pid) + "/status"
		for {
			data, err := os.ReadFile(path)
			if err != nil {
				out <- last
				return
			}
			for _, line := range strings.Split(string(data), "\n") {
				if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					f := strings.Fields(v)
					if len(f) > 0 {
						if n, err := strconv.ParseInt(f[0], 10, 64); err == nil && n > 0 {
							last = n
						}
					}
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return out
}
