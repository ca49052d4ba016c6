package fastingest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/stanmigrate/stanmigrate/internal/asyncpub"
)

// BenchmarkIngest compares, on the same embedded server, the per-message
// asynchronous publisher migrate uses today (async), this package's
// fast-ingest Publisher (fast) and orbit.go's FastPublisher (orbit), each
// with five header sets. Run:
//
//	go test ./internal/fastingest -run '^$' -bench Ingest -benchtime 3x -v
//
// Every iteration is a round that runs every column once, each into a
// fresh R1 file stream (deleted afterwards), so drift on a shared machine
// touches all columns of a round alike; the medians over rounds are
// reported, with -v as a table. FASTINGEST_BENCH_R3=1 adds the same on a
// three-node in-process cluster (R3 stream); FASTINGEST_BENCH_SIZES
// (e.g. "128,1024") narrows the sizes.
//
// cpu is the process's user+system time per message: the server(s) run
// in the same process, so it is client and server together, which is what
// shares the cores. allocs likewise counts the servers' allocations too.
// FASTINGEST_BENCH_URL points the R1 shapes at a server in another
// process instead (a nats-server 2.14+ with JetStream): cpu and allocs are
// then the client's alone.
func BenchmarkIngest(b *testing.B) {
	sizes := []int{128, 1024, 65536}
	if s := os.Getenv("FASTINGEST_BENCH_SIZES"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				b.Fatal(err)
			}
			sizes = append(sizes, n)
		}
	}
	reps := []int{1}
	if os.Getenv("FASTINGEST_BENCH_R3") != "" {
		reps = append(reps, 3)
	}
	for _, r := range reps {
		for _, size := range sizes {
			total := 200_000
			if size >= 65536 {
				total = 8_000
			}
			b.Run(fmt.Sprintf("R%d/%dB", r, size), func(b *testing.B) {
				benchShape(b, r, size, total)
			})
		}
	}
}

// headerSets are the header combinations measured.
var headerSets = []string{"none", "exp", "exp+ts", "exp+3", "exp+msgid"}

// paths are the publishers measured (FASTINGEST_BENCH_PATHS narrows
// them). fastbare is fast without the acker goroutine (one Await at the
// end), on the same footing as orbit, which cannot have one.
var paths = []string{"async", "fast", "orbit"}

func benchPaths() []string {
	if s := os.Getenv("FASTINGEST_BENCH_PATHS"); s != "" {
		return strings.Split(s, ",")
	}
	return paths
}

type result struct {
	rate   float64 // messages a second
	cpu    float64 // µs of process CPU a message
	allocs float64 // allocations a message
}

func benchShape(b *testing.B, replicas, size, total int) {
	var url string
	if u := os.Getenv("FASTINGEST_BENCH_URL"); u != "" && replicas == 1 {
		url = u
	} else if replicas == 1 {
		e := startEnv(b)
		url = e.srv.URL()
	} else {
		url = startCluster(b, b.TempDir()).URLs()
	}
	nc, js := connect(b, url)
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rand.IntN(256))
	}
	// migrate's window: 8192 messages, or 32 MiB of payload.
	window := min(8192, max((32<<20)/(size+1), 16))
	results := map[string][]result{}
	var cols []string
	for _, p := range benchPaths() {
		for _, h := range headerSets {
			cols = append(cols, p+"/"+h)
		}
	}
	b.ResetTimer()
	for round := 0; round < b.N; round++ {
		for ci, col := range cols {
			path, hset, _ := strings.Cut(col, "/")
			name := fmt.Sprintf("bench_%d_%d", round, ci)
			createStream(b, js, name, true, replicas)
			r, err := runColumn(nc, path, hset, name, data, total, window)
			if err != nil {
				b.Fatalf("%s: %v", col, err)
			}
			if got := streamMsgs(b, js, name); got != uint64(total) {
				b.Fatalf("%s: stream holds %d messages, want %d", col, got, total)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err = js.DeleteStream(ctx, name)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			results[col] = append(results[col], r)
		}
	}
	b.StopTimer()
	b.Logf("R%d %d B x %d messages, window %d, %d rounds; medians (machine shared: preliminary)", replicas, size, total, window, b.N)
	b.Logf("%-6s %-10s %12s %10s %10s", "path", "headers", "msgs/s", "cpu µs/msg", "allocs/msg")
	for _, col := range cols {
		m := median(results[col])
		path, hset, _ := strings.Cut(col, "/")
		b.Logf("%-6s %-10s %12.0f %10.2f %10.1f", path, hset, m.rate, m.cpu, m.allocs)
		b.ReportMetric(m.rate, col+"-msgs/s")
	}
}

func median(rs []result) result {
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return result{
		rate:   pick(func(r result) float64 { return r.rate }),
		cpu:    pick(func(r result) float64 { return r.cpu }),
		allocs: pick(func(r result) float64 { return r.allocs }),
	}
}

func streamMsgs(b *testing.B, js jetstream.JetStream, name string) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return info.State.Msgs
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// headerFiller sets one message's headers for a header set, the way
// migrate builds them: the sequence string is made once and is the next
// message's expected last sequence.
type headerFiller struct {
	set     string
	hdr     nats.Header
	channel string
	idPre   string
	prevStr string
}

const benchTimestamp = "2024-01-02T03:04:05.123456789Z"

func newFiller(set, channel string) *headerFiller {
	return &headerFiller{set: set, hdr: nats.Header{}, channel: channel, idPre: "test-cluster:" + channel + ":"}
}

// fill returns the headers for seq (nil for none) and seq's string.
func (f *headerFiller) fill(seq uint64) (nats.Header, string) {
	s := strconv.FormatUint(seq, 10)
	if f.set == "none" {
		return nil, s
	}
	prev := f.prevStr
	if prev == "" {
		prev = strconv.FormatUint(seq-1, 10)
	}
	f.prevStr = s
	Set(f.hdr, jetstream.ExpectedLastSeqHeader, prev)
	switch f.set {
	case "exp+ts":
		Set(f.hdr, hdrTimestamp, benchTimestamp)
	case "exp+3":
		Set(f.hdr, hdrChannel, f.channel)
		Set(f.hdr, hdrSequence, s)
		Set(f.hdr, hdrTimestamp, benchTimestamp)
	case "exp+msgid":
		Set(f.hdr, jetstream.MsgIDHeader, f.idPre+s)
	}
	return f.hdr, s
}

func runColumn(nc *nats.Conn, path, hset, subject string, data []byte, total, window int) (result, error) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	cpu0, t0 := cpuTime(), time.Now()
	var err error
	switch path {
	case "async":
		err = runAsync(nc, hset, subject, data, total, window)
	case "fast":
		err = runFast(nc, hset, subject, data, total, window)
	case "fastbare":
		err = runFastBare(nc, hset, subject, data, total, window)
	case "orbit":
		err = runOrbit(nc, hset, subject, data, total, window)
	}
	el, cpu := time.Since(t0), cpuTime()-cpu0
	runtime.ReadMemStats(&ms)
	return result{
		rate:   float64(total) / el.Seconds(),
		cpu:    float64(cpu.Microseconds()) / float64(total),
		allocs: float64(ms.Mallocs-mallocs) / float64(total),
	}, err
}

// runFast: this package's Publisher, with an acker goroutine awaiting
// every sequence in order as migrate's does.
func runFast(nc *nats.Conn, hset, subject string, data []byte, total, window int) error {
	p, err := New(nc, Options{Window: window})
	if err != nil {
		return err
	}
	defer p.Close()
	inflight := make(chan uint64, window)
	ackErr := make(chan error, 1)
	go func() {
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		var first error
		for seq := range inflight {
			if first == nil {
				first = p.Await(seq, timer, 10*time.Second)
			}
		}
		ackErr <- first
	}()
	f := newFiller(hset, subject)
	for seq := uint64(1); seq <= uint64(total); seq++ {
		h, _ := f.fill(seq)
		if err := p.Publish(subject, h, data, seq); err != nil {
			close(inflight)
			<-ackErr
			return err
		}
		inflight <- seq
	}
	close(inflight)
	return <-ackErr
}

// runFastBare: this package's Publisher without an acker: the loop
// publishes, then Flush and one Await for the last sequence.
func runFastBare(nc *nats.Conn, hset, subject string, data []byte, total, window int) error {
	p, err := New(nc, Options{Window: window})
	if err != nil {
		return err
	}
	defer p.Close()
	f := newFiller(hset, subject)
	for seq := uint64(1); seq <= uint64(total); seq++ {
		h, _ := f.fill(seq)
		if err := p.Publish(subject, h, data, seq); err != nil {
			return err
		}
	}
	p.Flush()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	return p.Await(uint64(total), timer, 30*time.Second)
}

// runOrbit: orbit.go's FastPublisher. It is not safe for concurrent use,
// so there is no acker: the loop publishes, and Close commits and waits
// for the batch's PubAck (a lower bound on what an acker would cost).
func runOrbit(nc *nats.Conn, hset, subject string, data []byte, total, window int) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	flow := min(500, max(window/2, 1))
	var asyncErr atomic.Pointer[error]
	fp, err := jetstreamext.NewFastPublisher(js,
		jetstreamext.FastPublishFlowControl{Flow: uint16(flow), MaxOutstandingAcks: uint16(max(window/flow, 2)), AckTimeout: 10 * time.Second},
		jetstreamext.WithFastPublisherErrorHandler(func(err error) { asyncErr.CompareAndSwap(nil, &err) }))
	if err != nil {
		return err
	}
	f := newFiller(hset, subject)
	msg := &nats.Msg{Subject: subject, Data: data}
	for seq := uint64(1); seq <= uint64(total); seq++ {
		msg.Header, _ = f.fill(seq)
		if _, err := fp.AddMsg(msg); err != nil {
			return fmt.Errorf("sequence %d: %w", seq, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ack, err := fp.Close(ctx)
	if err != nil {
		return err
	}
	if e := asyncErr.Load(); e != nil {
		return *e
	}
	if ack.BatchSize != uint64(total) {
		return fmt.Errorf("batch ack counts %d, want %d", ack.BatchSize, total)
	}
	return nil
}

// runAsync: migrate's per-message path itself (internal/asyncpub), with
// an acker awaiting every sequence in order.
func runAsync(nc *nats.Conn, hset, subject string, data []byte, total, window int) error {
	p, err := asyncpub.New(nc, window)
	if err != nil {
		return err
	}
	defer p.Close()
	inflight := make(chan uint64, window)
	ackErr := make(chan error, 1)
	go func() {
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		var first error
		for seq := range inflight {
			if first == nil {
				first = p.Await(seq, timer, 10*time.Second, nil)
			}
		}
		ackErr <- first
	}()
	f := newFiller(hset, subject)
	f.hdr = p.Header() // the publisher sends its own header map
	for seq := uint64(1); seq <= uint64(total); seq++ {
		_, s := f.fill(seq)
		if err := p.Publish(subject, s, data); err != nil {
			close(inflight)
			<-ackErr
			return err
		}
		inflight <- seq
	}
	close(inflight)
	return <-ackErr
}
