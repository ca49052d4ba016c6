package main

import (
	"fmt"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"github.com/stanmigrate/stanmigrate/internal/metrics"
	"github.com/stanmigrate/stanmigrate/internal/report"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/verify"
)

// Ranges of the rate caps (the sizes also as help and errors write
// them).
const (
	maxRate         = 100_000_000
	minRateBytes    = 1 << 10
	minRateBytesStr = "1 KiB"
	maxRateBytes    = 1 << 40
	maxRateBytesStr = "1 TiB"
)

// operateOptions are the flags for operating a long run: metrics, logs
// and (migrate only) rate caps.
type operateOptions struct {
	metricsListen string
	logFormat     string
	rate          int
	rateBytes     string
	// afterRun, when set (tests), is called with the metrics address
	// after the run returned and before the metrics server stops.
	afterRun func(metricsAddr string)
	// logEvery overrides how often progress lines are logged, and
	// sourceEvery how often a following run rereads STAN's last
	// sequences for the metrics (tests).
	logEvery, sourceEvery time.Duration
	// rateBytesN is --rate-bytes parsed (0 = no cap).
	rateBytesN int64
}

func (o *operateOptions) addFlags(f *pflag.FlagSet, rates bool) {
	f.StringVar(&o.metricsListen, "metrics-listen", "", "serve Prometheus metrics on http://ADDR/metrics and the run's health on /healthz (ADDR is host:port, such as 127.0.0.1:9464); see docs/metrics.md")
	f.StringVar(&o.logFormat, "log-format", logText, "text, or json: progress and events as one JSON object a line (log/slog), for log pipelines, never a progress bar")
	if rates {
		f.IntVar(&o.rate, "rate", 0, fmt.Sprintf("cap the copy at N messages per second across all channels, 1 to %s (default: no cap)", report.Count(maxRate)))
		f.StringVar(&o.rateBytes, "rate-bytes", "", "cap the copy at SIZE of payload per second across all channels, such as 20MiB or 500KB, "+minRateBytesStr+" to "+maxRateBytesStr+" (default: no cap)")
	}
}

// check validates the flags, before anything connects or listens.
func (o *operateOptions) check() error {
	if o.logFormat != logText && o.logFormat != logJSON && o.logFormat != "" {
		return usageError{fmt.Errorf("--log-format %q: use text or json", o.logFormat)}
	}
	if o.rate != 0 {
		if err := inRange("--rate", o.rate, 1, maxRate); err != nil {
			return err
		}
	}
	if o.rateBytes != "" {
		n, err := humanize.ParseBytes(o.rateBytes)
		if err != nil || n < minRateBytes || n > maxRateBytes {
			return usageError{fmt.Errorf("--rate-bytes %q: give a size per second from %s to %s, such as 20MiB or 500KB", o.rateBytes, minRateBytesStr, maxRateBytesStr)}
		}
		o.rateBytesN = int64(n)
	}
	return nil
}

// limit describes the rate caps for progress lines ("" = none).
func (o *operateOptions) limit() string {
	switch {
	case o.rate > 0 && o.rateBytesN > 0:
		return fmt.Sprintf("capped at %s msgs/s and %s/s", report.Count(uint64(o.rate)), report.Bytes(uint64(o.rateBytesN)))
	case o.rate > 0:
		return fmt.Sprintf("capped at %s msgs/s", report.Count(uint64(o.rate)))
	case o.rateBytesN > 0:
		return fmt.Sprintf("capped at %s/s", report.Bytes(uint64(o.rateBytesN)))
	}
	return ""
}

// operation is a run's metrics and where they are served.
type operation struct {
	o   *operateOptions
	run *metrics.Run
	srv *metrics.Server
}

// start binds the metrics address (when asked) so that a bad or
// busy one is refused before the run changes anything.
func (o *operateOptions) start() (*operation, error) {
	op := &operation{o: o}
	if o.metricsListen == "" {
		return op, nil
	}
	ln, err := metrics.Listen(o.metricsListen)
	if err != nil {
		return nil, err
	}
	op.run = metrics.New(metrics.Options{Rate: float64(o.rate), RateBytes: o.rateBytesN})
	op.srv = metrics.Serve(ln, op.run)
	return op, nil
}

// reporter joins the progress output and the metrics into migrate's
// Reporter (and Observer, when metrics are served).
func (op *operation) reporter(prog *progress) migrate.Reporter {
	if op.run == nil {
		return prog
	}
	return fanout{prog, op.run}
}

// end records the run's outcome and stops serving.
func (op *operation) end(err error) {
	if op.run == nil {
		return
	}
	op.run.End(err)
	if op.o.afterRun != nil {
		op.o.afterRun(op.srv.Addr())
	}
	op.srv.Close()
}

// fanout sends progress to the output and to the metrics.
type fanout struct {
	prog *progress
	*metrics.Run
}

func (f fanout) Begin(m, b uint64)     { f.prog.Begin(m, b); f.Run.Begin(m, b) }
func (f fanout) Progress(m, b uint64)  { f.prog.Progress(m, b) }
func (f fanout) Event(e migrate.Event) { f.prog.Event(e) }

var _ migrate.Observer = fanout{}

// verifyReporter joins verify's progress output and the metrics.
func (op *operation) verifyReporter(prog *progress) verify.Reporter {
	if op.run == nil {
		return verifyProgress{prog}
	}
	return verifyFanout{verifyProgress{prog}, op.run.Verify()}
}

type verifyFanout struct{ a, b verify.Reporter }

func (f verifyFanout) Begin(m, b uint64)            { f.a.Begin(m, b); f.b.Begin(m, b) }
func (f verifyFanout) Progress(ch string, m uint64) { f.a.Progress(ch, m); f.b.Progress(ch, m) }
