package ceiling

import (
	"flag"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Rounds collects, per column, how long each round took. A benchmark
// measures every column once per round, back to back, so that drift on a
// shared machine (other load, caches, the servers' growing stores)
// touches all columns of a round alike.
type Rounds map[string][]time.Duration

// Median is the column's median duration.
func (r Rounds) Median(col string) time.Duration {
	s := append([]time.Duration(nil), r[col]...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// Rate is messages per second at the column's median duration.
func (r Rounds) Rate(col string, msgs int) float64 {
	return float64(msgs) / r.Median(col).Seconds()
}

// Share is the median over rounds of col's rate as a percentage of the
// rate of of in the same round.
func (r Rounds) Share(col, of string) float64 {
	var pct []float64
	for i := range r[col] {
		pct = append(pct, 100*float64(r[of][i])/float64(r[col][i]))
	}
	sort.Float64s(pct)
	return pct[len(pct)/2]
}

// Sum adds a column whose rounds last as long as the given columns' one
// after the other.
func (r Rounds) Sum(col string, of ...string) {
	r[col] = make([]time.Duration, len(r[of[0]]))
	for i := range r[col] {
		for _, o := range of {
			r[col][i] += r[o][i]
		}
	}
}

// Final reports whether this call of a benchmark function is the one
// whose results are printed: with -benchtime Nx the testing package first
// calls it once with b.N = 1, then with b.N = N.
func Final(b *testing.B) bool {
	f := flag.Lookup("test.benchtime")
	if f == nil {
		return true
	}
	v := f.Value.String()
	n, err := strconv.Atoi(strings.TrimSuffix(v, "x"))
	if !strings.HasSuffix(v, "x") || err != nil {
		return true
	}
	return b.N == n
}

// CPU is the CPU time the whole process has used so far.
func CPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Cores reports, when the returned function is called, the CPU the whole
// process (the embedded servers and the client) used per second since
// Cores was: on 2 cores, 2 means the run was CPU-bound, less that
// something waited.
func Cores(b *testing.B) func() {
	c0, t0 := CPU(), time.Now()
	return func() { b.ReportMetric(float64(CPU()-c0)/float64(time.Since(t0)), "cores") }
}
