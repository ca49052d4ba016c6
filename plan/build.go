package plan

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/changlob"
	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/naming"
	"github.com/stanmigrate/stanmigrate/internal/source"
)

// HeaderOverhead is a safe upper bound, in bytes, of what the migration
// headers add to a message (protocol framing plus the four headers with
// long channel names excluded; those are added per channel).
const HeaderOverhead = 220

// MsgOverhead bounds what migration adds to one message of a channel:
// HeaderOverhead, the channel name in the subject, its header and the
// Msg-Id, and the cluster id in the Msg-Id.
func MsgOverhead(cluster, channel string) int64 {
	return HeaderOverhead + 3*int64(len(channel)) + int64(len(cluster))
}

// DefaultDuplicateWindow is the dedup window a finished stream keeps.
const DefaultDuplicateWindow = 2 * time.Minute

// Options shape the mapping.
type Options struct {
	Include  []string // channel globs; empty = all
	Exclude  []string // channel globs
	Replicas int
	// Placement applies to every stream (nil: none).
	Placement *Placement
	Headers   string
	MsgID     bool
	// Expiry is ExpiryOriginal (default) or ExpiryMigration.
	Expiry string
	Now    time.Time
	// SkipBroken marks channels the source cannot read skip: true with a
	// warning; otherwise each is a blocker.
	SkipBroken bool
}

// Build maps discovered channels and subscriptions onto streams and
// consumers and lists everything the operator must know.
func Build(d *Discovery, o Options) *Plan {
	if o.Replicas == 0 {
		o.Replicas = DefaultReplicas
	}
	if o.Headers == "" {
		o.Headers = DefaultHeaders
	}
	if o.Expiry == "" {
		o.Expiry = ExpiryOriginal
	}
	p := &Plan{
		Version:   FormatVersion,
		CreatedAt: o.Now.UTC().Truncate(time.Second),
		Source: Source{
			ClusterID: d.Source.ClusterID, URL: d.Source.URL, Monitor: d.Source.MonitorURL,
			ServerVersion: d.Source.ServerVersion, MaxPayload: d.Source.MaxPayload,
		},
		Target: Target{URL: d.Target.URL, Domain: d.Target.API.Domain, APIPrefix: d.Target.API.Prefix,
			ServerVersion: d.Target.Version, APILevel: d.Target.APILevel, MaxPayload: d.Target.MaxPayload},
		Headers: o.Headers,
		MsgID:   o.MsgID,
	}
	add := func(sev, obj, format string, args ...any) {
		p.Findings = append(p.Findings, Finding{Severity: sev, Object: obj, Message: fmt.Sprintf(format, args...)})
	}
	anyAge, anySubs := false, false
	sourceFindings(d.Source, add)
	for _, sc := range d.Channels {
		if !(changlob.Selector{Include: o.Include, Exclude: o.Exclude}).Match(sc.Name) {
			p.Excluded = append(p.Excluded, sc.Name)
			continue
		}
		lim := sc.Limits
		c := Channel{
			Name:     sc.Name,
			Stream:   naming.StreamName(sc.Name),
			FirstSeq: sc.FirstSeq,
			LastSeq:  sc.LastSeq,
			Msgs:     sc.Msgs,
			Bytes:    sc.Bytes,
			Limits: Limits{
				MaxMsgs: int64(lim.MaxMsgs), MaxBytes: lim.MaxBytes, MaxAge: Duration(lim.MaxAge),
				MaxConsumers: lim.MaxSubscriptions, From: sc.LimitsFrom,
			},
			Replicas:        o.Replicas,
			Placement:       o.Placement,
			Storage:         DefaultStorage,
			DuplicateWindow: Duration(DefaultDuplicateWindow),
		}
		if c.FirstSeq == 0 && c.LastSeq == 0 {
			c.FirstSeq = 1
		}
		if lim.MaxAge > 0 {
			anyAge = true
		}
		if lim.MaxSubscriptions > 0 {
			anySubs = true
		}
		if lim.MaxBytes > 0 {
			if need := sc.Bytes + sc.Msgs*uint64(MsgOverhead(d.Source.ClusterID, sc.Name)); need > uint64(lim.MaxBytes) {
				add(Info, fmt.Sprintf("channel %q", sc.Name), "JetStream counts headers and subjects in max_bytes: the copied messages take about %d bytes, over STAN's max_bytes %d, so migrate raises the stream's max_bytes to what they take", need, lim.MaxBytes)
			}
		}
		c.Durables = durables(sc)
		for _, nd := range sc.NonDurables {
			p.NonDurables = append(p.NonDurables, NonDurable{Channel: sc.Name, ClientID: nd.ClientID, Queue: nd.QueueGroup})
		}
		channelFindings(&c, sc, d.Source.ClusterID, d.Target.MaxPayload, o.SkipBroken, add)
		for _, du := range c.Durables {
			if du.Online && source.HeldByProbe(source.Durable{DurableID: du.DurableID, Members: du.Members}) {
				add(Warning, du.Describe(c.Name), "held by %s, the probe of an interrupted migrate (not an application): migrate takes it over and finishes the probe", strings.Join(du.Members, ", "))
			} else if du.Online {
				who := du.ClientID
				if du.QueueGroup != "" {
					who = strings.Join(du.Members, ", ")
				}
				add(Blocker, du.Describe(c.Name), "owner is online (client id %s): stop the application before migrating; its position moves while it consumes and cannot be probed", who)
			} else if du.Position == jsformat.Probe {
				add(Info, du.Describe(c.Name), "%d message(s) unacknowledged: the exact start is probed at migrate time; the application sees these again, as STAN would redeliver them, and nothing it had acknowledged (migrate acks those on the consumer; with --positions lowest-unacked it would also see again the acknowledged ones after the start)", du.Pending)
			}
		}
		p.Channels = append(p.Channels, c)
	}
	for _, nd := range p.NonDurables {
		add(Warning, fmt.Sprintf("subscription of client %q on channel %q", nd.ClientID, nd.Channel),
			"not durable: will not be migrated (the application must resubscribe on JetStream)")
	}
	if anyAge {
		planExpiry(p, d.Target, o.Expiry, add)
	}
	if anySubs {
		add(Info, "max_subscriptions", "STAN's max_subscriptions becomes the stream's max_consumers: STAN counted every subscription, JetStream counts consumers (one per durable or durable queue group)")
	}
	checkCollisions(p, add)
	checkTarget(p, d, add)
	sort.SliceStable(p.Findings, func(i, j int) bool { return sevRank(p.Findings[i].Severity) < sevRank(p.Findings[j].Severity) })
	p.ComputeTotals()
	return p
}

func sevRank(s string) int {
	switch s {
	case Blocker:
		return 0
	case Warning:
		return 1
	}
	return 2
}

// durables maps a channel's durables onto consumers. The start is exact
// when nothing is pending or the source holds the pending set; otherwise
// last_sent+1 is an upper bound until migrate probes the durable.
func durables(sc source.Channel) []Durable {
	var out []Durable
	for _, sd := range sc.Durables {
		d := Durable{
			DurableID: sd.DurableID, Members: sd.Members,
			Consumer:    naming.ConsumerName(sd.ClientID, sd.Durable, sd.QueueGroup),
			Mode:        ModePull,
			MaxInflight: sd.MaxInflight, AckWait: Duration(sd.AckWait),
			LastSent: sd.LastSent, Pending: sd.PendingCount, Online: sd.Online,
			StartSeq: max(sd.LastSent+1, sc.FirstSeq), Position: jsformat.Exact,
		}
		switch {
		case sd.Stored != nil:
			d.StartSeq = sd.Stored.Start(sc.FirstSeq)
		case d.Pending != 0:
			d.Position = jsformat.Probe
		}
		out = append(out, d)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Consumer < out[j].Consumer })
	return out
}

// sourceFindings are what the operator must know about the source as a
// whole.
func sourceFindings(in source.Info, add func(sev, obj, format string, args ...any)) {
	switch {
	case in.LimitsAssumed:
		add(Warning, in.Name, "store limits assumed to be the STAN server's defaults (1,000,000 messages, 1 GB per channel, no max_age): the directory does not record limits, and a server applies its own on start (dropping messages over max_msgs or max_bytes, expiring those older than max_age): if the server ran with other limits, pass its configuration file with --stan-config")
	case in.LimitsFrom != "":
		add(Info, in.Name, "store limits from %s (the directory does not record them; a server applies them on start, and so does the reader)", in.LimitsFrom)
	}
}

// channelFindings handle a channel the source cannot read and say what
// the source knows beyond monitoring: repairs it worked around, exact
// pending sets, the largest stored message.
func channelFindings(c *Channel, sc source.Channel, cluster string, targetMaxPayload int64, skipBroken bool, add func(sev, obj, format string, args ...any)) {
	obj := fmt.Sprintf("channel %q", c.Name)
	if sc.Err != nil {
		if skipBroken {
			c.Skip = true
			add(Warning, obj, "skipped (skip: true): the STAN directory cannot be read for it: %v", sc.Err)
		} else {
			add(Blocker, obj, "%v", sc.Err)
		}
		return
	}
	for _, n := range sc.Notes {
		add(Info, obj, "%s", n)
	}
	for _, sd := range sc.Durables {
		if sd.Stored == nil {
			continue
		}
		n := 0
		for _, seq := range sd.Stored.Pending {
			if seq >= sc.FirstSeq {
				n++
			}
		}
		if n > 0 {
			add(Info, sd.Describe(c.Name), "%d message(s) unacknowledged: the consumer starts at sequence %d, the lowest of them (exact, from the stored pending set); the application will see them again, as STAN would redeliver them", n, sd.Stored.Start(sc.FirstSeq))
		}
	}
	if size := int64(sc.MaxMsgSize); targetMaxPayload > 0 && size > 0 &&
		size+MsgOverhead(cluster, c.Name) > targetMaxPayload {
		add(Warning, obj, "holds messages of up to %d bytes (stored size, payload included): with the migration headers they may exceed the target's max_payload %d, and migrate stops before such a message: raise max_payload on the target", size, targetMaxPayload)
	}
}
