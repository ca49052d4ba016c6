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

// Validate checks what migrate relies on. name prefixes messages
// (file:line when the plan was loaded from a file).
func (p *Plan) Validate(name string) error {
	var errs []string
	at := func(key string) string {
		if l, ok := p.lines[key]; ok {
			return fmt.Sprintf("%s:%d", name, l)
		}
		return name
	}
	bad := func(key, format string, args ...any) {
		errs = append(errs, at(key)+": "+fmt.Sprintf(format, args...))
	}
	if p.Version != FormatVersion {
		bad("", "plan version %d is not supported (this build reads version %d): re-create it with `stanmigrate plan`", p.Version, FormatVersion)
	}
	if p.Source.ClusterID == "" {
		bad("", "source.cluster_id is empty: set it to the STAN cluster id")
	}
	switch p.Headers {
	case "":
		p.Headers = jsformat.HeadersFull
	case jsformat.HeadersFull, jsformat.HeadersMinimal:
	default:
		bad("", "headers %q: use %q or %q", p.Headers, jsformat.HeadersFull, jsformat.HeadersMinimal)
	}
	seenChan := map[string]bool{}
	streams := map[string]string{}
	for i := range p.Channels {
		c := &p.Channels[i]
		key := fmt.Sprintf("channels[%d]", i)
		if c.Name == "" {
			bad(key, "channel name is empty")
			continue
		}
		if strings.ContainsAny(c.Name, "*> \t") {
			bad(key, "channel %q: a channel name cannot contain wildcards or spaces", c.Name)
		}
		if seenChan[c.Name] {
			bad(key, "channel %q is listed twice: keep one entry", c.Name)
		}
		seenChan[c.Name] = true
		if c.Stream == "" {
			c.Stream = naming.StreamName(c.Name)
		}
		if naming.Legal(c.Stream) != c.Stream {
			bad(key, "channel %q: stream name %q is not a legal JetStream name (no '.', '*', '>', spaces, '/', '\\', at most %d characters): try %q",
				c.Name, c.Stream, naming.MaxNameLen, naming.Legal(c.Stream))
		}
		if c.Replicas == 0 {
			c.Replicas = 1
		}
		if c.Replicas < 1 || c.Replicas > 5 {
			bad(key, "channel %q: replicas %d: use 1 to 5", c.Name, c.Replicas)
		}
		switch c.Storage {
		case "":
			c.Storage = "file"
		case "file", "memory":
		default:
			bad(key, "channel %q: storage %q: use file or memory", c.Name, c.Storage)
		}
		if c.FirstSeq == 0 && c.LastSeq == 0 {
			c.FirstSeq = 1
		}
		if c.FirstSeq > c.LastSeq+1 {
			bad(key, "channel %q: first_seq %d is beyond last_seq %d + 1", c.Name, c.FirstSeq, c.LastSeq)
		}
		if c.Limits.MaxMsgs < 0 || c.Limits.MaxBytes < 0 || c.Limits.MaxConsumers < 0 {
			bad(key, "channel %q: limits cannot be negative (0 means unlimited)", c.Name)
		}
		if !c.Skip {
			fold := strings.ToLower(c.Stream)
			if other, ok := streams[fold]; ok {
				bad(key, "channel %q: stream name %q collides with the stream of channel %q (JetStream names are compared without case here): rename one", c.Name, c.Stream, other)
			} else {
				streams[fold] = c.Name
			}
		}
		consumers := map[string]bool{}
		for j := range c.Durables {
			d := &c.Durables[j]
			dkey := fmt.Sprintf("%s.durables[%d]", key, j)
			if d.Durable == "" {
				bad(dkey, "channel %q: a durable entry has no durable name", c.Name)
				continue
			}
			if d.QueueGroup == "" && d.ClientID == "" {
				bad(dkey, "%s: client_id is empty", d.Describe(c.Name))
			}
			if d.Consumer == "" {
				d.Consumer = naming.ConsumerName(d.ClientID, d.Durable, d.QueueGroup)
			}
			if naming.Legal(d.Consumer) != d.Consumer {
				bad(dkey, "%s: consumer name %q is not legal: try %q", d.Describe(c.Name), d.Consumer, naming.Legal(d.Consumer))
			}
			if !d.Skip {
				if consumers[strings.ToLower(d.Consumer)] {
					bad(dkey, "%s: consumer name %q is used twice on stream %q: rename one", d.Describe(c.Name), d.Consumer, c.Stream)
				}
				consumers[strings.ToLower(d.Consumer)] = true
			}
			switch d.Mode {
			case "":
				d.Mode = ModePull
			case ModePull:
			case ModePush:
				if d.DeliverTo == "" {
					bad(dkey, "%s: push mode needs deliver_subject", d.Describe(c.Name))
				}
			default:
				bad(dkey, "%s: mode %q: use pull or push", d.Describe(c.Name), d.Mode)
			}
			if d.MaxInflight <= 0 {
				bad(dkey, "%s: max_inflight must be positive", d.Describe(c.Name))
			}
			if d.AckWait <= 0 {
				bad(dkey, "%s: ack_wait must be positive", d.Describe(c.Name))
			}
			switch d.Position {
			case jsformat.Exact, jsformat.Probe:
			case "":
				if d.Pending > 0 {
					d.Position = jsformat.Probe
				} else {
					d.Position = jsformat.Exact
				}
			default:
				bad(dkey, "%s: position %q: use exact or probe", d.Describe(c.Name), d.Position)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s: %w", strings.Join(errs, "\n"), ErrInvalid)
	}
	return nil
}
