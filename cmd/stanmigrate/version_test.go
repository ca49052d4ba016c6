package main

import (
	"strings"
	"testing"

	natsd "github.com/nats-io/nats-server/v2/server"
	stand "github.com/nats-io/nats-streaming-server/server"
)

// TestVersionNamesTheBuildAndTheEmbeddedServers: `version` and
// `--version` print the same block: the module version, the revision (or
// why there is none), Go, and the servers the demo embeds.
func TestVersionNamesTheBuildAndTheEmbeddedServers(t *testing.T) {
	v := run(t, nil, "version")
	if v.code != 0 {
		t.Fatalf("version: exit %d\n%s", v.code, v.stderr)
	}
	lines := strings.Split(strings.TrimSpace(v.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "stanmigrate ") || !strings.HasPrefix(lines[1], "revision ") || !strings.HasPrefix(lines[2], "go1.") {
		t.Errorf("version prints:\n%s\nwant stanmigrate <version>, revision <rev>, the Go version, the embedded servers", v.stdout)
	}
	want := "demo embeds nats-server " + natsd.VERSION + " and nats-streaming-server " + stand.VERSION
	if !strings.Contains(v.stdout, want) {
		t.Errorf("version does not say %q:\n%s", want, v.stdout)
	}
	if f := run(t, nil, "--version"); f.code != 0 || f.stdout != v.stdout {
		t.Errorf("--version: exit %d, printed\n%s\nwant what version prints:\n%s", f.code, f.stdout, v.stdout)
	}
}
