package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/migrate"
)

// logEvery is how often progress is logged when stderr is not a
// terminal; a line that would repeat the previous one is held back until
// stalledEvery has passed, and then says how long nothing moved. The rate
// and ETA in a line are over the last recentWindow.
const (
	logEvery     = 5 * time.Second
	stalledEvery = 30 * time.Second
	recentWindow = 30 * time.Second
)

// Log formats (--log-format).
const (
	logText = "text"
	logJSON = "json"
)

// progressOptions say how a run's progress is shown.
type progressOptions struct {
	verb  string
	quiet bool
	// format is logText (a bar on a terminal, lines otherwise) or
	// logJSON (one JSON object a line, never a bar).
	format string
	// limit describes the run's rate caps for the lines ("" = none).
	limit string
	// every overrides logEvery (tests).
	every time.Duration
}

// progress turns a run's reports into a bar on a terminal, periodic log
// lines otherwise (text or JSON), or nothing when quiet. It serves
// migrate (messages, bytes and events) and verify (messages checked,
// through verifyProgress).
type progress struct {
	w        io.Writer
	o        progressOptions
	log      *slog.Logger // JSON lines; nil for text
	mu       sync.Mutex
	bar      *progressbar.ProgressBar
	msgs     atomic.Uint64
	bytes    atomic.Uint64
	total    uint64
	recent   recentRate
	stopTick chan struct{}
	done     sync.WaitGroup
	closed   sync.Once
	ios      *iostreams
	// begun: Begin was called (a run that failed before it draws no
	// finished bar).
	begun bool
}

func newProgress(ios *iostreams, o progressOptions) *progress {
	if o.every <= 0 {
		o.every = logEvery
	}
	p := &progress{w: ios.Err, o: o, stopTick: make(chan struct{}), ios: ios}
	p.recent.add(time.Now(), 0)
	if o.format == logJSON {
		p.log = slog.New(slog.NewJSONHandler(ios.Err, nil))
		return p
	}
	if ios.Terminal && !o.quiet {
		desc := o.verb
		if o.limit != "" {
			desc += " (" + o.limit + ")"
		}
		p.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(ios.Err),
			progressbar.OptionSetDescription(desc),
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
	p.total, p.begun = totalMsgs, true
	if p.o.quiet {
		return
	}
	if p.bar != nil {
		p.bar.ChangeMax64(int64(max(totalMsgs, 1)))
		return
	}
	if p.log != nil {
		args := []any{"total_messages", totalMsgs, "total_bytes", totalBytes}
		if p.o.limit != "" {
			args = append(args, "limit", p.o.limit)
		}
		p.log.Info(p.o.verb, args...)
	} else {
		limit := ""
		if p.o.limit != "" {
			limit = ", " + p.o.limit
		}
		fmt.Fprintf(p.w, "%s %s message(s), %s as STAN stores them%s\n", p.o.verb, report.Count(totalMsgs), report.Bytes(totalBytes), limit)
	}
	p.done.Add(1)
	go p.tick()
}

// tick logs a line every o.every while messages move, and one every
// stalledEvery while they do not.
func (p *progress) tick() {
	defer p.done.Done()
	t := time.NewTicker(p.o.every)
	defer t.Stop()
	var last uint64
	lastAt, loggedAt := time.Now(), time.Now()
	for {
		select {
		case now := <-t.C:
			m := p.msgs.Load()
			p.recent.add(now, m)
			switch {
			case m != last:
				last, lastAt, loggedAt = m, now, now
				p.logLine(0)
			case now.Sub(loggedAt) >= stalledEvery:
				loggedAt = now
				p.logLine(now.Sub(lastAt))
			}
		case <-p.stopTick:
			return
		}
	}
}

// logLine writes one progress line; stalled > 0 says nothing moved for
// that long.
func (p *progress) logLine(stalled time.Duration) {
	m, b := p.msgs.Load(), p.bytes.Load()
	rate := p.recent.rate()
	var eta time.Duration
	if p.total > m && rate > 0 {
		eta = max(time.Duration(float64(p.total-m)/rate*float64(time.Second)).Round(time.Second), time.Second)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.log != nil {
		args := []any{"messages", m, "total", p.total, "bytes", b, "rate", int64(rate)}
		if p.total > 0 {
			args = append(args, "percent", float64(int(1000*float64(min(m, p.total))/float64(p.total)))/10)
		}
		if eta > 0 {
			args = append(args, "eta_seconds", int64(eta.Seconds()))
		}
		if stalled > 0 {
			args = append(args, "stalled_seconds", int64(stalled.Round(time.Second).Seconds()))
		}
		p.log.Info("progress", args...)
		return
	}
	pct := ""
	if p.total > 0 {
		pct = fmt.Sprintf(" (%.1f%%)", 100*float64(min(m, p.total))/float64(p.total))
	}
	size := ""
	if b > 0 {
		size = ", " + report.Bytes(b) + " of payload"
	}
	tail := ""
	if p.o.limit != "" {
		tail += " (" + p.o.limit + ")"
	}
	if eta > 0 {
		tail += ", ETA " + eta.String()
	}
	if stalled > 0 {
		tail += fmt.Sprintf(", nothing new for %v", stalled.Round(time.Second))
	}
	fmt.Fprintf(p.w, "progress: %s/%s message(s)%s%s, %s msgs/s%s\n", report.Count(m), report.Count(p.total), pct, size, report.Count(uint64(rate)), tail)
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
	if p.o.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.log != nil {
		level := slog.LevelInfo
		if e.Kind == migrate.EventRetrying {
			level = slog.LevelWarn
		}
		args := []any{"detail", e.Message}
		if e.Channel != "" {
			args = append(args, "channel", e.Channel, "stream", e.Stream)
		}
		p.log.Log(context.Background(), level, string(e.Kind), args...)
		return
	}
	if p.bar != nil {
		_ = p.bar.Clear()
	}
	if e.Channel == "" {
		fmt.Fprintf(p.w, "%s: %s\n", e.Kind, e.Message)
		return
	}
	fmt.Fprintf(p.w, "%s %q: %s\n", e.Kind, e.Channel, e.Message)
}

// Notes is where the command's own notes on stderr go: as they are in
// text, one JSON record per line with --log-format json.
func (p *progress) Notes() io.Writer {
	if p.log == nil {
		return p.w
	}
	return noteWriter{p}
}

// notesIO is the command's streams with stderr through Notes, for
// helpers that write their notes there themselves.
func (p *progress) notesIO() *iostreams {
	return &iostreams{Out: p.ios.Out, Err: p.Notes(), Terminal: p.ios.Terminal}
}

type noteWriter struct{ p *progress }

func (n noteWriter) Write(b []byte) (int, error) {
	n.p.mu.Lock()
	defer n.p.mu.Unlock()
	for _, line := range bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n")) {
		n.p.log.Info("note", "detail", string(line))
	}
	return len(b), nil
}

// Close stops the log lines and finishes the bar (once: a command
// closes it when the run returns, and on the way out in any case).
func (p *progress) Close() {
	p.closed.Do(func() {
		close(p.stopTick)
		p.done.Wait()
		if p.bar != nil && p.begun {
			_ = p.bar.Finish()
			fmt.Fprintln(p.w)
		}
	})
}

// recentRate keeps (time, count) samples over the last recentWindow, for
// a rate that follows what the run does now rather than its average.
type recentRate struct {
	mu      sync.Mutex
	samples []sample
}

type sample struct {
	at time.Time
	n  uint64
}

func (r *recentRate) add(at time.Time, n uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, sample{at, n})
	// Keep one sample at or before the window's start, so the rate
	// always spans the whole window once the run is that old.
	for len(r.samples) > 2 && at.Sub(r.samples[1].at) >= recentWindow {
		r.samples = r.samples[1:]
	}
}

// rate is messages per second between the oldest and newest samples.
func (r *recentRate) rate() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) < 2 {
		return 0
	}
	first, last := r.samples[0], r.samples[len(r.samples)-1]
	dt := last.at.Sub(first.at).Seconds()
	if dt <= 0 || last.n < first.n {
		return 0
	}
	return float64(last.n-first.n) / dt
}

// verifyProgress reports verify's messages checked per channel.
type verifyProgress struct{ p *progress }

func (v verifyProgress) Begin(msgs, bytes uint64)       { v.p.Begin(msgs, bytes) }
func (v verifyProgress) Progress(_ string, msgs uint64) { v.p.Progress(msgs, 0) }
