package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stanmigrate/stanmigrate/migrate"
)

// desc is one metric: its name, help and labels, written once here and
// in the table of docs/metrics.md (a test holds the two together).
func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("stanmigrate_"+name, help, labels, nil)
}

var (
	descCopied        = desc("copied_messages_total", "Messages of the channel stored in its stream by this process.", "channel")
	descCopiedBytes   = desc("copied_bytes_total", "Payload bytes of the channel stored in its stream by this process.", "channel")
	descSourceLast    = desc("source_last_sequence", "The channel's last sequence on STAN as last read (at the channel's start; every 10 s with --follow).", "channel")
	descStreamLast    = desc("stream_last_sequence", "The last sequence the channel's stream holds.", "channel")
	descLag           = desc("lag_messages", "Messages the channel still has to copy: source_last_sequence minus stream_last_sequence (0 when none).", "channel")
	descLagSeconds    = desc("lag_seconds", "0 when nothing is left to copy, else the age of the last copied message's original STAN timestamp.", "channel")
	descRetries       = desc("retries_total", "Failed attempts on the channel that were retried.", "channel")
	descFailovers     = desc("failovers_total", "Retries caused by a server going away or a leader change (source or target).", "channel")
	descCheckpointAge = desc("checkpoint_age_seconds", "Seconds since the channel's checkpoint was last written.", "channel")
	descPhase         = desc("channel_phase", "1 for the channel's current phase (copying, following, consumers, done, failed, elsewhere), 0 for the others.", "channel", "phase")
	descVerified      = desc("verified_messages_total", "Messages of the channel compared by verify.", "channel")
	descPath          = desc("publish_path_channels", "Channels publishing through each path now (fast-ingest batches or async per message).", "path")
	descAlready       = desc("already_stored_total", "Resent messages the target refused as already stored (ours, same sequence).")
	descReconnects    = desc("reconnects_total", "Times the connection to a side (jetstream) was re-established after its server went away.", "side")
	descLeases        = desc("leases_held", "Channel leases this process holds now: one per channel it works on; in a fleet sharing --state kv:NAME, its share.")
	descPlanned       = desc("planned_messages", "Messages the plan counts in the channels this run covers.")
	descPlannedBytes  = desc("planned_bytes", "Bytes STAN stores for those messages (payload and STAN's record overhead).")
	descRate          = desc("rate_limit_messages_per_second", "The --rate cap (0 = none).")
	descRateBytes     = desc("rate_limit_bytes_per_second", "The --rate-bytes cap (0 = none).")
	descThrottled     = desc("throttle_wait_seconds_total", "Time channels waited for the rate caps, summed over channels.")
	descProgressing   = desc("progressing", "1 while /healthz answers 200 (the run is progressing), 0 otherwise.")
)

// Describe sends every metric's description.
func (r *Run) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCopied, descCopiedBytes, descSourceLast, descStreamLast, descLag, descLagSeconds,
		descRetries, descFailovers, descCheckpointAge, descPhase, descVerified, descPath, descAlready, descReconnects, descLeases,
		descPlanned, descPlannedBytes, descRate, descRateBytes, descThrottled, descProgressing} {
		ch <- d
	}
}

// Collect sends the current values. Time-dependent ones (lag in
// seconds, checkpoint age) are computed now, at the scrape.
func (r *Run) Collect(ch chan<- prometheus.Metric) {
	ok, _ := r.Health()
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.o.Now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	paths := map[string]int{migrate.PathBatch: 0, migrate.PathAsync: 0}
	for _, name := range r.names() {
		c := r.chans[name]
		if c.phase != "" {
			counter(descCopied, float64(c.copied), name)
			counter(descCopiedBytes, float64(c.bytes), name)
			gauge(descSourceLast, float64(c.sourceLast), name)
			gauge(descStreamLast, float64(c.streamLast), name)
			gauge(descLag, float64(c.lag()), name)
			if s, known := c.lagSeconds(now); known {
				gauge(descLagSeconds, s, name)
			}
			counter(descRetries, float64(c.retries), name)
			counter(descFailovers, float64(c.failovers), name)
			for _, p := range migrate.Phases {
				gauge(descPhase, b2f(c.phase == p), name, string(p))
			}
		}
		if !c.checkpointAt.IsZero() {
			gauge(descCheckpointAge, max(now.Sub(c.checkpointAt).Seconds(), 0), name)
		}
		if c.verified > 0 {
			counter(descVerified, float64(c.verified), name)
		}
		if c.path != "" {
			paths[c.path]++
		}
	}
	for p, n := range paths {
		gauge(descPath, float64(n), p)
	}
	counter(descAlready, float64(r.alreadyStored))
	for side, n := range r.reconnects {
		counter(descReconnects, float64(n), side)
	}
	gauge(descLeases, float64(r.leases))
	gauge(descPlanned, float64(r.plannedMsgs))
	gauge(descPlannedBytes, float64(r.plannedBytes))
	gauge(descRate, r.o.Rate)
	gauge(descRateBytes, float64(r.o.RateBytes))
	counter(descThrottled, r.throttleWait.Seconds())
	gauge(descProgressing, b2f(ok))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
