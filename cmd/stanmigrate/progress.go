package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/migrate"
)

// logEvery is how often progress is logged when stderr is not a
// terminal; a line that would repeat the previous one is held back until
// stalledEvery has passed, and then says how long nothing moved.
const (
	logEvery     = 5 * time.Second
	stalledEvery = 30 * time.Second
)

// progress turns a run's reports into a bar on a terminal, periodic log
// lines otherwise, or nothing when quiet. It serves migrate (messages,
// bytes and events) and verify (messages checked, through verifyProgress).
type progress struct {
	w        io.Writer
	verb     string
	quiet    bool
	mu       sync.Mutex
	bar      *progressbar.ProgressBar
	msgs     atomic.Uint64
	bytes    atomic.Uint64
	total    uint64
	start    time.Time
	stopTick chan struct{}
	done     sync.WaitGroup
}

func newProgress(ios *iostreams, verb string, quiet bool) *progress {
	p := &progress{w: ios.Err, verb: verb, quiet: quiet, start: time.Now(), stopTick: make(chan struct{})}
	if ios.Terminal && !quiet {
		p.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(ios.Err),
			progressbar.OptionSetDescription(verb),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("msgs"),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionFullWidth(),
		)
	}
	return p
}

// Begin announces the total: the messages the plan counts and the bytes
// STAN stores for them (payload plus STAN's own record overhead).
func (p *progress) Begin(totalMsgs, totalBytes uint64) {
	p.total = totalMsgs
	if p.quiet {
		return
	}
	if p.bar != nil {
		p.bar.ChangeMax64(int64(max(totalMsgs, 1)))
		return
	}
	fmt.Fprintf(p.w, "%s %s message(s), %s as STAN stores them\n", p.verb, report.Count(totalMsgs), report.Bytes(totalBytes))
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(logEvery)
		defer t.Stop()
		var last uint64
		lastAt, loggedAt := time.Now(), time.Now()
		for {
			select {
			case <-t.C:
				m := p.msgs.Load()
				switch {
				case m != last:
					last, lastAt, loggedAt = m, time.Now(), time.Now()
					p.logLine("")
				case time.Since(loggedAt) >= stalledEvery:
					loggedAt = time.Now()
					p.logLine(fmt.Sprintf(", nothing new for %v", time.Since(lastAt).Round(time.Second)))
				}
			case <-p.stopTick:
				return
			}
		}
	}()
}

func (p *progress) logLine(suffix string) {
	m, b := p.msgs.Load(), p.bytes.Load()
	el := time.Since(p.start).Seconds()
	pct := ""
	if p.total > 0 {
		pct = fmt.Sprintf(" (%.1f%%)", 100*float64(min(m, p.total))/float64(p.total))
	}
	size := ""
	if b > 0 {
		size = ", " + report.Bytes(b) + " of payload"
	}
	p.mu.Lock()
	fmt.Fprintf(p.w, "progress: %s/%s message(s)%s%s, %s msgs/s%s\n", report.Count(m), report.Count(p.total), pct, size, report.Count(uint64(float64(m)/max(el, 0.001))), suffix)
	p.mu.Unlock()
}

// Progress counts messages done and their payload bytes.
func (p *progress) Progress(msgs, bytes uint64) {
	p.msgs.Add(msgs)
	p.bytes.Add(bytes)
	if p.bar != nil {
		_ = p.bar.Add64(int64(msgs))
	}
}

// Event logs a notable step.
func (p *progress) Event(e migrate.Event) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Clear()
	}
	if e.Channel == "" {
		fmt.Fprintf(p.w, "%s: %s\n", e.Kind, e.Message)
		return
	}
	fmt.Fprintf(p.w, "%s %q: %s\n", e.Kind, e.Channel, e.Message)
}

// Close stops the log lines and finishes the bar.
func (p *progress) Close() {
	select {
	case <-p.stopTick:
	default:
		close(p.stopTick)
	}
	p.done.Wait()
	if p.bar != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}

// verifyProgress reports verify's messages checked per channel.
type verifyProgress struct{ p *progress }

func (v verifyProgress) Begin(msgs, bytes uint64)       { v.p.Begin(msgs, bytes) }
func (v verifyProgress) Progress(_ string, msgs uint64) { v.p.Progress(msgs, 0) }
