package plan

import (
	"fmt"
	"strings"

	"github.com/stanmigrate/stanmigrate/internal/apilevel"
	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/naming"
)

// TargetState is what already exists on the JetStream side.
type TargetState struct {
	URL     string
	Version string
	// API is the JetStream the plan reaches (domain or API prefix);
	// APILevel the API level it answered with.
	API        conn.API
	APILevel   int
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
	Placement *Placement
	Retention string // "limits", "interest" or "workqueue"
	Sealed    bool
	Metadata  map[string]string
	Msgs      uint64
	FirstSeq  uint64
	LastSeq   uint64
	// FirstHeaders are the first stored message's headers, which tell
	// our own earlier run apart from foreign data.
	FirstHeaders map[string][]string
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

// finding adds one finding to a plan.
type finding func(sev, obj, format string, args ...any)

// checkTarget runs each check of the target against the plan; they are
// independent and each reports its own findings.
func checkTarget(p *Plan, d *Discovery, add finding) {
	checkTargetRelease(d.Target, add)
	checkPayloads(p, d, add)
	newStreams := checkStreams(p, d, add)
	if t := d.Target; t.MaxStreams > 0 && newStreams+len(t.Streams) > t.MaxStreams {
		add(Blocker, "target account", "the plan creates %d stream(s) but the account allows %d and %d exist: raise the account's max_streams", newStreams, t.MaxStreams, len(t.Streams))
	}
	checkAccountStorage(p, d.Target, add)
	checkAccountLimits(p, d.Target, add)
}

// checkTargetRelease names the target's release line and warns of the
// first-sequence hazard.
func checkTargetRelease(t TargetState, add finding) {
	checkTargetLine(t.Version, apilevel.Level(t.APILevel), add)
	if t.API != (conn.API{}) {
		add(Info, "target "+t.API.String(), "reached through the server connected to (nats-server %s), whose version and max_payload the plan shows; fast-ingest batches and how a resend is answered follow the JetStream API level that answered in it (%d)", t.Version, t.APILevel)
	}
	if t.Version != "" && FirstSeqHazard(t.Version) {
		add(Warning, "target server "+t.Version, "this nats-server release loses every message of a file stream with a configured first sequence on restart (nats-server PR #6753): stanmigrate never sets it (it positions streams by purging), but upgrade to 2.10.28+/2.11.2+ before relying on restarts")
	}
}

// checkPayloads compares STAN's max payload plus what migration adds
// with the target's.
func checkPayloads(p *Plan, d *Discovery, add finding) {
	t := d.Target
	if t.MaxPayload <= 0 || d.Source.MaxPayload <= 0 {
		return
	}
	var risky []string
	for _, c := range p.Channels {
		over := MsgOverhead(d.Source.ClusterID, c.Name)
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

// checkStreams compares each planned stream with the streams on the
// target: an existing one is resumed or a conflict, a new one must not
// overlap another's subjects. It returns how many streams the plan adds.
func checkStreams(p *Plan, d *Discovery, add finding) (newStreams int) {
	existing := map[string]ExistingStream{}
	// Channel names are literal subjects: they overlap a literal subject
	// only by being equal, so only wildcard subjects need a scan, and
	// planning stays linear in channels however many streams exist.
	type owned struct{ stream, subject string }
	literal := map[string][]owned{}
	var wildcards []owned
	for _, s := range d.Target.Streams {
		existing[strings.ToLower(s.Name)] = s
		for _, subj := range s.Subjects {
			if strings.ContainsAny(subj, "*>") {
				wildcards = append(wildcards, owned{s.Name, subj})
			} else {
				literal[subj] = append(literal[subj], owned{s.Name, subj})
			}
		}
	}
	for _, c := range p.Channels {
		if c.Skip {
			continue
		}
		obj := fmt.Sprintf("stream %q (channel %q)", c.Stream, c.Name)
		es, ok := existing[strings.ToLower(c.Stream)]
		if ok {
			if checkExistingStream(d.Source.ClusterID, c, es, obj, add) {
				checkExistingConsumers(c, es, add)
			}
			continue
		}
		newStreams++
		for _, o := range literal[c.Name] {
			add(Blocker, obj, "subject %q overlaps stream %q (subject %q) on the target: remove that stream or change its subjects", c.Name, o.stream, o.subject)
		}
		for _, o := range wildcards {
			if naming.SubjectsOverlap(o.subject, c.Name) {
				add(Blocker, obj, "subject %q overlaps stream %q (subject %q) on the target: remove that stream or change its subjects", c.Name, o.stream, o.subject)
			}
		}
	}
	return newStreams
}

// checkAccountStorage compares the storage the plan needs (messages plus
// migration headers, less what an earlier run stored) and the byte limits
// it reserves with what the account has left.
func checkAccountStorage(p *Plan, t TargetState, add finding) {
	if t.MaxStorage <= 0 {
		return
	}
	stored := map[string]uint64{}
	for _, s := range t.Streams {
		stored[strings.ToLower(s.Name)] = s.Msgs
	}
	var dataBytes, reserve uint64
	for _, c := range p.Channels {
		if c.Skip {
			continue
		}
		replicas := uint64(max(c.Replicas, 1))
		over := uint64(MsgOverhead(p.Source.ClusterID, c.Name))
		cost := (c.Bytes + c.Msgs*over) * replicas
		if n, ok := stored[strings.ToLower(c.Stream)]; ok && c.Msgs > 0 {
			// What an earlier run stored already counts as used storage.
			cost = cost / c.Msgs * (c.Msgs - min(n, c.Msgs))
		}
		dataBytes += cost
		if c.Limits.MaxBytes > 0 {
			reserve += uint64(c.Limits.MaxBytes) * replicas
		}
	}
	if free := uint64(t.MaxStorage) - min(t.UsedStorage, uint64(t.MaxStorage)); dataBytes > free {
		add(Blocker, "target account", "the plan needs about %d bytes of file storage (messages plus migration headers) but the account has %d left of %d: raise the account's max_file (max_storage)", dataBytes, free, t.MaxStorage)
	}
	if free := uint64(t.MaxStorage) - min(t.ReservedStorage, uint64(t.MaxStorage)); reserve > free {
		add(Blocker, "target account", "the streams' max_bytes limits carried over from STAN reserve %d bytes but the account has %d unreserved of %d: JetStream refuses the limits once the data is copied; raise the account's max_file or lower max_bytes in the plan", reserve, free, t.MaxStorage)
	}
}

// checkAccountLimits compares the consumers and stream limits the plan
// creates with the account's limits on them.
func checkAccountLimits(p *Plan, t TargetState, add finding) {
	var overAccountConsumers, overConsumerLimit, overAckPending, big []string
	for _, c := range p.Channels {
		if c.Skip {
			continue
		}
		if t.MaxConsumers > 0 && c.Limits.MaxConsumers > t.MaxConsumers {
			overConsumerLimit = append(overConsumerLimit, c.Name)
		}
		if t.MaxConsumers > 0 && len(c.Durables) > t.MaxConsumers {
			overAccountConsumers = append(overAccountConsumers, fmt.Sprintf("%s (%d)", c.Name, len(c.Durables)))
		}
		for _, du := range c.Durables {
			if t.MaxAckPending > 0 && du.MaxInflight > t.MaxAckPending {
				overAckPending = append(overAckPending, fmt.Sprintf("%s (%d)", du.Describe(c.Name), du.MaxInflight))
			}
		}
	}
	for _, c := range p.Channels {
		if t.StoreMaxStreamBytes > 0 && c.Limits.MaxBytes > t.StoreMaxStreamBytes {
			big = append(big, c.Name)
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
	if len(big) > 0 {
		add(Blocker, "target account", "the account caps a stream at %d bytes (max_stream_bytes) and %d stream(s) would carry a larger max_bytes from STAN (%s): raise the account's cap or set max_bytes in the plan", t.StoreMaxStreamBytes, len(big), sample(big))
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
func checkExistingStream(cluster string, c Channel, es ExistingStream, obj string, add finding) bool {
	var diffs []string
	if es.Storage != "" && !strings.EqualFold(es.Storage, c.Storage) {
		diffs = append(diffs, fmt.Sprintf("storage %s (plan: %s)", es.Storage, c.Storage))
	}
	if es.Replicas != 0 && es.Replicas != c.Replicas {
		diffs = append(diffs, fmt.Sprintf("%d replica(s) (plan: %d)", es.Replicas, c.Replicas))
	}
	if !es.Placement.Equal(c.Placement) {
		diffs = append(diffs, fmt.Sprintf("placement %s (plan: %s)", es.Placement, c.Placement))
	}
	if es.Retention != "" && es.Retention != "limits" {
		diffs = append(diffs, fmt.Sprintf("%s retention (plan: limits)", es.Retention))
	}
	if es.Sealed {
		diffs = append(diffs, "sealed")
	}
	// Streams we create record their origin.
	if o, ok := jsformat.ReadStreamOrigin(es.Metadata); ok && (o.Channel != c.Name || o.Cluster != cluster) {
		diffs = append(diffs, fmt.Sprintf("created by stanmigrate for channel %q of cluster %q", o.Channel, o.Cluster))
	}
	switch {
	case es.Name != c.Stream:
		add(Blocker, obj, "a stream %q already exists on the target (names differ only in case): rename the stream in the plan", es.Name)
	case len(es.Subjects) != 1 || es.Subjects[0] != c.Name:
		add(Blocker, obj, "already exists on the target with subjects %v, not [%s]: remove it or rename the stream in the plan", es.Subjects, c.Name)
	case es.Msgs > 0 && !jsformat.Written(es.FirstHeaders, ours(es.Metadata, cluster, c.Name), cluster, c.Name, es.FirstSeq):
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
func checkExistingConsumers(c Channel, es ExistingStream, add finding) {
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

// checkTargetLine names the target's release line and what differs on it
// for a migration. Lines before 2.10 lack the stream and consumer metadata
// migrate records each one's origin in, so they are a blocker. The
// first-sequence hazard of early 2.10 and 2.11 releases is a warning of
// its own (FirstSeqHazard).
func checkTargetLine(version string, level apilevel.Level, add finding) {
	maj, min, _, ok := parseServerVersion(version)
	if !ok {
		return
	}
	obj := "target server " + version
	line := fmt.Sprintf("%d.%d", maj, min)
	before := func(m, n int) bool { return maj < m || maj == m && min < n }
	if before(2, 10) {
		add(Blocker, obj, "release line %s is not supported: stanmigrate records each stream's and consumer's origin in JetStream metadata and resumes by it, which nats-server has only from 2.10 on: upgrade the target to 2.10.28 or later", line)
		return
	}
	var parts []string
	// The answering JetStream's level says it where known (through a
	// domain it is not the connected server's); the version otherwise.
	checksSeqFirst := level.ChecksRequired() || level == 0 && !before(2, 12)
	if !checksSeqFirst {
		parts = append(parts, "a resend of a stored message whose Nats-Msg-Id is still in the stream's duplicate window is answered with a duplicate ack, as this line checks the Msg-Id before the expected last sequence (2.12 and later answer error 10071 \"wrong last sequence\"); migrate treats both answers as already stored")
	} else {
		parts = append(parts, "a resend of a stored message is answered with error 10071 \"wrong last sequence\" even while its Nats-Msg-Id is in the stream's duplicate window, as this line checks the expected last sequence first (2.10 and 2.11 answer with a duplicate ack); migrate treats it as already stored")
	}
	// Decided by the API level of the JetStream that answered, as
	// migrate decides it: through a domain that is not the connected
	// server's, whose version this is.
	if level.FastIngest() {
		parts = append(parts, fmt.Sprintf("fast batched publishing is available (JetStream API level %d, stream setting allow_batched)", level))
	} else {
		parts = append(parts, fmt.Sprintf("no fast batched publishing (JetStream API level %d; the stream setting allow_batched needs %d, %s): migrate publishes each message asynchronously", level, apilevel.FastBatches, apilevel.FastBatches.Release()))
	}
	if FirstSeqHazard(version) {
		parts = append(parts, "this release has the first-sequence restart hazard (see the warning)")
	}
	add(Info, obj, "release line %s: %s", line, strings.Join(parts, "; "))
}

// parseServerVersion reads "2.10.29", "v2.11.0-RC.1" or "2.12" as major,
// minor and patch; ok is false for anything else.
func parseServerVersion(version string) (maj, min, patch int, ok bool) {
	v := strings.TrimPrefix(version, "v")
	if i := strings.IndexAny(v, "-+"); i >= 0 {
		v = v[:i]
	}
	if n, _ := fmt.Sscanf(v, "%d.%d.%d", &maj, &min, &patch); n < 2 {
		return 0, 0, 0, false
	}
	return maj, min, patch, true
}

// FirstSeqHazard reports whether a nats-server version loses the messages
// of a file stream with a configured first sequence on restart (2.10.0 to
// 2.10.27 and 2.11.0 to 2.11.1, fixed by nats-server PR #6753).
func FirstSeqHazard(version string) bool {
	maj, min, patch, ok := parseServerVersion(version)
	if !ok {
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

// ours reports whether a stream's metadata says stanmigrate made it for
// the channel of the cluster.
func ours(md map[string]string, cluster, channel string) bool {
	o, ok := jsformat.ReadStreamOrigin(md)
	return ok && o.Channel == channel && o.Cluster == cluster
}
