package plan

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stanmigrate/stanmigrate/internal/atomicfile"
	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/naming"
	"github.com/stanmigrate/stanmigrate/internal/yamlnode"
)

// ErrInvalid marks a plan file that cannot be used as written.
var ErrInvalid = errors.New("invalid plan")

// Save writes the plan as YAML, atomically, readable only by its owner.
func Save(path string, p *Plan) error {
	b, err := Marshal(p, path)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b)
}

// Marshal is the plan as Save writes it; path is the file it will be in.
func Marshal(p *Plan, path string) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# stanmigrate plan: edit stream/consumer names, replicas, storage, limits,\n")
	buf.WriteString("# mode (pull|push), or set skip: true; then run `stanmigrate migrate --plan " + path + "`.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(p); err != nil {
		return nil, fmt.Errorf("encode plan: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode plan: %w", err)
	}
	return buf.Bytes(), nil
}

// MaxReplicas is the most replicas any channel's stream asks for (at
// least 1): the run's state deserves the same protection.
func (p *Plan) MaxReplicas() int {
	n := 1
	for _, c := range p.Channels {
		n = max(n, c.Replicas)
	}
	return n
}

var lineRe = regexp.MustCompile(`line (\d+)`)

// Load reads and validates a plan file. Errors carry file:line.
func Load(path string) (*Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan %s: %v: check the --plan path: %w", path, err, ErrInvalid)
	}
	return Parse(path, data)
}

// Parse decodes and validates plan YAML; name is used in messages.
func Parse(name string, data []byte) (*Plan, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%s: %w", name, yamlError(name, err))
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err == nil {
		p.lines = lineIndex(&root)
	}
	if err := p.Validate(name); err != nil {
		return nil, err
	}
	p.ComputeTotals()
	return &p, nil
}

// yamlError rewrites yaml.v3's "yaml: line 7: ..." into "file:7: ...".
func yamlError(name string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
	if m := lineRe.FindStringSubmatchIndex(msg); m != nil {
		line := msg[m[2]:m[3]]
		rest := strings.TrimLeft(msg[m[1]:], ": ")
		return fmt.Errorf("line %s: %s: fix the plan file (or re-create it with `stanmigrate plan -o %s`): %w", line, rest, name, ErrInvalid)
	}
	return fmt.Errorf("%s: fix the plan file: %w", msg, ErrInvalid)
}

// lineIndex maps "channels[i]" and "channels[i].durables[j]" to lines.
func lineIndex(root *yaml.Node) map[string]int {
	out := map[string]int{}
	if root == nil || len(root.Content) == 0 {
		return out
	}
	doc := root.Content[0]
	chans := yamlnode.Value(doc, "channels")
	if chans == nil {
		return out
	}
	for i, c := range chans.Content {
		key := fmt.Sprintf("channels[%d]", i)
		out[key] = c.Line
		if ds := yamlnode.Value(c, "durables"); ds != nil {
			for j, d := range ds.Content {
				out[fmt.Sprintf("%s.durables[%d]", key, j)] = d.Line
			}
		}
	}
	return out
}

// Validate fills in what a hand-written plan may leave out (fillOmitted),
// then checks what migrate relies on. name prefixes messages (file:line
// when the plan was loaded from a file).
func (p *Plan) Validate(name string) error {
	p.fillOmitted()
	v := &validation{name: name, lines: p.lines}
	v.checkHeader(p)
	seen := map[string]bool{}
	streams := map[string]string{} // stream name folded to lower case -> channel
	for i := range p.Channels {
		c := &p.Channels[i]
		key := fmt.Sprintf("channels[%d]", i)
		if c.Name == "" {
			v.bad(key, "channel name is empty")
			continue
		}
		if seen[c.Name] {
			v.bad(key, "channel %q is listed twice: keep one entry", c.Name)
		}
		seen[c.Name] = true
		v.checkChannel(key, c)
		if !c.Skip {
			fold := strings.ToLower(c.Stream)
			if other, ok := streams[fold]; ok {
				v.bad(key, "channel %q: stream name %q collides with the stream of channel %q (JetStream names are compared without case here): rename one", c.Name, c.Stream, other)
			} else {
				streams[fold] = c.Name
			}
		}
		v.checkDurables(key, c)
	}
	if len(v.errs) > 0 {
		return fmt.Errorf("%s: %w", strings.Join(v.errs, "\n"), ErrInvalid)
	}
	return nil
}

// fillOmitted gives every field a hand-written plan may leave empty its
// default: the header set, each channel's stream name, replicas, storage
// and first sequence, each durable's consumer name, mode and position.
func (p *Plan) fillOmitted() {
	if p.Headers == "" {
		p.Headers = DefaultHeaders
	}
	for i := range p.Channels {
		c := &p.Channels[i]
		if c.Name == "" {
			continue
		}
		if c.Stream == "" {
			c.Stream = naming.StreamName(c.Name)
		}
		if c.Replicas == 0 {
			c.Replicas = DefaultReplicas
		}
		if c.Storage == "" {
			c.Storage = DefaultStorage
		}
		if c.FirstSeq == 0 && c.LastSeq == 0 {
			c.FirstSeq = 1
		}
		for j := range c.Durables {
			d := &c.Durables[j]
			if d.Durable == "" {
				continue
			}
			if d.Consumer == "" {
				d.Consumer = naming.ConsumerName(d.ClientID, d.Durable, d.QueueGroup)
			}
			if d.Mode == "" {
				d.Mode = ModePull
			}
			if d.Position == "" {
				// Without pending messages the position is exact from
				// monitoring alone; with them only a probe can tell.
				d.Position = jsformat.Exact
				if d.Pending > 0 {
					d.Position = jsformat.Probe
				}
			}
		}
	}
}

// validation collects a plan's problems, each prefixed with where it is.
type validation struct {
	name  string
	lines map[string]int
	errs  []string
}

func (v *validation) bad(key, format string, args ...any) {
	at := v.name
	if l, ok := v.lines[key]; ok {
		at = fmt.Sprintf("%s:%d", v.name, l)
	}
	v.errs = append(v.errs, at+": "+fmt.Sprintf(format, args...))
}

// checkHeader checks the plan-wide fields.
func (v *validation) checkHeader(p *Plan) {
	if p.Version != FormatVersion {
		v.bad("", "plan version %d is not supported (this build reads version %d): re-create it with `stanmigrate plan`", p.Version, FormatVersion)
	}
	if p.Source.ClusterID == "" {
		v.bad("", "source.cluster_id is empty: set it to the STAN cluster id")
	}
	if p.Headers != jsformat.HeadersFull && p.Headers != jsformat.HeadersMinimal {
		v.bad("", "headers %q: use %q or %q", p.Headers, jsformat.HeadersFull, jsformat.HeadersMinimal)
	}
}

// checkChannel checks one channel's own fields.
func (v *validation) checkChannel(key string, c *Channel) {
	if strings.ContainsAny(c.Name, "*> \t") {
		v.bad(key, "channel %q: a channel name cannot contain wildcards or spaces", c.Name)
	}
	if naming.Legal(c.Stream) != c.Stream {
		v.bad(key, "channel %q: stream name %q is not a legal JetStream name (no '.', '*', '>', spaces, '/', '\\', at most %d characters): try %q",
			c.Name, c.Stream, naming.MaxNameLen, naming.Legal(c.Stream))
	}
	if c.Replicas < MinReplicas || c.Replicas > MaxReplicas {
		v.bad(key, "channel %q: replicas %d: use %d to %d", c.Name, c.Replicas, MinReplicas, MaxReplicas)
	}
	if c.Storage != "file" && c.Storage != "memory" {
		v.bad(key, "channel %q: storage %q: use file or memory", c.Name, c.Storage)
	}
	if c.FirstSeq > c.LastSeq+1 {
		v.bad(key, "channel %q: first_seq %d is beyond last_seq %d + 1", c.Name, c.FirstSeq, c.LastSeq)
	}
	if c.Limits.MaxMsgs < 0 || c.Limits.MaxBytes < 0 || c.Limits.MaxConsumers < 0 {
		v.bad(key, "channel %q: limits cannot be negative (0 means unlimited)", c.Name)
	}
	if msg := validExpiry(c); msg != "" {
		v.bad(key, "%s", msg)
	}
}

// checkDurables checks a channel's durables, and that their consumer
// names are unique on its stream.
func (v *validation) checkDurables(key string, c *Channel) {
	consumers := map[string]bool{}
	for j := range c.Durables {
		d := &c.Durables[j]
		dkey := fmt.Sprintf("%s.durables[%d]", key, j)
		if d.Durable == "" {
			v.bad(dkey, "channel %q: a durable entry has no durable name", c.Name)
			continue
		}
		v.checkDurable(dkey, c.Name, d)
		if !d.Skip {
			if consumers[strings.ToLower(d.Consumer)] {
				v.bad(dkey, "%s: consumer name %q is used twice on stream %q: rename one", d.Describe(c.Name), d.Consumer, c.Stream)
			}
			consumers[strings.ToLower(d.Consumer)] = true
		}
	}
}

// checkDurable checks one durable's own fields.
func (v *validation) checkDurable(dkey, channel string, d *Durable) {
	what := d.Describe(channel)
	if d.QueueGroup == "" && d.ClientID == "" {
		v.bad(dkey, "%s: client_id is empty", what)
	}
	if naming.Legal(d.Consumer) != d.Consumer {
		v.bad(dkey, "%s: consumer name %q is not legal: try %q", what, d.Consumer, naming.Legal(d.Consumer))
	}
	switch d.Mode {
	case ModePull:
	case ModePush:
		if d.DeliverTo == "" {
			v.bad(dkey, "%s: push mode needs deliver_subject", what)
		}
	default:
		v.bad(dkey, "%s: mode %q: use pull or push", what, d.Mode)
	}
	if d.MaxInflight <= 0 {
		v.bad(dkey, "%s: max_inflight must be positive", what)
	}
	if d.AckWait <= 0 {
		v.bad(dkey, "%s: ack_wait must be positive", what)
	}
	if d.Position != jsformat.Exact && d.Position != jsformat.Probe {
		v.bad(dkey, "%s: position %q: use exact or probe", what, d.Position)
	}
}
