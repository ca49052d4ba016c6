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

// progress turns migrate's reports into a bar on a terminal, periodic log
// lines otherwise, or nothing when quiet.
type progress struct {
	w        io.Writer
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

func newProgress(w io.Writer, terminal, quiet bool) *progress {
	p := &progress{w: w, quiet: quiet, start: time.Now(), stopTick: make(chan struct{})}
	if terminal && !quiet {
		p.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("migrating"),
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

func (p *progress) Begin(totalMsgs, totalBytes uint64) {
	p.total = totalMsgs
	if p.quiet {
		return
	}
	if p.bar != nil {
		p.bar.ChangeMax64(int64(max(totalMsgs, 1)))
		return
	}
	fmt.Fprintf(p.w, "migrating %s message(s), %s\n", report.Count(totalMsgs), report.Bytes(totalBytes))
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.logLine()
			case <-p.stopTick:
				return
			}
		}
	}()
}

func (p *progress) logLine() {
	m, b := p.msgs.Load(), p.bytes.Load()
	el := time.Since(p.start).Seconds()
	pct := ""
	if p.total > 0 {
		pct = fmt.Sprintf(" (%.1f%%)", 100*float64(min(m, p.total))/float64(p.total))
	}
	p.mu.Lock()
	fmt.Fprintf(p.w, "progress: %s/%s message(s)%s, %s, %s msgs/s\n", report.Count(m), report.Count(p.total), pct, report.Bytes(b), report.Count(uint64(float64(m)/max(el, 0.001))))
	p.mu.Unlock()
}

func (p *progress) Progress(msgs, bytes uint64) {
	p.msgs.Add(msgs)
	p.bytes.Add(bytes)
	if p.bar != nil {
		_ = p.bar.Add64(int64(msgs))
	}
}

func (p *progress) Event(e migrate.Event) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Clear()
	}
	fmt.Fprintf(p.w, "%s %q: %s\n", e.Kind, e.Channel, e.Message)
}

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
