package verify_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/digest"
	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/testkit/ceiling"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/verify"
)

// BenchmarkVerifyParts sets verify against the raw STAN read it is held
// to, and against the parts it cannot do without: reading the channel
// (without acks, as verify reads), reading the stream back, and one
// SHA-256 over the messages. Run:
//
//	go test ./verify -run '^$' -bench VerifyParts -benchtime 5x -v
//
// To profile verify alone against the raw read:
//
//	STANMIGRATE_BENCH_COLUMNS=raw-stan-read go test ./verify -run '^$' -bench 'VerifyParts/128B' -benchtime 3x -cpuprofile read.out
//	STANMIGRATE_BENCH_COLUMNS=verify go test ./verify -run '^$' -bench 'VerifyParts/128B' -benchtime 3x -cpuprofile verify.out
//
// Where the servers and the client share the cores, verify cannot finish
// before the CPU its parts need, spread over every core, has been spent:
// "parts" is that time as a share of the raw read (the bound for
// verify's own share), "verify" what verify reached.
func BenchmarkVerifyParts(b *testing.B) {
	for _, size := range []int{128, 1024, 65536} {
		total := 200_000
		if size == 65536 {
			total = 8_000
		}
		b.Run(fmt.Sprintf("%dB/1ch", size), func(b *testing.B) { benchVerifyParts(b, size, total) })
	}
}

func benchVerifyParts(b *testing.B, size, total int) {
	spec := &fixture.Spec{Channels: []fixture.Channel{{Name: "bench.0", Messages: total, Size: size}}}
	ctx := context.Background()
	env, err := testenv.Start(ctx, b.TempDir(), spec)
	if err != nil {
		b.Fatal(err)
	}
	defer env.Stop()
	p, err := env.Plan(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := migrate.Run(ctx, env.Src(b), p, env.MigrateOptions()); err != nil {
		b.Fatal(err)
	}
	src := ceiling.Source{ClusterID: env.Pair.STAN.ClusterID(), URL: env.Pair.STAN.URL(), Channels: []string{"bench.0"}, PerChannel: total}
	payload := make([]byte, size)
	type part struct {
		name string
		run  func() (time.Duration, error)
	}
	parts := []part{
		{"raw-stan-read", func() (time.Duration, error) { return ceiling.STANRead(src, true) }},
		{"stan-read-no-acks", func() (time.Duration, error) { return ceiling.STANRead(src, false) }},
		{"stream-read", func() (time.Duration, error) {
			return ceiling.StreamRead(env.Pair.JetStream.URL(), []string{p.Channels[0].Stream}, total)
		}},
		{"sha256", func() (time.Duration, error) {
			d := digest.New()
			start := time.Now()
			for i := 1; i <= total; i++ {
				d.Add(uint64(i), "bench.0", payload)
			}
			_ = d.Sum()
			return time.Since(start), nil
		}},
		{"verify", func() (time.Duration, error) {
			start := time.Now()
			_, err := verify.Run(ctx, env.Src(b), p, env.VerifyOptions())
			return time.Since(start), err
		}},
	}
	// STANMIGRATE_BENCH_COLUMNS (comma separated) runs only those parts,
	// to profile one alone: no shares are reported then.
	only := os.Getenv("STANMIGRATE_BENCH_COLUMNS")
	if only != "" {
		parts = slices.DeleteFunc(parts, func(p part) bool { return !slices.Contains(strings.Split(only, ","), p.name) })
	}
	b.Run("rounds", func(b *testing.B) {
		// took holds wall time; cpu the CPU time of the whole process
		// (servers and client) per part, as if spread over all cores.
		took, cpu := ceiling.Rounds{}, ceiling.Rounds{}
		for i := 0; i < b.N; i++ {
			for _, part := range parts {
				c0 := ceiling.CPU()
				d, err := part.run()
				if err != nil {
					b.Fatalf("%s: %v", part.name, err)
				}
				took[part.name] = append(took[part.name], d)
				cpu[part.name] = append(cpu[part.name], (ceiling.CPU()-c0)/time.Duration(runtime.NumCPU()))
			}
		}
		rate := func(col string) float64 { return took.Rate(col, total) / 1e3 }
		for _, part := range parts {
			b.ReportMetric(took.Rate(part.name, total), part.name+"-msgs/s")
		}
		if only != "" {
			return
		}
		verifyPct := took.Share("verify", "raw-stan-read")
		// The three parts, each given every core: verify does all three
		// on cores the servers share with it, so this is the most it
		// could reach.
		cpu.Sum("parts", "stan-read-no-acks", "stream-read", "sha256")
		cpu["raw-stan-read"] = took["raw-stan-read"]
		partsPct := cpu.Share("parts", "raw-stan-read")
		b.ReportMetric(verifyPct, "verify-%")
		b.ReportMetric(partsPct, "parts-%")
		if ceiling.Final(b) {
			b.Logf("| %d B | %.0fk | %.0fk | %.0fk | %.0fk | **%.0f%%** | **%.0fk** (**%.0f%%**) |", size,
				rate("raw-stan-read"), rate("stan-read-no-acks"), rate("stream-read"), rate("sha256"), partsPct,
				rate("verify"), verifyPct)
		}
	})
}
