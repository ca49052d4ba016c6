package plan

import (
	"fmt"
	"path"
	"sort"
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
}

// TargetState is what already exists on the JetStream side.
type TargetState struct {
	URL        string
	Version    string
	MaxPayload int64
	Streams    []ExistingStream
	// Account limits (-1 or 0 = unlimited).
	MaxStreams   int
	MaxConsumers int
	MaxStorage   int64
	UsedStorage  uint64
}

// ExistingStream summarises a stream found on the target.
type ExistingStream struct {
	Name     string
	Subjects []string
	Storage  string
	Replicas int
	Msgs     uint64
	FirstSeq uint64
	LastSeq  uint64
	// FirstMsgID is the Nats-Msg-Id of the first stored message, which
	// tells our own earlier run apart from foreign data.
	FirstMsgID string
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
	anyAge := false
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
		var nds []NonDurable
		c.Durables, nds = Subscriptions(cz)
		p.NonDurables = append(p.NonDurables, nds...)
		for _, du := range c.Durables {
			if du.Online {
				who := du.ClientID
				if du.QueueGroup != "" {
					who = strings.Join(du.Members, ", ")
				}
				add(Blocker, du.Describe(c.Name), "owner is online (client id %s): stop the application before migrating; its position moves while it consumes and cannot be probed", who)
			} else if du.Position == PositionProbe {
				add(Info, du.Describe(c.Name), "%d message(s) unacknowledged: the exact start is probed at migrate time (the application will see them again, as STAN would redeliver them)", du.Pending)
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
		names[c.Name] = c.Stream
	}
	for _, owners := range naming.Collisions(names) {
		add(Blocker, "channels "+strings.Join(owners, ", "), "map to the same stream name %q (JetStream names collide, case included): rename the streams in the plan", names[owners[0]])
	}
	for _, c := range p.Channels {
		cons := map[string][]string{}
		for _, d := range c.Durables {
			k := strings.ToLower(d.Consumer)
			cons[k] = append(cons[k], d.Key())
		}
		for _, ks := range cons {
			if len(ks) > 1 {
				add(Blocker, fmt.Sprintf("channel %q", c.Name), "durables %s map to the same consumer name: rename the consumers in the plan", strings.Join(ks, ", "))
			}
		}
	}
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
			if c.Msgs == 0 || d.MaxPayload+over <= t.MaxPayload {
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
	for _, s := range t.Streams {
		existing[strings.ToLower(s.Name)] = s
	}
	var streams, consumers int
	var bytes uint64
	for _, c := range p.Channels {
		streams++
		consumers += len(c.Durables)
		bytes += c.Bytes
		obj := fmt.Sprintf("stream %q (channel %q)", c.Stream, c.Name)
		if es, ok := existing[strings.ToLower(c.Stream)]; ok {
			prefix := d.ClusterID + ":" + c.Name + ":"
			switch {
			case es.Name != c.Stream:
				add(Blocker, obj, "a stream %q already exists on the target (names differ only in case): rename the stream in the plan", es.Name)
			case len(es.Subjects) != 1 || es.Subjects[0] != c.Name:
				add(Blocker, obj, "already exists on the target with subjects %v, not [%s]: remove it or rename the stream in the plan", es.Subjects, c.Name)
			case es.Msgs > 0 && !strings.HasPrefix(es.FirstMsgID, prefix):
				add(Blocker, obj, "already exists on the target and holds %d message(s) not written by stanmigrate for this channel: remove it or rename the stream in the plan", es.Msgs)
			default:
				add(Info, obj, "already exists on the target with this channel's data (%d message(s), last sequence %d): migrate resumes it", es.Msgs, es.LastSeq)
			}
			continue
		}
		for _, es := range t.Streams {
			for _, subj := range es.Subjects {
				if naming.SubjectsOverlap(subj, c.Name) {
					add(Blocker, obj, "subject %q overlaps stream %q (subject %q) on the target: remove that stream or change its subjects", c.Name, es.Name, subj)
				}
			}
		}
	}
	if t.MaxStreams > 0 && streams+len(t.Streams) > t.MaxStreams {
		add(Blocker, "target account", "the plan needs %d streams but the account allows %d (%d in use): raise the account's stream limit", streams, t.MaxStreams, len(t.Streams))
	}
	if t.MaxStorage > 0 && uint64(t.MaxStorage) < t.UsedStorage+bytes {
		add(Blocker, "target account", "the plan needs about %d bytes of storage but the account has %d left: raise the account's storage limit", bytes, uint64(t.MaxStorage)-t.UsedStorage)
	}
	if t.MaxConsumers > 0 && consumers > t.MaxConsumers {
		add(Blocker, "target account", "the plan needs %d consumers but the account allows %d: raise the account's consumer limit", consumers, t.MaxConsumers)
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
