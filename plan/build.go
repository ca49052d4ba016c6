package plan

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/monitor"
	"github.com/stanmigrate/stanmigrate/internal/naming"
)

// HeaderOverhead is a safe upper bound, in bytes, of what the migration
// headers add to a message (protocol framing plus the four headers with
// long channel names excluded; those are added per channel).
const HeaderOverhead = 220

// DefaultDuplicateWindow is the dedup window a finished stream keeps.
const DefaultDuplicateWindow = 2 * time.Minute

// Discovery is everything plan learns from both servers; Build turns it
// into a Plan without further I/O, so mapping rules are testable on data.
type Discovery struct {
	ClusterID     string
	SourceURL     string
	MonitorURL    string
	ServerVersion string
	Limits        monitor.StoreLimits
	Channels      []*monitor.Channelz
	MaxPayload    int64
	Target        TargetState
	// Offline is set by DiscoverDir (a stopped server's store directory):
	// exact durable positions and the channels it cannot read.
	Offline *Offline
}

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
}

// Build maps discovered channels and subscriptions onto streams and
// consumers and lists everything the operator must know.
func Build(d *Discovery, o Options) *Plan {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Headers == "" {
		o.Headers = HeadersFull
	}
	p := &Plan{
		Version:   FormatVersion,
		CreatedAt: o.Now.UTC().Truncate(time.Second),
		Source: Source{
			ClusterID: d.ClusterID, URL: d.SourceURL, Monitor: d.MonitorURL,
			ServerVersion: d.ServerVersion, MaxPayload: d.MaxPayload,
		},
		Target:  Target{URL: d.Target.URL, ServerVersion: d.Target.Version, MaxPayload: d.Target.MaxPayload},
		Headers: o.Headers,
	}
	add := func(sev, obj, format string, args ...any) {
		p.Findings = append(p.Findings, Finding{Severity: sev, Object: obj, Message: fmt.Sprintf(format, args...)})
	}
	anyAge, anySubs := false, false
	if d.Offline != nil {
		d.Offline.report(add)
	}
	for _, cz := range d.Channels {
		if !selected(cz.Name, o.Include, o.Exclude) {
			p.Excluded = append(p.Excluded, cz.Name)
			continue
		}
		lim, from := d.Limits.ForChannel(cz.Name)
		c := Channel{
			Name:     cz.Name,
			Stream:   naming.StreamName(cz.Name),
			FirstSeq: cz.FirstSeq,
			LastSeq:  cz.LastSeq,
			Msgs:     uint64(cz.Msgs),
			Bytes:    cz.Bytes,
			Limits: Limits{
				MaxMsgs: int64(lim.MaxMsgs), MaxBytes: lim.MaxBytes, MaxAge: Duration(lim.MaxAge),
				MaxConsumers: lim.MaxSubscriptions, From: from,
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
			if need := cz.Bytes + uint64(cz.Msgs)*uint64(HeaderOverhead+3*len(cz.Name)); need > uint64(lim.MaxBytes) {
				add(Info, fmt.Sprintf("channel %q", cz.Name), "JetStream counts headers and subjects in max_bytes: the copied messages take about %d bytes, over STAN's max_bytes %d, so migrate raises the stream's max_bytes to what they take", need, lim.MaxBytes)
			}
		}
		var nds []NonDurable
		c.Durables, nds = Subscriptions(cz)
		if d.Offline != nil {
			d.Offline.apply(&c, add)
		}
		p.NonDurables = append(p.NonDurables, nds...)
		for _, du := range c.Durables {
			if du.Online {
				who := du.ClientID
				if du.QueueGroup != "" {
					who = strings.Join(du.Members, ", ")
				}
				add(Blocker, du.Describe(c.Name), "owner is online (client id %s): stop the application before migrating; its position moves while it consumes and cannot be probed", who)
			} else if du.Position == PositionProbe {
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

// Subscriptions turns a channel's monitoring entries into durables (one
// per plain durable, one per queue group: the group's furthest last_sent,
// its members' pending summed, online if any member is) and non-durables.
// plan maps them; migrate and verify read the durables' current state
// through it too, so all three agree on what a durable is.
func Subscriptions(cz *monitor.Channelz) ([]Durable, []NonDurable) {
	var out []Durable
	var nds []NonDurable
	groups := map[string]int{}
	for _, s := range cz.Subscriptions {
		switch {
		case s.IsDurable && s.QueueName == "":
			out = append(out, Durable{
				ClientID: s.ClientID, Durable: s.DurableName,
				MaxInflight: s.MaxInflight, AckWait: Duration(time.Duration(s.AckWait) * time.Second),
				LastSent: s.LastSent, Pending: s.PendingCount, Online: !s.IsOffline,
			})
		case s.IsDurable:
			// STAN names a durable queue group "durable:group".
			dur, group, _ := strings.Cut(s.QueueName, ":")
			i, ok := groups[s.QueueName]
			if !ok {
				i = len(out)
				groups[s.QueueName] = i
				out = append(out, Durable{Durable: dur, QueueGroup: group, MaxInflight: s.MaxInflight,
					AckWait: Duration(time.Duration(s.AckWait) * time.Second)})
			}
			g := &out[i]
			if s.LastSent > g.LastSent {
				g.LastSent = s.LastSent
			}
			g.Pending += s.PendingCount
			if !s.IsOffline {
				g.Online = true
				g.Members = append(g.Members, s.ClientID)
			} else if g.ClientID == "" {
				g.ClientID = s.ClientID
			}
		default:
			nds = append(nds, NonDurable{Channel: cz.Name, ClientID: s.ClientID, Queue: s.QueueName})
		}
	}
	for i := range out {
		d := &out[i]
		d.Consumer = naming.ConsumerName(d.ClientID, d.Durable, d.QueueGroup)
		d.Mode = ModePull
		d.StartSeq = max(d.LastSent+1, cz.FirstSeq)
		d.Position = PositionExact
		if d.Pending > 0 {
			d.Position = PositionProbe
		}
		sort.Strings(d.Members)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Consumer < out[j].Consumer })
	return out, nds
}

// DurablesByKey indexes a channel's current durables by Durable.Key().
func DurablesByKey(cz *monitor.Channelz) map[string]Durable {
	ds, _ := Subscriptions(cz)
	out := make(map[string]Durable, len(ds))
	for _, d := range ds {
		out[d.Key()] = d
	}
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
	if t.MaxPayload > 0 && d.MaxPayload > 0 {
		var risky []string
		for _, c := range p.Channels {
			over := HeaderOverhead + 3*int64(len(c.Name))
			if c.Skip || c.Msgs == 0 || d.MaxPayload+over <= t.MaxPayload {
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
				d.MaxPayload, t.MaxPayload, HeaderOverhead, HeaderOverhead)
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
	prefix := d.ClusterID + ":" + c.Name + ":"
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
	// Streams we create record their origin (migrate's stream metadata).
	if ch, cl := es.Metadata["stanmigrate.channel"], es.Metadata["stanmigrate.cluster"]; (ch != "" || cl != "") && (ch != c.Name || cl != d.ClusterID) {
		diffs = append(diffs, fmt.Sprintf("created by stanmigrate for channel %q of cluster %q", ch, cl))
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
		// Consumers we create record their origin (migrate's metadata keys).
		md := ec.Metadata
		if ec.Name != du.Consumer || md["stanmigrate.channel"] != c.Name || md["stanmigrate.durable"] != du.Durable || md["stanmigrate.queue_group"] != du.QueueGroup {
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
		if du.Position == PositionExact && (ec.DeliverPolicy != "by_start_sequence" || ec.OptStartSeq != du.StartSeq) {
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
