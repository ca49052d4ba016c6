// Package plan discovers a STAN deployment and maps it onto JetStream:
// channels to streams, durables to consumers. A Plan is plain data, saved
// as YAML an operator can edit and read back by migrate and verify.
package plan

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/source"
)

// FormatVersion is the plan file version this build reads and writes.
const FormatVersion = 1

// Consumer delivery modes.
const (
	ModePull = "pull"
	ModePush = "push"
)

// Plan is the unit of coordination: what migrate does and verify checks.
type Plan struct {
	Version   int       `yaml:"version" json:"version"`
	CreatedAt time.Time `yaml:"created_at" json:"created_at"`
	Source    Source    `yaml:"source" json:"source"`
	Target    Target    `yaml:"target" json:"target"`
	Headers   string    `yaml:"headers" json:"headers"`
	// MsgID puts a Nats-Msg-Id on every message (opt-in: exactly-once
	// rests on the expected last sequence, and every remembered id costs
	// the server memory and time).
	MsgID       bool         `yaml:"msg_id,omitempty" json:"msg_id,omitempty"`
	Channels    []Channel    `yaml:"channels" json:"channels"`
	Excluded    []string     `yaml:"excluded,omitempty" json:"excluded,omitempty"`
	NonDurables []NonDurable `yaml:"non_durables,omitempty" json:"non_durables,omitempty"`
	Findings    []Finding    `yaml:"findings,omitempty" json:"findings,omitempty"`
	Totals      Totals       `yaml:"-" json:"totals"`
	lines       map[string]int
}

// Source describes the STAN side as discovered. URLs never carry
// credentials.
type Source struct {
	ClusterID     string `yaml:"cluster_id" json:"cluster_id"`
	URL           string `yaml:"url,omitempty" json:"url,omitempty"`
	Monitor       string `yaml:"monitor,omitempty" json:"monitor,omitempty"`
	ServerVersion string `yaml:"server_version,omitempty" json:"server_version,omitempty"`
	MaxPayload    int64  `yaml:"max_payload,omitempty" json:"max_payload,omitempty"`
	Auth          *Auth  `yaml:"auth,omitempty" json:"auth,omitempty"`
}

// Target describes the JetStream side.
type Target struct {
	URL string `yaml:"url,omitempty" json:"url,omitempty"`
	// Domain or APIPrefix name the JetStream the plan was made for when
	// it is not the connected server's own (a leaf node's domain, an
	// account's imported API): migrate and verify reach the same one
	// unless told otherwise (--nats-domain).
	Domain        string `yaml:"domain,omitempty" json:"domain,omitempty"`
	APIPrefix     string `yaml:"api_prefix,omitempty" json:"api_prefix,omitempty"`
	ServerVersion string `yaml:"server_version,omitempty" json:"server_version,omitempty"`
	// APILevel is the JetStream API level that answered (0 before 2.11).
	APILevel   int   `yaml:"api_level,omitempty" json:"api_level,omitempty"`
	MaxPayload int64 `yaml:"max_payload,omitempty" json:"max_payload,omitempty"`
	Auth       *Auth `yaml:"auth,omitempty" json:"auth,omitempty"`
}

// Auth says how to reach one side securely, by reference only: file
// paths, a NATS CLI context name, and the names of environment variables
// holding a user, password or token — never a secret's value. migrate and
// verify use it when no security flag is given for that side.
type Auth struct {
	Context     string `yaml:"context,omitempty" json:"context,omitempty"`
	Creds       string `yaml:"creds,omitempty" json:"creds,omitempty"`
	NKey        string `yaml:"nkey,omitempty" json:"nkey,omitempty"`
	UserEnv     string `yaml:"user_env,omitempty" json:"user_env,omitempty"`
	PasswordEnv string `yaml:"password_env,omitempty" json:"password_env,omitempty"`
	TokenEnv    string `yaml:"token_env,omitempty" json:"token_env,omitempty"`
	TLSCert     string `yaml:"tls_cert,omitempty" json:"tls_cert,omitempty"`
	TLSKey      string `yaml:"tls_key,omitempty" json:"tls_key,omitempty"`
	TLSCA       string `yaml:"tls_ca,omitempty" json:"tls_ca,omitempty"`
	// MonitorCA is the CA of an https:// STAN monitoring endpoint (source
	// only; default: TLSCA).
	MonitorCA string `yaml:"monitor_ca,omitempty" json:"monitor_ca,omitempty"`
}

// Channel maps one STAN channel onto one stream.
type Channel struct {
	Name     string `yaml:"channel" json:"channel"`
	Stream   string `yaml:"stream" json:"stream"`
	Skip     bool   `yaml:"skip,omitempty" json:"skip,omitempty"`
	FirstSeq uint64 `yaml:"first_seq" json:"first_seq"`
	LastSeq  uint64 `yaml:"last_seq" json:"last_seq"`
	Msgs     uint64 `yaml:"msgs" json:"msgs"`
	Bytes    uint64 `yaml:"bytes" json:"bytes"`
	Limits   Limits `yaml:"limits" json:"limits"`
	Replicas int    `yaml:"replicas" json:"replicas"`
	// Placement puts the stream's replicas in a JetStream cluster and on
	// servers with these tags (nil: where the target decides).
	Placement *Placement `yaml:"placement,omitempty" json:"placement,omitempty"`
	Storage   string     `yaml:"storage" json:"storage"`
	// DuplicateWindow is the stream's dedup window once migrated; while
	// migrating a short window is used (see migrate).
	DuplicateWindow Duration `yaml:"duplicate_window" json:"duplicate_window"`
	// Expiry says when a migrated message expires (channels with a
	// max_age only): ExpiryOriginal (at its STAN deadline, by per-message
	// TTL) or ExpiryMigration (max_age counted from the copy).
	Expiry   string    `yaml:"expiry,omitempty" json:"expiry,omitempty"`
	Durables []Durable `yaml:"durables,omitempty" json:"durables,omitempty"`
}

// Placement says where a stream's replicas go in a JetStream cluster.
type Placement struct {
	Cluster string   `yaml:"cluster,omitempty" json:"cluster,omitempty"`
	Tags    []string `yaml:"tags,omitempty" json:"tags,omitempty"`
}

// String describes the placement for messages.
func (p *Placement) String() string {
	if p == nil || (p.Cluster == "" && len(p.Tags) == 0) {
		return "anywhere"
	}
	s := "cluster " + p.Cluster
	if p.Cluster == "" {
		s = "any cluster"
	}
	if len(p.Tags) > 0 {
		s += " tags " + strings.Join(p.Tags, ",")
	}
	return s
}

// Equal reports whether two placements put replicas in the same places.
func (p *Placement) Equal(o *Placement) bool {
	norm := func(x *Placement) (string, string) {
		if x == nil {
			return "", ""
		}
		t := slices.Clone(x.Tags)
		slices.Sort(t)
		return x.Cluster, strings.Join(t, ",")
	}
	c1, t1 := norm(p)
	c2, t2 := norm(o)
	return c1 == c2 && t1 == t2
}

// Limits are the stream limits carried over from STAN (0 = unlimited).
type Limits struct {
	MaxMsgs      int64    `yaml:"max_msgs" json:"max_msgs"`
	MaxBytes     int64    `yaml:"max_bytes" json:"max_bytes"`
	MaxAge       Duration `yaml:"max_age" json:"max_age"`
	MaxConsumers int      `yaml:"max_consumers" json:"max_consumers"`
	// From names the STAN limits pattern they came from ("" = global).
	From string `yaml:"from,omitempty" json:"from,omitempty"`
}

// Durable maps one STAN durable (plain or queue group) onto a consumer.
type Durable struct {
	source.DurableID `yaml:",inline"`
	Members          []string `yaml:"members,omitempty" json:"members,omitempty"`
	Consumer         string   `yaml:"consumer" json:"consumer"`
	Mode             string   `yaml:"mode" json:"mode"`
	DeliverTo        string   `yaml:"deliver_subject,omitempty" json:"deliver_subject,omitempty"`
	Skip             bool     `yaml:"skip,omitempty" json:"skip,omitempty"`
	MaxInflight      int      `yaml:"max_inflight" json:"max_inflight"`
	AckWait          Duration `yaml:"ack_wait" json:"ack_wait"`
	LastSent         uint64   `yaml:"last_sent" json:"last_sent"`
	Pending          int      `yaml:"pending_count" json:"pending_count"`
	Online           bool     `yaml:"online,omitempty" json:"online,omitempty"`
	// StartSeq is the first sequence the consumer delivers: exact when
	// Position is exact, an upper bound until probed otherwise.
	StartSeq uint64            `yaml:"start_seq" json:"start_seq"`
	Position jsformat.Position `yaml:"position" json:"position"`
}

// NonDurable is a subscription that will not be migrated.
type NonDurable struct {
	Channel  string `yaml:"channel" json:"channel"`
	ClientID string `yaml:"client_id" json:"client_id"`
	Queue    string `yaml:"queue_group,omitempty" json:"queue_group,omitempty"`
}

// Severity of a finding.
const (
	Blocker = "blocker"
	Warning = "warning"
	Info    = "info"
)

// Finding is something the operator must know before migrating.
type Finding struct {
	Severity string `yaml:"severity" json:"severity"`
	Object   string `yaml:"object" json:"object"`
	Message  string `yaml:"message" json:"message"`
}

// Totals summarise the plan for reports.
type Totals struct {
	Channels    int    `json:"channels"`
	Skipped     int    `json:"skipped"`
	Msgs        uint64 `json:"msgs"`
	Bytes       uint64 `json:"bytes"`
	Durables    int    `json:"durables"`
	NonDurables int    `json:"non_durables"`
	Blockers    int    `json:"blockers"`
	Warnings    int    `json:"warnings"`
}

// Blockers returns the blocking findings.
func (p *Plan) Blockers() []Finding {
	var out []Finding
	for _, f := range p.Findings {
		if f.Severity == Blocker {
			out = append(out, f)
		}
	}
	return out
}

// Active returns the channels that will be migrated.
func (p *Plan) Active() []*Channel {
	var out []*Channel
	for i := range p.Channels {
		if !p.Channels[i].Skip {
			out = append(out, &p.Channels[i])
		}
	}
	return out
}

// Channel finds a planned channel by name.
func (p *Plan) Channel(name string) *Channel {
	for i := range p.Channels {
		if p.Channels[i].Name == name {
			return &p.Channels[i]
		}
	}
	return nil
}

// ComputeTotals refreshes Totals from the channels and findings.
func (p *Plan) ComputeTotals() {
	t := Totals{NonDurables: len(p.NonDurables)}
	for _, c := range p.Channels {
		if c.Skip {
			t.Skipped++
			continue
		}
		t.Channels++
		t.Msgs += c.Msgs
		t.Bytes += c.Bytes
		for _, d := range c.Durables {
			if !d.Skip {
				t.Durables++
			}
		}
	}
	for _, f := range p.Findings {
		switch f.Severity {
		case Blocker:
			t.Blockers++
		case Warning:
			t.Warnings++
		}
	}
	p.Totals = t
}

// Duration is a time.Duration written as "1h30m" in YAML and JSON, so the
// plan stays readable and editable.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string {
	if d == 0 {
		return "0s"
	}
	return time.Duration(d).String()
}

// MarshalYAML writes the duration as text.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads "90s", "1h" or a plain number of seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}

// MarshalJSON writes the duration as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads the text form.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func parseDuration(s string) (Duration, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		var secs int64
		if _, serr := fmt.Sscanf(s, "%d", &secs); serr == nil && fmt.Sprint(secs) == s {
			return Duration(time.Duration(secs) * time.Second), nil
		}
		return 0, fmt.Errorf("invalid duration %q (use e.g. 30s, 5m, 24h)", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return Duration(v), nil
}

// SourceChannels presents the plan's channels and durables the way a
// source lists them: all a server without monitoring is known to hold.
func (p *Plan) SourceChannels() []source.Channel {
	out := make([]source.Channel, 0, len(p.Channels))
	for _, c := range p.Channels {
		sc := source.Channel{Name: c.Name, FirstSeq: c.FirstSeq, LastSeq: c.LastSeq, Msgs: c.Msgs, Bytes: c.Bytes}
		for _, d := range c.Durables {
			sc.Durables = append(sc.Durables, source.Durable{
				DurableID: d.DurableID, Members: d.Members, Online: d.Online,
				MaxInflight: d.MaxInflight, AckWait: d.AckWait.D(), LastSent: d.LastSent, PendingCount: d.Pending,
			})
		}
		out = append(out, sc)
	}
	return out
}
