package plan

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/naming"
	"github.com/stanmigrate/stanmigrate/internal/source"
)

// HeaderOverhead is a safe upper bound, in bytes, of what the migration
// headers add to a message (protocol framing plus the four headers with
// long channel names excluded; those are added per channel).
const HeaderOverhead = 220

// DefaultDuplicateWindow is the dedup window a finished stream keeps.
const DefaultDuplicateWindow = 2 * time.Minute

// TargetState is what already exists on the JetStream side.
type TargetState struct {
	URL        string
	Version    string
	MaxPayload int64
	Streams    []ExistingStream
	// Account limits (-1 or 0 = unlimited). JetStream applies
	// MaxConsumers per stream, not to the account as a whole.
	MaxStreams          int
	MaxConsumers        int
	MaxStorage          int64
	MaxAckPending       int
	StoreMaxStreamBytes int64
	MaxBytesRequired    bool
	UsedStorage         uint64
	ReservedStorage     uint64
}

// ExistingStream summarises a stream found on the target.
type ExistingStream struct {
	Name      string
	Subjects  []string
	Storage   string // "file" or "memory"
	Replicas  int
	Retention string // "limits", "interest" or "workqueue"
	Sealed    bool
	Metadata  map[string]string
	Msgs      uint64
	FirstSeq  uint64
	LastSeq   uint64
	// FirstMsgID is the Nats-Msg-Id of the first stored message, which
	// tells our own earlier run apart from foreign data.
	FirstMsgID string
	// Consumers are read only for streams a channel maps to.
	Consumers []ExistingConsumer
}

// ExistingConsumer summarises a consumer found on a stream of the target.
type ExistingConsumer struct {
	Name           string
	AckPolicy      string // as jetstream.AckPolicy.String: "AckExplicit", ...
	AckWait        Duration
	MaxAckPending  int
	DeliverSubject string
	DeliverGroup   string
	FilterSubject  string
	DeliverPolicy  string // as jetstream.DeliverPolicy.String: "by_start_sequence", ...
	OptStartSeq    uint64
	Metadata       map[string]string
}

// Options shape the mapping.
type Options struct {
	Include  []string // channel globs; empty = all
	Exclude  []string // channel globs
	Replicas int
	Headers  string
	Now      time.Time
	// SkipBroken marks channels the source cannot read skip: true with a
	// warning; otherwise each is a blocker.
	SkipBroken bool
}

// Build maps discovered channels and subscriptions onto streams and
// consumers and lists everything the operator must know.
func Build(d *Discovery, o Options) *Plan {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Headers == "" {
		o.Headers = jsformat.HeadersFull
	}
	p := &Plan{
		Version:   FormatVersion,
		CreatedAt: o.Now.UTC().Truncate(time.Second),
		Source: Source{
			ClusterID: d.Source.ClusterID, URL: d.Source.URL, Monitor: d.Source.MonitorURL,
			ServerVersion: d.Source.ServerVersion, MaxPayload: d.Source.MaxPayload,
		},
		Target:  Target{URL: d.Target.URL, ServerVersion: d.Target.Version, MaxPayload: d.Target.MaxPayload},
		Headers: o.Headers,
	}
	add := func(sev, obj, format string, args ...any) {
		p.Findings = append(p.Findings, Finding{Severity: sev, Object: obj, Message: fmt.Sprintf(format, args...)})
	}
	anyAge, anySubs := false, false
	sourceFindings(d.Source, add)
	for _, sc := range d.Channels {
		if !selected(sc.Name, o.Include, o.Exclude) {
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
			Storage:         "file",
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
			if need := sc.Bytes + sc.Msgs*uint64(HeaderOverhead+3*len(sc.Name)); need > uint64(lim.MaxBytes) {
				add(Info, fmt.Sprintf("channel %q", sc.Name), "JetStream counts headers and subjects in max_bytes: the copied messages take about %d bytes, over STAN's max_bytes %d, so migrate raises the stream's max_bytes to what they take", need, lim.MaxBytes)
			}
		}
		c.Durables = durables(sc)
		for _, nd := range sc.NonDurables {
			p.NonDurables = append(p.NonDurables, NonDurable{Channel: sc.Name, ClientID: nd.ClientID, Queue: nd.QueueGroup})
		}
		channelFindings(&c, sc, d.Target.MaxPayload, o.SkipBroken, add)
		for _, du := range c.Durables {
			if du.Online {
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
		add(Info, "max_age", "JetStream counts max_age from the migration time, not from the original STAN timestamps (kept in the Nats-Streaming-Timestamp header): messages live longer than they would have on STAN")
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

func selected(name string, include, exclude []string) bool {
	if len(include) > 0 {
		ok := false
		for _, g := range include {
			if m, _ := path.Match(g, name); m {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, g := range exclude {
		if m, _ := path.Match(g, name); m {
			return false
		}
	}
	return true
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

func checkCollisions(p *Plan, add func(sev, obj, format string, args ...any)) {
	names := map[string]string{}
	for _, c := range p.Channels {
		if !c.Skip {
			names[c.Name] = c.Stream
		}
	}
	groups := naming.Collisions(names)
	folds := make([]string, 0, len(groups))
	for k := range groups {
		folds = append(folds, k)
	}
	sort.Strings(folds)
	for _, k := range folds {
		owners := groups[k]
		var streams []string
		for _, o := range owners {
			if !slices.Contains(streams, names[o]) {
				streams = append(streams, names[o])
			}
		}
		if len(streams) == 1 {
			add(Blocker, "channels "+strings.Join(owners, ", "), "map to the same stream name %q: rename the streams in the plan", streams[0])
			continue
		}
		add(Blocker, "channels "+strings.Join(owners, ", "), "map to stream names %s, which differ only in case (one stream to JetStream tooling and on case-insensitive file systems): rename the streams in the plan", quoted(streams))
	}
	for _, c := range p.Channels {
		cons := map[string][]string{}
		var order []string
		for _, d := range c.Durables {
			k := strings.ToLower(d.Consumer)
			if _, ok := cons[k]; !ok {
				order = append(order, k)
			}
			cons[k] = append(cons[k], d.Key())
		}
		for _, k := range order {
			if ks := cons[k]; len(ks) > 1 {
				add(Blocker, fmt.Sprintf("channel %q", c.Name), "durables %s map to the same consumer name: rename the consumers in the plan", strings.Join(ks, ", "))
			}
		}
	}
}

func quoted(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func checkTarget(p *Plan, d *Discovery, add func(sev, obj, format string, args ...any)) {
	t := d.Target
	if t.Version != "" && FirstSeqHazard(t.Version) {
		add(Warning, "target server "+t.Version, "this nats-server release loses every message of a file stream with a configured first sequence on restart (nats-server PR #6753): stanmigrate never sets it (it positions streams by purging), but upgrade to 2.10.28+/2.11.2+ before relying on restarts")
	}
	if t.MaxPayload > 0 && d.Source.MaxPayload > 0 {
		var risky []string
		for _, c := range p.Channels {
			over := HeaderOverhead + 3*int64(len(c.Name))
			if c.Skip || c.Msgs == 0 || d.Source.MaxPayload+over <= t.MaxPayload {
				continue
			}
			if avg := int64(c.Bytes / c.Msgs); avg+over > t.MaxPayload {
				add(Blocker, fmt.Sprintf("channel %q", c.Name), "its messages average %d bytes: with migration headers they exceed the target's max_payload %d: raise max_payload on the target", avg, t.MaxPayload)
				continue
			}
			risky = append(risky, c.Name)
		}
		if len(risky) > 0 {
			add(Warning, fmt.Sprintf("%d channel(s)", len(risky)), "STAN accepts messages up to %d bytes, the target's max_payload is %d and migration headers add up to about %d bytes: a message within %d bytes of STAN's limit will not fit, and migrate stops before it; raise max_payload on the target to be safe",
				d.Source.MaxPayload, t.MaxPayload, HeaderOverhead, HeaderOverhead)
		}
	}
	existing := map[string]ExistingStream{}
	// Channel names are literal subjects: they overlap a literal subject
	// only by being equal, so only wildcard subjects need a scan, and
	// planning stays linear in channels however many streams exist.
	type owned struct{ stream, subject string }
	literal := map[string][]owned{}
	var wildcards []owned
	for _, s := range t.Streams {
		existing[strings.ToLower(s.Name)] = s
		for _, subj := range s.Subjects {
			if strings.ContainsAny(subj, "*>") {
				wildcards = append(wildcards, owned{s.Name, subj})
			} else {
				literal[subj] = append(literal[subj], owned{s.Name, subj})
			}
		}
	}
	var newStreams int
	var dataBytes, reserve uint64
	var overAccountConsumers, overConsumerLimit, overAckPending []string
	for _, c := range p.Channels {
		if c.Skip {
			continue
		}
		replicas := uint64(max(c.Replicas, 1))
		over := uint64(HeaderOverhead + 3*len(c.Name))
		cost := (c.Bytes + c.Msgs*over) * replicas
		if es, ok := existing[strings.ToLower(c.Stream)]; ok && c.Msgs > 0 {
			// What an earlier run stored already counts as used storage.
			cost = cost / c.Msgs * (c.Msgs - min(es.Msgs, c.Msgs))
		}
		dataBytes += cost
		if c.Limits.MaxBytes > 0 {
			reserve += uint64(c.Limits.MaxBytes) * replicas
		}
		if t.MaxConsumers > 0 {
			if c.Limits.MaxConsumers > t.MaxConsumers {
				overConsumerLimit = append(overConsumerLimit, c.Name)
			}
			if len(c.Durables) > t.MaxConsumers {
				overAccountConsumers = append(overAccountConsumers, fmt.Sprintf("%s (%d)", c.Name, len(c.Durables)))
			}
		}
		if t.MaxAckPending > 0 {
			for _, du := range c.Durables {
				if du.MaxInflight > t.MaxAckPending {
					overAckPending = append(overAckPending, fmt.Sprintf("%s (%d)", du.Describe(c.Name), du.MaxInflight))
				}
			}
		}
		obj := fmt.Sprintf("stream %q (channel %q)", c.Stream, c.Name)
		es, ok := existing[strings.ToLower(c.Stream)]
		if !ok {
			newStreams++
			for _, o := range literal[c.Name] {
				add(Blocker, obj, "subject %q overlaps stream %q (subject %q) on the target: remove that stream or change its subjects", c.Name, o.stream, o.subject)
			}
			for _, o := range wildcards {
				if naming.SubjectsOverlap(o.subject, c.Name) {
					add(Blocker, obj, "subject %q overlaps stream %q (subject %q) on the target: remove that stream or change its subjects", c.Name, o.stream, o.subject)
				}
			}
			continue
		}
		if checkExistingStream(p, d, c, es, obj, add) {
			checkExistingConsumers(c, es, add)
		}
	}
	if t.MaxStreams > 0 && newStreams+len(t.Streams) > t.MaxStreams {
		add(Blocker, "target account", "the plan creates %d stream(s) but the account allows %d and %d exist: raise the account's max_streams", newStreams, t.MaxStreams, len(t.Streams))
	}
	if t.MaxStorage > 0 {
		if free := uint64(t.MaxStorage) - min(t.UsedStorage, uint64(t.MaxStorage)); dataBytes > free {
			add(Blocker, "target account", "the plan needs about %d bytes of file storage (messages plus migration headers) but the account has %d left of %d: raise the account's max_file (max_storage)", dataBytes, free, t.MaxStorage)
		}
		if free := uint64(t.MaxStorage) - min(t.ReservedStorage, uint64(t.MaxStorage)); reserve > free {
			add(Blocker, "target account", "the streams' max_bytes limits carried over from STAN reserve %d bytes but the account has %d unreserved of %d: JetStream refuses the limits once the data is copied; raise the account's max_file or lower max_bytes in the plan", reserve, free, t.MaxStorage)
		}
	}
	if len(overConsumerLimit) > 0 {
		add(Blocker, "target account", "%d stream(s) carry STAN's max_subscriptions as max_consumers above the account's limit of %d consumers per stream, which JetStream refuses (%s): raise the account's max_consumers or lower max_consumers in the plan", len(overConsumerLimit), t.MaxConsumers, sample(overConsumerLimit))
	}
	if len(overAccountConsumers) > 0 {
		add(Blocker, "target account", "the account allows %d consumer(s) per stream but channel(s) %s have more durables: raise the account's max_consumers or skip durables in the plan", t.MaxConsumers, sample(overAccountConsumers))
	}
	if len(overAckPending) > 0 {
		add(Blocker, "target account", "the account allows max_ack_pending %d but %s: raise the account's max_ack_pending or lower max_inflight in the plan", t.MaxAckPending, sample(overAckPending))
	}
	if t.MaxBytesRequired {
		add(Blocker, "target account", "the account requires max_bytes on every stream (max_bytes_required) and stanmigrate copies without a byte limit: lift the requirement for the migration")
	}
	if t.StoreMaxStreamBytes > 0 {
		var big []string
		for _, c := range p.Channels {
			if c.Limits.MaxBytes > t.StoreMaxStreamBytes {
				big = append(big, c.Name)
			}
		}
		if len(big) > 0 {
			add(Blocker, "target account", "the account caps a stream at %d bytes (max_stream_bytes) and %d stream(s) would carry a larger max_bytes from STAN (%s): raise the account's cap or set max_bytes in the plan", t.StoreMaxStreamBytes, len(big), sample(big))
		}
	}
}

// sample names the first few items of a list for a message.
func sample(items []string) string {
	const n = 5
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}

// checkExistingStream decides whether a stream already on the target can
// be resumed. It reports false when it is a conflict.
func checkExistingStream(p *Plan, d *Discovery, c Channel, es ExistingStream, obj string, add func(sev, obj, format string, args ...any)) bool {
	prefix := jsformat.MsgIDPrefix(d.Source.ClusterID, c.Name)
	var diffs []string
	if es.Storage != "" && !strings.EqualFold(es.Storage, c.Storage) {
		diffs = append(diffs, fmt.Sprintf("storage %s (plan: %s)", es.Storage, c.Storage))
	}
	if es.Replicas != 0 && es.Replicas != c.Replicas {
		diffs = append(diffs, fmt.Sprintf("%d replica(s) (plan: %d)", es.Replicas, c.Replicas))
	}
	if es.Retention != "" && es.Retention != "limits" {
		diffs = append(diffs, fmt.Sprintf("%s retention (plan: limits)", es.Retention))
	}
	if es.Sealed {
		diffs = append(diffs, "sealed")
	}
	// Streams we create record their origin.
	if o, ok := jsformat.ReadStreamOrigin(es.Metadata); ok && (o.Channel != c.Name || o.Cluster != d.Source.ClusterID) {
		diffs = append(diffs, fmt.Sprintf("created by stanmigrate for channel %q of cluster %q", o.Channel, o.Cluster))
	}
	switch {
	case es.Name != c.Stream:
		add(Blocker, obj, "a stream %q already exists on the target (names differ only in case): rename the stream in the plan", es.Name)
	case len(es.Subjects) != 1 || es.Subjects[0] != c.Name:
		add(Blocker, obj, "already exists on the target with subjects %v, not [%s]: remove it or rename the stream in the plan", es.Subjects, c.Name)
	case es.Msgs > 0 && !strings.HasPrefix(es.FirstMsgID, prefix):
		add(Blocker, obj, "already exists on the target and holds %d message(s) not written by stanmigrate for this channel: remove it or rename the stream in the plan", es.Msgs)
	case len(diffs) > 0:
		add(Blocker, obj, "already exists on the target with a different configuration: %s: remove it or align the plan", strings.Join(diffs, ", "))
	default:
		add(Info, obj, "already exists on the target with this channel's data (%d message(s), last sequence %d): migrate resumes it", es.Msgs, es.LastSeq)
		return true
	}
	return false
}

// checkExistingConsumers compares consumers already on a resumable stream
// with the consumers the plan would create: one of ours with the same
// settings is reused, anything else under the same name is a conflict.
func checkExistingConsumers(c Channel, es ExistingStream, add func(sev, obj, format string, args ...any)) {
	byName := map[string]ExistingConsumer{}
	for _, ec := range es.Consumers {
		byName[strings.ToLower(ec.Name)] = ec
	}
	for _, du := range c.Durables {
		if du.Skip {
			continue
		}
		ec, ok := byName[strings.ToLower(du.Consumer)]
		if !ok {
			continue
		}
		obj := fmt.Sprintf("consumer %q on stream %q (%s)", du.Consumer, c.Stream, du.Describe(c.Name))
		// Consumers we create record their origin.
		if o, _ := jsformat.ReadConsumerOrigin(ec.Metadata); ec.Name != du.Consumer || !o.Made(c.Name, du.Durable, du.QueueGroup) {
			add(Blocker, obj, "a consumer %q already exists on the target but was not created by stanmigrate for this durable: remove it or rename the consumer in the plan", ec.Name)
			continue
		}
		var diffs []string
		if ec.AckPolicy != "AckExplicit" {
			diffs = append(diffs, "ack policy "+ec.AckPolicy+" (plan: explicit)")
		}
		if ec.AckWait != du.AckWait {
			diffs = append(diffs, fmt.Sprintf("ack_wait %v (plan: %v)", ec.AckWait, du.AckWait))
		}
		if ec.MaxAckPending != du.MaxInflight {
			diffs = append(diffs, fmt.Sprintf("max_ack_pending %d (plan: max_inflight %d)", ec.MaxAckPending, du.MaxInflight))
		}
		wantDeliver, wantGroup := "", ""
		if du.Mode == ModePush {
			wantDeliver, wantGroup = du.DeliverTo, du.QueueGroup
		}
		if ec.DeliverSubject != wantDeliver || ec.DeliverGroup != wantGroup {
			diffs = append(diffs, fmt.Sprintf("deliver subject %q group %q (plan: %s mode, %q %q)", ec.DeliverSubject, ec.DeliverGroup, du.Mode, wantDeliver, wantGroup))
		}
		if ec.FilterSubject != "" && ec.FilterSubject != c.Name {
			diffs = append(diffs, fmt.Sprintf("filter %q", ec.FilterSubject))
		}
		if du.Position == jsformat.Exact && (ec.DeliverPolicy != "by_start_sequence" || ec.OptStartSeq != du.StartSeq) {
			diffs = append(diffs, fmt.Sprintf("starts at %s %d (the durable's position is %d)", ec.DeliverPolicy, ec.OptStartSeq, du.StartSeq))
		}
		if len(diffs) > 0 {
			add(Blocker, obj, "already exists on the target with a different configuration: %s: remove it (migrate re-creates it) or align the plan", strings.Join(diffs, ", "))
			continue
		}
		add(Info, obj, "already exists on the target with this durable's settings: migrate reuses it")
	}
}

// FirstSeqHazard reports whether a nats-server version loses the messages
// of a file stream with a configured first sequence on restart (2.10.0 to
// 2.10.27 and 2.11.0 to 2.11.1, fixed by nats-server PR #6753).
func FirstSeqHazard(version string) bool {
	var maj, min, patch int
	v := strings.TrimPrefix(version, "v")
	if i := strings.IndexAny(v, "-+"); i >= 0 {
		v = v[:i]
	}
	if n, _ := fmt.Sscanf(v, "%d.%d.%d", &maj, &min, &patch); n < 2 {
		return false
	}
	switch {
	case maj == 2 && min == 10:
		return patch <= 27
	case maj == 2 && min == 11:
		return patch <= 1
	}
	return false
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
func channelFindings(c *Channel, sc source.Channel, targetMaxPayload int64, skipBroken bool, add func(sev, obj, format string, args ...any)) {
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
		size+HeaderOverhead+3*int64(len(c.Name)) > targetMaxPayload {
		add(Warning, obj, "holds messages of up to %d bytes (stored size, payload included): with the migration headers they may exceed the target's max_payload %d, and migrate stops before such a message: raise max_payload on the target", size, targetMaxPayload)
	}
}
