package stanmigrate_test

// These tests keep docker-compose.yml honest: the connection line that
// README.md tells users to paste must reach the servers the compose file
// starts, STAN must run the file store with the cluster id the line names,
// and the JetStream server must have JetStream on a persistent store and a
// version without the first-sequence data-loss bug. They only parse files;
// no Docker engine is needed.

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Names of the two services the README line points at.
const (
	stanService = "nats-streaming"
	natsService = "nats"
)

// readmeVars are the variables the README connection line must set.
var readmeVars = []string{"STAN_URL", "STAN_CLUSTER", "STAN_MONITOR", "NATS_URL"}

// contractLine is the connection line README.md carries (see the README's
// docker compose section); the error messages quote it.
const contractLine = "STAN_URL=nats://127.0.0.1:4222 STAN_CLUSTER=test-cluster STAN_MONITOR=http://127.0.0.1:8222 NATS_URL=nats://127.0.0.1:4223"

// ---------------------------------------------------------------------------
// Compose model: the subset of the compose specification these checks need,
// normalized from the short and long syntaxes.

type composeProject struct {
	Services map[string]*composeService
	Volumes  map[string]bool // top-level named volumes
}

type composeService struct {
	Name          string
	Image         string
	HasEntrypoint bool
	Args          []string // command, one element per argument
	Ports         []portMapping
	Mounts        []mount
}

type portMapping struct {
	HostIP    string // "" = all interfaces
	Published int    // host port; 0 = not published (or random)
	Target    int    // container port
	Protocol  string // "tcp" or "udp"
}

func (p portMapping) String() string {
	host := strconv.Itoa(p.Published)
	if p.HostIP != "" {
		host = net.JoinHostPort(p.HostIP, host)
	}
	return fmt.Sprintf("%s->%d/%s", host, p.Target, p.Protocol)
}

type mount struct {
	Type   string // "volume", "bind", "tmpfs", ...
	Source string
	Target string
}

type rawCompose struct {
	Services map[string]rawService `yaml:"services"`
	Volumes  map[string]any        `yaml:"volumes"`
}

type rawService struct {
	Image      string      `yaml:"image"`
	Entrypoint yaml.Node   `yaml:"entrypoint"`
	Command    yaml.Node   `yaml:"command"`
	Ports      []yaml.Node `yaml:"ports"`
	Volumes    []yaml.Node `yaml:"volumes"`
}

// parseCompose reads a compose file into the normalized model. Syntax it
// does not understand is an error rather than something silently skipped.
func parseCompose(data []byte) (*composeProject, error) {
	var raw rawCompose
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	if len(raw.Services) == 0 {
		return nil, errors.New("no services")
	}
	p := &composeProject{Services: map[string]*composeService{}, Volumes: map[string]bool{}}
	for name := range raw.Volumes {
		p.Volumes[name] = true
	}
	for name, rs := range raw.Services {
		s := &composeService{Name: name, Image: rs.Image, HasEntrypoint: rs.Entrypoint.Kind != 0}
		args, err := parseCommand(&rs.Command)
		if err != nil {
			return nil, fmt.Errorf("service %q: command: %w", name, err)
		}
		s.Args = args
		for i := range rs.Ports {
			pm, err := parsePort(&rs.Ports[i])
			if err != nil {
				return nil, fmt.Errorf("service %q: ports[%d]: %w", name, i, err)
			}
			s.Ports = append(s.Ports, pm)
		}
		for i := range rs.Volumes {
			m, err := parseMount(&rs.Volumes[i])
			if err != nil {
				return nil, fmt.Errorf("service %q: volumes[%d]: %w", name, i, err)
			}
			s.Mounts = append(s.Mounts, m)
		}
		p.Services[name] = s
	}
	return p, nil
}

// parseCommand accepts the list form and a plain string form (split on
// whitespace; quoting is refused — use the list form for that).
func parseCommand(n *yaml.Node) ([]string, error) {
	switch n.Kind {
	case 0:
		return nil, nil
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil, nil
		}
		if strings.ContainsAny(n.Value, `"'\`) {
			return nil, fmt.Errorf("string command with quotes or escapes %q: use the list form", n.Value)
		}
		return strings.Fields(n.Value), nil
	case yaml.SequenceNode:
		args := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: argument is not a scalar", c.Line)
			}
			args = append(args, c.Value)
		}
		return args, nil
	}
	return nil, fmt.Errorf("line %d: neither a string nor a list", n.Line)
}

// parsePort accepts the short syntax ("[IP:][HOST:]CONTAINER[/PROTO]") and
// the long syntax (target, published, host_ip, protocol). Port ranges are
// refused.
func parsePort(n *yaml.Node) (portMapping, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return parseShortPort(n.Value)
	case yaml.MappingNode:
		var long struct {
			Target    string `yaml:"target"`
			Published string `yaml:"published"`
			HostIP    string `yaml:"host_ip"`
			Protocol  string `yaml:"protocol"`
		}
		if err := n.Decode(&long); err != nil {
			return portMapping{}, err
		}
		pm := portMapping{HostIP: long.HostIP, Protocol: strings.ToLower(long.Protocol)}
		if pm.Protocol == "" {
			pm.Protocol = "tcp"
		}
		var err error
		if pm.Target, err = parsePortNumber(long.Target); err != nil {
			return portMapping{}, fmt.Errorf("target: %w", err)
		}
		if long.Published != "" {
			if pm.Published, err = parsePortNumber(long.Published); err != nil {
				return portMapping{}, fmt.Errorf("published: %w", err)
			}
		}
		return pm, nil
	}
	return portMapping{}, fmt.Errorf("line %d: neither a string nor a mapping", n.Line)
}

func parseShortPort(s string) (portMapping, error) {
	pm := portMapping{Protocol: "tcp"}
	spec := s
	if i := strings.LastIndex(spec, "/"); i >= 0 {
		pm.Protocol = strings.ToLower(spec[i+1:])
		spec = spec[:i]
	}
	if strings.HasPrefix(spec, "[") { // [IPv6]:HOST:CONTAINER
		end := strings.Index(spec, "]:")
		if end < 0 {
			return portMapping{}, fmt.Errorf("%q: bad IPv6 host address", s)
		}
		pm.HostIP = spec[1:end]
		spec = spec[end+2:]
		if strings.Count(spec, ":") != 1 {
			return portMapping{}, fmt.Errorf("%q: want [IP]:HOST:CONTAINER", s)
		}
	}
	parts := strings.Split(spec, ":")
	var host, target string
	switch len(parts) {
	case 1:
		target = parts[0]
	case 2:
		host, target = parts[0], parts[1]
	case 3:
		if pm.HostIP != "" {
			return portMapping{}, fmt.Errorf("%q: too many fields", s)
		}
		pm.HostIP, host, target = parts[0], parts[1], parts[2]
	default:
		return portMapping{}, fmt.Errorf("%q: too many fields", s)
	}
	var err error
	if pm.Target, err = parsePortNumber(target); err != nil {
		return portMapping{}, fmt.Errorf("%q: container port: %w", s, err)
	}
	if host != "" {
		if pm.Published, err = parsePortNumber(host); err != nil {
			return portMapping{}, fmt.Errorf("%q: host port: %w", s, err)
		}
	}
	return pm, nil
}

func parsePortNumber(s string) (int, error) {
	if strings.Contains(s, "-") {
		return 0, fmt.Errorf("port range %q not supported by this check", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return n, nil
}

// parseMount accepts the short syntax ("SOURCE:TARGET[:MODE]" or "TARGET")
// and the long syntax (type, source, target).
func parseMount(n *yaml.Node) (mount, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		parts := strings.Split(n.Value, ":")
		switch len(parts) {
		case 1: // anonymous volume
			return mount{Type: "volume", Target: parts[0]}, nil
		case 2, 3:
			m := mount{Type: "volume", Source: parts[0], Target: parts[1]}
			if strings.HasPrefix(m.Source, "/") || strings.HasPrefix(m.Source, ".") || strings.HasPrefix(m.Source, "~") {
				m.Type = "bind"
			}
			return m, nil
		}
		return mount{}, fmt.Errorf("%q: too many fields", n.Value)
	case yaml.MappingNode:
		var m mount
		var long struct {
			Type   string `yaml:"type"`
			Source string `yaml:"source"`
			Target string `yaml:"target"`
		}
		if err := n.Decode(&long); err != nil {
			return mount{}, err
		}
		m = mount{Type: long.Type, Source: long.Source, Target: long.Target}
		if m.Target == "" {
			return mount{}, fmt.Errorf("line %d: no target", n.Line)
		}
		return m, nil
	}
	return mount{}, fmt.Errorf("line %d: neither a string nor a mapping", n.Line)
}

// ---------------------------------------------------------------------------
// Server flags. Both servers parse flags with Go's flag package, so "-x" and
// "--x" are the same flag and a value may follow as the next argument or
// after "=".

// flagValue returns the value of the first of names present in args.
func flagValue(args []string, names ...string) (string, bool) {
	for i, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		key := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		val, hasVal := "", false
		if k, v, ok := strings.Cut(key, "="); ok {
			key, val, hasVal = k, v, true
		}
		for _, name := range names {
			if key != name {
				continue
			}
			if hasVal {
				return val, true
			}
			if i+1 < len(args) {
				return args[i+1], true
			}
			return "", true
		}
	}
	return "", false
}

// boolFlag reports whether a boolean flag (any of names) is set to true.
func boolFlag(args []string, names ...string) bool {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		key := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		k, v, hasVal := strings.Cut(key, "=")
		for _, name := range names {
			if k == name {
				if !hasVal {
					return true
				}
				b, err := strconv.ParseBool(v)
				return err == nil && b
			}
		}
	}
	return false
}

// portFlag returns the port a server flag sets, or def when absent.
func portFlag(s *composeService, def int, names ...string) (int, error) {
	v, ok := flagValue(s.Args, names...)
	if !ok {
		return def, nil
	}
	n, err := parsePortNumber(v)
	if err != nil {
		return 0, fmt.Errorf("service %q: -%s: %w", s.Name, names[0], err)
	}
	return n, nil
}

// ---------------------------------------------------------------------------
// README connection line.

var envAssign = regexp.MustCompile(`^([A-Z][A-Z0-9_]*)=(.*)$`)

// parseConnectionLine finds the first line of the README that sets both
// STAN_URL and NATS_URL and returns its variables, with the line number.
func parseConnectionLine(readme []byte) (map[string]string, int, error) {
	for i, line := range strings.Split(string(readme), "\n") {
		if !strings.Contains(line, "STAN_URL=") || !strings.Contains(line, "NATS_URL=") {
			continue
		}
		env := map[string]string{}
		for _, tok := range strings.Fields(line) {
			tok = strings.TrimRight(strings.Trim(tok, "`"), ";")
			m := envAssign.FindStringSubmatch(tok)
			if m == nil {
				continue
			}
			env[m[1]] = strings.Trim(m[2], `"'`)
		}
		var missing []string
		for _, k := range readmeVars {
			if env[k] == "" {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			return nil, i + 1, fmt.Errorf("line %d sets no %s; want: %s", i+1, strings.Join(missing, ", "), contractLine)
		}
		return env, i + 1, nil
	}
	return nil, 0, fmt.Errorf("no line sets both STAN_URL= and NATS_URL=; add the connection line for docker-compose.yml:\n\t%s", contractLine)
}

// endpoint is a URL from the README reduced to what the compose file must
// serve.
type endpoint struct {
	Var  string // README variable
	Raw  string
	Host string
	Port int
}

func parseEndpoint(name, raw, scheme string, defPort int) (endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return endpoint{}, fmt.Errorf("README %s=%s: %w", name, raw, err)
	}
	if u.Scheme != scheme {
		return endpoint{}, fmt.Errorf("README %s=%s: scheme %q, want %q", name, raw, u.Scheme, scheme)
	}
	e := endpoint{Var: name, Raw: raw, Host: u.Hostname(), Port: defPort}
	if p := u.Port(); p != "" {
		if e.Port, err = parsePortNumber(p); err != nil {
			return endpoint{}, fmt.Errorf("README %s=%s: %w", name, raw, err)
		}
	}
	return e, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ---------------------------------------------------------------------------
// Checks. Each returns every problem it finds; nil means the file is right.

// checkCompose checks the compose file against the README variables and the
// STAN server version the embedded tests use.
func checkCompose(p *composeProject, env map[string]string, stanVersion string) []error {
	var errs []error
	stan, nats := p.Services[stanService], p.Services[natsService]
	if stan == nil {
		errs = append(errs, fmt.Errorf("no service %q (the STAN server STAN_URL points at)", stanService))
	}
	if nats == nil {
		errs = append(errs, fmt.Errorf("no service %q (the JetStream server NATS_URL points at)", natsService))
	}
	if stan != nil {
		errs = append(errs, checkSTAN(p, stan, env, stanVersion)...)
	}
	if nats != nil {
		errs = append(errs, checkNATS(p, nats, env)...)
	}
	return append(errs, checkHostPortsUnique(p)...)
}

func checkSTAN(p *composeProject, s *composeService, env map[string]string, stanVersion string) []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(checkImage(s, "nats-streaming", func(v []int, tag string) error {
		if tag != stanVersion && !strings.HasPrefix(tag, stanVersion+"-") {
			return fmt.Errorf("tag %q, want %s (the nats-streaming-server version in go.mod, which the embedded tests run)", tag, stanVersion)
		}
		return nil
	}))
	if s.HasEntrypoint {
		add(fmt.Errorf("service %q: entrypoint is overridden; these checks read the command as nats-streaming-server flags", s.Name))
	}
	if len(s.Args) == 0 {
		add(fmt.Errorf("service %q: no command; want -cid, -store file, -dir and -m flags", s.Name))
	}

	// Cluster id.
	if cid, ok := flagValue(s.Args, "cid", "cluster_id"); !ok {
		add(fmt.Errorf("service %q: no -cid/--cluster_id flag; want -cid %s as README's STAN_CLUSTER says", s.Name, env["STAN_CLUSTER"]))
	} else if cid != env["STAN_CLUSTER"] {
		add(fmt.Errorf("service %q: -cid %q, but README's STAN_CLUSTER=%s", s.Name, cid, env["STAN_CLUSTER"]))
	}

	// File store on a named volume.
	if st, ok := flagValue(s.Args, "st", "store"); !ok || !strings.EqualFold(st, "file") {
		got := "no -store flag (memory store)"
		if ok {
			got = fmt.Sprintf("-store %q", st)
		}
		add(fmt.Errorf("service %q: %s; want the file store (-store file) so data survives restarts", s.Name, got))
	}
	if dir, ok := flagValue(s.Args, "dir"); !ok || dir == "" {
		add(fmt.Errorf("service %q: no -dir flag for the file store", s.Name))
	} else {
		add(checkOnNamedVolume(p, s, "-dir", dir))
	}

	// Client port and monitoring port.
	clientPort, err := portFlag(s, 4222, "p", "port")
	add(err)
	if stanURL, err := parseEndpoint("STAN_URL", env["STAN_URL"], "nats", 4222); err != nil {
		add(err)
	} else if clientPort != 0 {
		add(checkPublished(s, stanURL, clientPort))
	}
	if _, ok := flagValue(s.Args, "m", "http_port"); !ok {
		add(fmt.Errorf("service %q: no -m/--http_port flag; plan reads the STAN monitoring endpoint (STAN_MONITOR)", s.Name))
	} else if monPort, err := portFlag(s, 0, "m", "http_port"); err != nil {
		add(err)
	} else if mon, err := parseEndpoint("STAN_MONITOR", env["STAN_MONITOR"], "http", 80); err != nil {
		add(err)
	} else {
		add(checkPublished(s, mon, monPort))
	}
	return errs
}

func checkNATS(p *composeProject, s *composeService, env map[string]string) []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(checkImage(s, "nats", func(v []int, tag string) error {
		if len(v) < 2 || v[0] != 2 || v[1] < 12 {
			return fmt.Errorf("tag %q, want 2.12 or newer (2.10.0-2.10.27 and 2.11.0-2.11.1 lose file-stream messages on restart when a first sequence is set; the migrator's behaviour is tested against 2.12+)", tag)
		}
		return nil
	}))
	if s.HasEntrypoint {
		add(fmt.Errorf("service %q: entrypoint is overridden; these checks read the command as nats-server flags", s.Name))
	}
	if !boolFlag(s.Args, "js", "jetstream") {
		add(fmt.Errorf("service %q: JetStream is not enabled; want -js in its command", s.Name))
	}
	if sd, ok := flagValue(s.Args, "sd", "store_dir"); !ok || sd == "" {
		add(fmt.Errorf("service %q: no -sd/--store_dir flag; JetStream would keep its file store in a temporary directory inside the container", s.Name))
	} else {
		add(checkOnNamedVolume(p, s, "-sd", sd))
	}
	clientPort, err := portFlag(s, 4222, "p", "port")
	add(err)
	if natsURL, err := parseEndpoint("NATS_URL", env["NATS_URL"], "nats", 4222); err != nil {
		add(err)
	} else if clientPort != 0 {
		add(checkPublished(s, natsURL, clientPort))
	}
	return errs
}

// checkImage checks the image name and hands its tag's numeric version to
// checkVersion.
func checkImage(s *composeService, name string, checkVersion func(v []int, tag string) error) error {
	ref := s.Image
	if ref == "" {
		return fmt.Errorf("service %q: no image; want %s:<version>", s.Name, name)
	}
	if strings.Contains(ref, "@") {
		return fmt.Errorf("service %q: image %q is pinned by digest; use a version tag so the version can be checked", s.Name, ref)
	}
	repo, tag := ref, ""
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo, tag = ref[:i], ref[i+1:]
	}
	repo = strings.TrimPrefix(strings.TrimPrefix(repo, "docker.io/"), "library/")
	if repo != name {
		return fmt.Errorf("service %q: image %q, want the official %s image", s.Name, ref, name)
	}
	m := regexp.MustCompile(`^v?(\d+(?:\.\d+)*)(?:-.*)?$`).FindStringSubmatch(tag)
	if m == nil {
		return fmt.Errorf("service %q: image %q has no version tag (got %q); pin a version", s.Name, ref, tag)
	}
	var v []int
	for _, part := range strings.Split(m[1], ".") {
		n, _ := strconv.Atoi(part)
		v = append(v, n)
	}
	if err := checkVersion(v, tag); err != nil {
		return fmt.Errorf("service %q: image %s: %w", s.Name, ref, err)
	}
	return nil
}

// checkOnNamedVolume checks that dir (a store directory inside the
// container) lies on a named volume declared at the top level.
func checkOnNamedVolume(p *composeProject, s *composeService, flag, dir string) error {
	dir = path.Clean(dir)
	for _, m := range s.Mounts {
		target := path.Clean(m.Target)
		if dir != target && !strings.HasPrefix(dir, strings.TrimSuffix(target, "/")+"/") {
			continue
		}
		switch {
		case m.Type != "volume":
			return fmt.Errorf("service %q: %s %s is on a %s mount (%s), want a named volume", s.Name, flag, dir, m.Type, m.Source)
		case m.Source == "":
			return fmt.Errorf("service %q: %s %s is on an anonymous volume, want a named volume", s.Name, flag, dir)
		case !p.Volumes[m.Source]:
			return fmt.Errorf("service %q: volume %q (for %s %s) is not declared under the top-level volumes:", s.Name, m.Source, flag, dir)
		}
		return nil
	}
	return fmt.Errorf("service %q: %s %s is not on a named volume; its data would be lost with the container (mount one, e.g. data:%s)", s.Name, flag, dir, dir)
}

// checkPublished checks that the README endpoint reaches containerPort of s.
func checkPublished(s *composeService, e endpoint, containerPort int) error {
	var have []string
	for _, pm := range s.Ports {
		have = append(have, pm.String())
		if pm.Published != e.Port || pm.Target != containerPort || pm.Protocol != "tcp" {
			continue
		}
		if pm.HostIP != "" && !net.ParseIP(pm.HostIP).IsUnspecified() {
			if isLoopback(pm.HostIP) && !isLoopback(e.Host) || !isLoopback(pm.HostIP) && pm.HostIP != e.Host {
				return fmt.Errorf("README %s=%s: service %q publishes port %d on %s only", e.Var, e.Raw, s.Name, e.Port, pm.HostIP)
			}
		}
		return nil
	}
	if len(have) == 0 {
		have = []string{"nothing"}
	}
	return fmt.Errorf("README %s=%s: service %q does not publish host port %d to container port %d (it publishes %s)",
		e.Var, e.Raw, s.Name, e.Port, containerPort, strings.Join(have, ", "))
}

// checkHostPortsUnique checks that no host port is published twice.
func checkHostPortsUnique(p *composeProject) []error {
	var errs []error
	seen := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		for _, pm := range p.Services[name].Ports {
			if pm.Published == 0 {
				continue
			}
			key := fmt.Sprintf("%d/%s", pm.Published, pm.Protocol)
			if other, ok := seen[key]; ok {
				errs = append(errs, fmt.Errorf("host port %s is published by both %q and %q", key, other, name))
				continue
			}
			seen[key] = name
		}
	}
	return errs
}

// stanServerVersion returns the nats-streaming-server version go.mod requires.
func stanServerVersion(goMod []byte) (string, error) {
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?github\.com/nats-io/nats-streaming-server\s+v(\S+)`).FindSubmatch(goMod)
	if m == nil {
		return "", errors.New("go.mod does not require github.com/nats-io/nats-streaming-server")
	}
	return string(m[1]), nil
}

// checkFiles runs every check on the files at the given paths.
func checkFiles(composePath, readmePath, goModPath string) []error {
	readme, err := os.ReadFile(readmePath)
	if errors.Is(err, os.ErrNotExist) {
		return []error{fmt.Errorf("%s does not exist; it must carry the connection line for docker-compose.yml:\n\t%s", readmePath, contractLine)}
	}
	if err != nil {
		return []error{err}
	}
	env, line, err := parseConnectionLine(readme)
	if err != nil {
		return []error{fmt.Errorf("%s: %w", readmePath, err)}
	}
	data, err := os.ReadFile(composePath)
	if err != nil {
		return []error{err}
	}
	p, err := parseCompose(data)
	if err != nil {
		return []error{fmt.Errorf("%s: %w", composePath, err)}
	}
	goMod, err := os.ReadFile(goModPath)
	if err != nil {
		return []error{err}
	}
	stanVersion, err := stanServerVersion(goMod)
	if err != nil {
		return []error{fmt.Errorf("%s: %w", goModPath, err)}
	}
	errs := checkCompose(p, env, stanVersion)
	for i, e := range errs {
		errs[i] = fmt.Errorf("%s vs %s:%d: %w", composePath, readmePath, line, e)
	}
	return errs
}

// ---------------------------------------------------------------------------
// Tests.

// TestComposeMatchesREADME is the real check: docker-compose.yml against the
// connection line in README.md.
func TestComposeMatchesREADME(t *testing.T) {
	for _, err := range checkFiles("docker-compose.yml", "README.md", "go.mod") {
		t.Error(err)
	}
}

// TestComposeMatchesContractLine checks docker-compose.yml against the
// contract line itself, whatever state README.md is in.
func TestComposeMatchesContractLine(t *testing.T) {
	readme := t.TempDir() + "/README.md"
	content := "# stanmigrate\n\n```sh\ndocker compose up -d\n" + contractLine + " stanmigrate plan\n```\n"
	if err := os.WriteFile(readme, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, err := range checkFiles("docker-compose.yml", readme, "go.mod") {
		t.Error(err)
	}
}

func TestCheckFilesReadmeProblems(t *testing.T) {
	dir := t.TempDir()
	if errs := checkFiles("docker-compose.yml", dir+"/README.md", "go.mod"); len(errs) != 1 || !strings.Contains(errs[0].Error(), "does not exist") {
		t.Errorf("missing README: got %v", errs)
	}
	noLine := dir + "/README.md"
	if err := os.WriteFile(noLine, []byte("# stanmigrate\n\nSTAN_URL=nats://127.0.0.1:4222\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if errs := checkFiles("docker-compose.yml", noLine, "go.mod"); len(errs) != 1 || !strings.Contains(errs[0].Error(), "no line sets both") {
		t.Errorf("README without the line: got %v", errs)
	}
}

func TestParseConnectionLine(t *testing.T) {
	want := map[string]string{
		"STAN_URL":     "nats://127.0.0.1:4222",
		"STAN_CLUSTER": "test-cluster",
		"STAN_MONITOR": "http://127.0.0.1:8222",
		"NATS_URL":     "nats://127.0.0.1:4223",
	}
	tests := []struct {
		name, readme string
		wantErr      string
		wantLine     int
	}{
		{name: "contract line", readme: "# x\n\n" + contractLine + "\n", wantLine: 3},
		{name: "export and command", readme: "$ export " + contractLine + "; stanmigrate plan\n", wantLine: 1},
		{name: "inline code", readme: "Run `" + contractLine + "` then\n", wantLine: 1},
		{name: "quoted values", readme: `STAN_URL="nats://127.0.0.1:4222" STAN_CLUSTER='test-cluster' STAN_MONITOR=http://127.0.0.1:8222 NATS_URL=nats://127.0.0.1:4223`, wantLine: 1},
		{name: "first line wins", readme: contractLine + "\nSTAN_URL=nats://x:1 STAN_CLUSTER=c STAN_MONITOR=http://x NATS_URL=nats://x:2\n", wantLine: 1},
		{name: "no line", readme: "# x\nSTAN_URL=nats://127.0.0.1:4222\nNATS_URL=nats://127.0.0.1:4223\n", wantErr: "no line sets both"},
		{name: "missing cluster", readme: "STAN_URL=nats://127.0.0.1:4222 STAN_MONITOR=http://127.0.0.1:8222 NATS_URL=nats://127.0.0.1:4223\n", wantErr: "sets no STAN_CLUSTER"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, line, err := parseConnectionLine([]byte(tc.readme))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if line != tc.wantLine {
				t.Errorf("line %d, want %d", line, tc.wantLine)
			}
			for k, v := range want {
				if env[k] != v {
					t.Errorf("%s=%q, want %q", k, env[k], v)
				}
			}
		})
	}
}

func TestParseShortPort(t *testing.T) {
	tests := []struct {
		in      string
		want    portMapping
		wantErr bool
	}{
		{in: "4222", want: portMapping{Target: 4222, Protocol: "tcp"}},
		{in: "4223:4222", want: portMapping{Published: 4223, Target: 4222, Protocol: "tcp"}},
		{in: "127.0.0.1:4223:4222", want: portMapping{HostIP: "127.0.0.1", Published: 4223, Target: 4222, Protocol: "tcp"}},
		{in: "127.0.0.1::4222", want: portMapping{HostIP: "127.0.0.1", Target: 4222, Protocol: "tcp"}},
		{in: "[::1]:4223:4222/tcp", want: portMapping{HostIP: "::1", Published: 4223, Target: 4222, Protocol: "tcp"}},
		{in: "4222:4222/udp", want: portMapping{Published: 4222, Target: 4222, Protocol: "udp"}},
		{in: "4222-4223:4222-4223", wantErr: true},
		{in: "a:b", wantErr: true},
		{in: "1:2:3:4", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseShortPort(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("%q: no error, got %+v", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestFlagValue(t *testing.T) {
	args := []string{"-cid", "a", "--store=FILE", "--dir", "/d", "-js", "--jetstream=false", "-m"}
	for _, tc := range []struct {
		names []string
		want  string
		ok    bool
	}{
		{[]string{"cid", "cluster_id"}, "a", true},
		{[]string{"st", "store"}, "FILE", true},
		{[]string{"dir"}, "/d", true},
		{[]string{"m"}, "", true},
		{[]string{"sd"}, "", false},
	} {
		got, ok := flagValue(args, tc.names...)
		if got != tc.want || ok != tc.ok {
			t.Errorf("flagValue(%v) = %q, %v; want %q, %v", tc.names, got, ok, tc.want, tc.ok)
		}
	}
	if !boolFlag(args, "js", "jetstream") {
		t.Error("boolFlag: -js not seen")
	}
	if boolFlag([]string{"--jetstream=false"}, "js", "jetstream") {
		t.Error("boolFlag: --jetstream=false seen as true")
	}
}

// goodCompose passes every check; each case in TestComposeChecksFail breaks
// it in one way.
const goodCompose = `
services:
  nats-streaming:
    image: nats-streaming:0.25.6
    command: ["-cid", "test-cluster", "-store", "file", "-dir", "/data/stan", "-m", "8222"]
    ports:
      - "127.0.0.1:4222:4222"
      - "127.0.0.1:8222:8222"
    volumes:
      - stan-data:/data/stan
  nats:
    image: nats:2.12
    command: ["-js", "-sd", "/data/js", "-m", "8222"]
    ports:
      - "127.0.0.1:4223:4222"
      - "127.0.0.1:8223:8222"
    volumes:
      - js-data:/data/js
volumes:
  stan-data:
  js-data:
`

func contractEnv(t *testing.T) map[string]string {
	t.Helper()
	env, _, err := parseConnectionLine([]byte(contractLine))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// TestComposeChecksPass feeds equivalent spellings of the good file.
func TestComposeChecksPass(t *testing.T) {
	tests := []struct {
		name  string
		edits []string // old, new, old, new, ...
	}{
		{name: "as is"},
		{name: "string command", edits: []string{`["-js", "-sd", "/data/js", "-m", "8222"]`, `-js -sd /data/js -m 8222`}},
		{name: "long flags", edits: []string{`["-cid", "test-cluster", "-store", "file", "-dir", "/data/stan", "-m", "8222"]`,
			`["--cluster_id=test-cluster", "--store", "FILE", "--dir=/data/stan/store", "--http_port", "8222"]`}},
		{name: "jetstream long flags", edits: []string{`["-js", "-sd", "/data/js", "-m", "8222"]`, `["--jetstream", "--store_dir=/data/js", "--http_port=8222"]`}},
		{name: "long port syntax", edits: []string{`      - "127.0.0.1:4223:4222"`, "      - target: 4222\n        published: \"4223\"\n        host_ip: 127.0.0.1"}},
		{name: "all interfaces", edits: []string{`"127.0.0.1:4222:4222"`, `"4222:4222"`}},
		{name: "long volume syntax", edits: []string{`      - js-data:/data/js`, "      - type: volume\n        source: js-data\n        target: /data"}},
		{name: "newer nats", edits: []string{`nats:2.12`, `nats:2.14.1-alpine`}},
		{name: "moved client port", edits: []string{
			`["-js", "-sd", "/data/js", "-m", "8222"]`, `["-js", "-p", "5222", "-sd", "/data/js", "-m", "8222"]`,
			`"127.0.0.1:4223:4222"`, `"127.0.0.1:4223:5222"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseCompose([]byte(mutate(t, goodCompose, tc.edits...)))
			if err != nil {
				t.Fatal(err)
			}
			for _, err := range checkCompose(p, contractEnv(t), "0.25.6") {
				t.Error(err)
			}
		})
	}
}

// TestComposeChecksFail proves each check can fail.
func TestComposeChecksFail(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
		env      map[string]string // overrides of the contract line
		wantErr  string
	}{
		{name: "wrong STAN host port", old: `"127.0.0.1:4222:4222"`, new: `"127.0.0.1:4225:4222"`, wantErr: "README STAN_URL=nats://127.0.0.1:4222: service \"nats-streaming\" does not publish host port 4222"},
		{name: "STAN client port to wrong container port", old: `"127.0.0.1:4222:4222"`, new: `"127.0.0.1:4222:4333"`, wantErr: "README STAN_URL"},
		{name: "wrong NATS host port", old: `"127.0.0.1:4223:4222"`, new: `"127.0.0.1:4224:4222"`, wantErr: "README NATS_URL=nats://127.0.0.1:4223: service \"nats\" does not publish host port 4223"},
		{name: "README NATS_URL at STAN's port", env: map[string]string{"NATS_URL": "nats://127.0.0.1:4222"}, wantErr: "README NATS_URL=nats://127.0.0.1:4222: service \"nats\" does not publish host port 4222"},
		{name: "monitor port maps elsewhere", old: `"127.0.0.1:8222:8222"`, new: `"127.0.0.1:8222:8080"`, wantErr: "README STAN_MONITOR"},
		{name: "monitor flag port differs", old: `"/data/stan", "-m", "8222"`, new: `"/data/stan", "-m", "8080"`, wantErr: "to container port 8080"},
		{name: "no monitoring", old: `"/data/stan", "-m", "8222"`, new: `"/data/stan"`, wantErr: "no -m/--http_port flag"},
		{name: "wrong cid", old: `"-cid", "test-cluster"`, new: `"-cid", "prod-cluster"`, wantErr: `-cid "prod-cluster", but README's STAN_CLUSTER=test-cluster`},
		{name: "no cid", old: `"-cid", "test-cluster", `, new: ``, wantErr: "no -cid/--cluster_id flag"},
		{name: "README cluster differs", env: map[string]string{"STAN_CLUSTER": "other"}, wantErr: "README's STAN_CLUSTER=other"},
		{name: "memory store", old: `"-store", "file"`, new: `"-store", "memory"`, wantErr: `-store "memory"; want the file store`},
		{name: "default store", old: `"-store", "file", `, new: ``, wantErr: "no -store flag (memory store)"},
		{name: "no -dir", old: `"-dir", "/data/stan", `, new: ``, wantErr: "no -dir flag"},
		{name: "-dir off the volume", old: `stan-data:/data/stan`, new: `stan-data:/var/stan`, wantErr: "-dir /data/stan is not on a named volume"},
		{name: "-dir on a bind mount", old: `stan-data:/data/stan`, new: `./stan:/data/stan`, wantErr: "-dir /data/stan is on a bind mount"},
		{name: "-dir on an anonymous volume", old: `stan-data:/data/stan`, new: `/data/stan`, wantErr: "anonymous volume"},
		{name: "missing -js", old: `["-js", "-sd"`, new: `["-sd"`, wantErr: "JetStream is not enabled"},
		{name: "-js=false", old: `["-js", "-sd"`, new: `["-js=false", "-sd"`, wantErr: "JetStream is not enabled"},
		{name: "no -sd", old: `"-sd", "/data/js", `, new: ``, wantErr: "no -sd/--store_dir flag"},
		{name: "-sd off the volume", old: `js-data:/data/js`, new: `js-data:/data/other`, wantErr: "-sd /data/js is not on a named volume"},
		{name: "undeclared volume", old: "\n  js-data:\n", new: "\n", wantErr: `volume "js-data" (for -sd /data/js) is not declared`},
		{name: "buggy nats", old: `nats:2.12`, new: `nats:2.11.1`, wantErr: "want 2.12 or newer"},
		{name: "old nats", old: `nats:2.12`, new: `nats:2.10.27-alpine`, wantErr: "want 2.12 or newer"},
		{name: "floating nats", old: `nats:2.12`, new: `nats:latest`, wantErr: "no version tag"},
		{name: "untagged nats", old: `nats:2.12`, new: `nats`, wantErr: "no version tag"},
		{name: "wrong STAN version", old: `nats-streaming:0.25.6`, new: `nats-streaming:0.25.5`, wantErr: "want 0.25.6"},
		{name: "not the STAN image", old: `nats-streaming:0.25.6`, new: `nats:2.12`, wantErr: "want the official nats-streaming image"},
		{name: "missing nats service", old: "  nats:\n", new: "  jetstream:\n", wantErr: `no service "nats"`},
		{name: "host port twice", old: `"127.0.0.1:8223:8222"`, new: `"127.0.0.1:8222:8222"`, wantErr: "host port 8222/tcp is published by both"},
		{name: "published on another address", old: `"127.0.0.1:4223:4222"`, new: `"192.0.2.1:4223:4222"`, wantErr: "publishes port 4223 on 192.0.2.1 only"},
		{name: "README host not loopback", env: map[string]string{"STAN_URL": "nats://stan.example:4222"}, wantErr: "on 127.0.0.1 only"},
		{name: "README wrong scheme", env: map[string]string{"STAN_MONITOR": "nats://127.0.0.1:8222"}, wantErr: `scheme "nats", want "http"`},
		{name: "entrypoint overridden", old: "    image: nats:2.12\n", new: "    image: nats:2.12\n    entrypoint: [\"/bin/sh\", \"-c\"]\n", wantErr: "entrypoint is overridden"},
		{name: "udp", old: `"127.0.0.1:4223:4222"`, new: `"127.0.0.1:4223:4222/udp"`, wantErr: "README NATS_URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var edits []string
			if tc.old != "" || tc.new != "" {
				edits = []string{tc.old, tc.new}
			}
			p, err := parseCompose([]byte(mutate(t, goodCompose, edits...)))
			if err != nil {
				t.Fatal(err)
			}
			env := contractEnv(t)
			for k, v := range tc.env {
				env[k] = v
			}
			errs := checkCompose(p, env, "0.25.6")
			for _, err := range errs {
				if strings.Contains(err.Error(), tc.wantErr) {
					return
				}
			}
			t.Errorf("no error containing %q; got %v", tc.wantErr, errs)
		})
	}
}

func TestParseComposeRejects(t *testing.T) {
	for _, tc := range []struct{ name, src, wantErr string }{
		{"not yaml", "services: [", "yaml"},
		{"no services", "volumes: {}\n", "no services"},
		{"quoted string command", "services:\n  s:\n    command: -cid \"a b\"\n", "use the list form"},
		{"port range", "services:\n  s:\n    ports: [\"4222-4223:4222-4223\"]\n", "port range"},
	} {
		if _, err := parseCompose([]byte(tc.src)); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestStanServerVersion(t *testing.T) {
	v, err := stanServerVersion([]byte("module x\n\nrequire (\n\tgithub.com/nats-io/nats-streaming-server v0.25.6\n)\n"))
	if err != nil || v != "0.25.6" {
		t.Errorf("got %q, %v", v, err)
	}
	if _, err := stanServerVersion([]byte("module x\n")); err == nil {
		t.Error("no error for a go.mod without the server")
	}
}

// mutate applies edits (old, new pairs) to src, each replacing its first
// occurrence, failing if an old string is absent so that a case cannot
// silently test the unbroken file.
func mutate(t *testing.T, src string, edits ...string) string {
	t.Helper()
	if len(edits)%2 != 0 {
		t.Fatalf("odd number of edit strings: %q", edits)
	}
	for i := 0; i < len(edits); i += 2 {
		old, new := edits[i], edits[i+1]
		if !strings.Contains(src, old) {
			t.Fatalf("mutation target %q not in the compose snippet", old)
		}
		src = strings.Replace(src, old, new, 1)
	}
	return src
}
