package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stanmigrate/stanmigrate/internal/freeport"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
)

// TestBadInputExitsTwoWithOneLineAndChangesNothing tries what a new user
// gets wrong — numbers out of range, paths that are not what they must
// be, connection settings that do not parse or do not answer, globs that
// match nothing, plan files edited wrong — and asserts for each: exit 2,
// one line on stderr naming the object and what to do, nothing on stdout
// but what the command prints before failing, and both servers (their
// store files, STAN's channels, subscriptions and clients, every stream
// and consumer) exactly as before.
func TestBadInputExitsTwoWithOneLineAndChangesNothing(t *testing.T) {
	env := startFixture(t, "core.yaml")
	noJS, err := embedded.StartJetStream(embedded.JetStreamConfig{Disabled: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(noJS.Stop)
	dead, _ := freeport.Port()
	deadURL := fmt.Sprintf("nats://127.0.0.1:%d", dead)
	dir := t.TempDir()
	good := filepath.Join(dir, "plan.yaml")
	if r := run(t, envFor(env), "plan", "-o", good); r.code != 0 {
		t.Fatalf("plan: %s", r.stderr)
	}
	data, _ := os.ReadFile(good)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	edit := func(name, from, to string) string {
		if !strings.Contains(string(data), from) {
			t.Fatalf("the plan has no %q to edit", from)
		}
		return write(name, strings.Replace(string(data), from, to, 1))
	}
	badYAML := edit("bad.yaml", "replicas: 1", "replicas: [1")
	unknown := edit("unknown.yaml", "replicas: 1", "replicas: 1\n    replica_count: 3")
	badName := edit("badname.yaml", "stream: orders_eu", "stream: orders.eu")
	gone := edit("gone.yaml", "channel: audit.log", "channel: audit.gone")
	replicas := edit("replicas.yaml", "replicas: 1", "replicas: 9")
	inflight := edit("inflight.yaml", "max_inflight: 200", "max_inflight: 0")
	mode := edit("mode.yaml", "mode: pull", "mode: stream")
	position := edit("position.yaml", "position: exact", "position: maybe")
	negative := edit("negative.yaml", "max_msgs: 300", "max_msgs: -3")
	storage := edit("storage.yaml", "storage: file", "storage: disk")
	aFile := write("afile", "not a directory")
	emptyCreds := write("empty.creds", "-----BEGIN NATS USER JWT-----\n-----END NATS USER JWT-----\n")
	notSeed := write("user.nk", "not a seed")
	stanConf := write("stan.conf", "streaming { store: memory }\n")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })

	tests := []struct {
		name  string
		env   []string
		args  []string
		wants []string
	}{
		// Connections.
		{"STAN unreachable", []string{"STAN_URL=" + deadURL}, []string{"migrate", "--plan", good}, []string{"STAN server", "unreachable"}},
		{"STAN unreachable at plan time", []string{"STAN_URL=" + deadURL}, []string{"plan", "-o", "-"}, []string{"STAN server", "unreachable"}},
		{"JetStream unreachable at plan time", []string{"NATS_URL=" + deadURL}, []string{"plan", "-o", "-"}, []string{"JetStream server", "unreachable"}},
		{"monitor unreachable", []string{"STAN_MONITOR=http://127.0.0.1:1"}, []string{"plan", "-o", "-"}, []string{"monitoring", "--stan-monitor"}},
		{"wrong cluster id (plan)", []string{"STAN_CLUSTER=prod"}, []string{"plan", "-o", "-"}, []string{`"test-cluster"`, "--cluster"}},
		{"wrong cluster id (migrate)", []string{"STAN_CLUSTER=prod"}, []string{"migrate", "--plan", good}, []string{"cluster", "prod"}},
		{"JetStream disabled", []string{"NATS_URL=" + noJS.URL()}, []string{"plan", "-o", "-"}, []string{"JetStream is not enabled"}},
		{"URL that does not parse", nil, []string{"plan", "-o", "-", "--stan-url", "nats://:::4222"}, []string{"STAN server URL", "--stan-url"}},
		{"URL with another scheme", nil, []string{"plan", "-o", "-", "--nats-url", "http://127.0.0.1:4222"}, []string{`scheme "http"`, "--nats-url"}},
		{"URL of colons", nil, []string{"plan", "-o", "-", "--nats-url", "nats://::::"}, []string{"--nats-url", "JetStream server URL", "more than one colon", "[::1]:4222"}},
		{"URL of colons from the environment", []string{"NATS_URL=nats://::::"}, []string{"verify", "--plan", good}, []string{"--nats-url (from NATS_URL)", "more than one colon"}},
		{"IPv6 address without brackets", nil, []string{"migrate", "--plan", good, "--stan-url", "nats://::1:4222"}, []string{"--stan-url", "brackets"}},
		{"IPv6 address with one bracket", nil, []string{"plan", "-o", "-", "--stan-url", "nats://[::1:4222"}, []string{"--stan-url", "does not parse"}},
		{"URL with an empty host", nil, []string{"plan", "-o", "-", "--stan-url", "nats://:4222"}, []string{"--stan-url", "names no host"}},
		{"URL list with an empty entry", nil, []string{"plan", "-o", "-", "--nats-url", "nats://127.0.0.1:4222,,nats://127.0.0.1:4223"}, []string{"--nats-url", "entry 2 of 3", "is empty"}},
		{"URL list ending in a comma", nil, []string{"fixture", "capture", "--stan-url", "nats://127.0.0.1:4222,"}, []string{"--stan-url", "entry 2 of 2", "is empty"}},
		{"monitoring URL of colons", nil, []string{"plan", "-o", "-", "--stan-monitor", "http://::::8222"}, []string{"--stan-monitor", "STAN monitoring URL", "more than one colon"}},
		{"monitoring URL with a NATS scheme", nil, []string{"fixture", "load", "../../testdata/fixtures/core.yaml", "--stan-monitor", "nats://127.0.0.1:8222"}, []string{"--stan-monitor", `scheme "nats" is not http or https`}},
		{"monitoring URL list with an empty entry", nil, []string{"plan", "-o", "-", "--stan-monitor", ",http://127.0.0.1:8222"}, []string{"--stan-monitor", "entry 1 of 2", "is empty"}},
		{"credentials file without credentials", nil, []string{"plan", "-o", "-", "--stan-creds", emptyCreds}, []string{"--stan-creds", "holds no user JWT"}},
		{"NKey file without a seed", nil, []string{"plan", "-o", "-", "--nats-nkey", notSeed}, []string{"--nats-nkey", "not an NKey seed"}},
		{"missing credentials file", nil, []string{"plan", "-o", "-", "--nats-creds", filepath.Join(dir, "nope.creds")}, []string{"--nats-creds", "no such file"}},
		// Numbers out of range.
		{"--parallel -5", nil, []string{"migrate", "--plan", good, "--parallel", "-5"}, []string{"--parallel -5", "1 to 1024"}},
		{"--parallel 0", nil, []string{"verify", "--plan", good, "--parallel", "0"}, []string{"--parallel 0", "1 to 1024"}},
		{"--window 0", nil, []string{"migrate", "--plan", good, "--window", "0"}, []string{"--window 0", "16 to"}},
		{"--window -1", nil, []string{"migrate", "--plan", good, "--window", "-1"}, []string{"--window -1", "16 to"}},
		{"--sample -1", nil, []string{"verify", "--plan", good, "--sample", "-1"}, []string{"--sample -1"}},
		{"--replicas 7", nil, []string{"plan", "-o", "-", "--replicas", "7"}, []string{"--replicas 7", "1 to 5"}},
		{"--until-idle negative", nil, []string{"migrate", "--plan", good, "--follow", "--until-idle", "-1s"}, []string{"--until-idle", "positive"}},
		{"--until-idle without --follow", nil, []string{"migrate", "--plan", good, "--until-idle", "5s"}, []string{"--until-idle needs --follow"}},
		{"verify --until-idle without --follow", nil, []string{"verify", "--plan", good, "--until-idle", "5s"}, []string{"--until-idle needs --follow"}},
		{"verify --follow with --sample", nil, []string{"verify", "--plan", good, "--follow", "--sample", "5"}, []string{"--follow and --sample"}},
		{"verify --follow with --full", nil, []string{"verify", "--plan", good, "--follow", "--full"}, []string{"--follow and --full"}},
		{"verify --state naming a file", nil, []string{"verify", "--plan", good, "--state", aFile}, []string{"--state", "is a file, not a directory"}},
		{"--scale 0", nil, []string{"fixture", "capture", "--scale", "0"}, []string{"--scale 0", "above 0"}},
		{"--scale 1.5", nil, []string{"fixture", "capture", "--scale", "1.5"}, []string{"--scale 1.5"}},
		{"--timeout 0", nil, []string{"fixture", "load", "x.yaml", "--timeout", "0s"}, []string{"--timeout"}},
		// Words out of range.
		{"--format", nil, []string{"plan", "--format", "xml"}, []string{"--format"}},
		{"--headers", nil, []string{"plan", "-o", "-", "--headers", "none"}, []string{"--headers", "full or minimal"}},
		{"--expiry", nil, []string{"plan", "-o", "-", "--expiry", "never"}, []string{"--expiry", "original or migration"}},
		{"--positions", nil, []string{"migrate", "--plan", good, "--positions", "sometimes"}, []string{"--positions", "exact or lowest-unacked"}},
		{"--publish", nil, []string{"migrate", "--plan", good, "--publish", "sync"}, []string{"--publish", "auto or async"}},
		{"--log-format", nil, []string{"migrate", "--plan", good, "--log-format", "xml"}, []string{`--log-format "xml"`, "text or json"}},
		{"verify --log-format", nil, []string{"verify", "--plan", good, "--log-format", "logfmt"}, []string{`--log-format "logfmt"`, "text or json"}},
		// Operating a long run: rate caps and the metrics address.
		{"--rate -5", nil, []string{"migrate", "--plan", good, "--rate", "-5"}, []string{"--rate -5", "1 to 100000000"}},
		{"--rate too high", nil, []string{"migrate", "--plan", good, "--rate", "1000000000"}, []string{"--rate 1000000000", "1 to 100000000"}},
		{"--rate not a number", nil, []string{"migrate", "--plan", good, "--rate", "fast"}, []string{"--rate", "fast"}},
		{"--rate-bytes that does not parse", nil, []string{"migrate", "--plan", good, "--rate-bytes", "lots"}, []string{`--rate-bytes "lots"`, "1 KiB to 1 TiB"}},
		{"--rate-bytes below 1 KiB", nil, []string{"migrate", "--plan", good, "--rate-bytes", "100B"}, []string{`--rate-bytes "100B"`, "1 KiB"}},
		{"--rate-bytes above 1 TiB", nil, []string{"migrate", "--plan", good, "--rate-bytes", "2TiB"}, []string{`--rate-bytes "2TiB"`, "1 TiB"}},
		{"--metrics-listen without a port", nil, []string{"migrate", "--plan", good, "--metrics-listen", "127.0.0.1"}, []string{`--metrics-listen "127.0.0.1"`, "host:port"}},
		{"--metrics-listen that does not parse", nil, []string{"verify", "--plan", good, "--metrics-listen", "::1::9464"}, []string{"--metrics-listen", "host:port"}},
		{"--metrics-listen on an address not here", nil, []string{"migrate", "--plan", good, "--metrics-listen", "192.0.2.1:9464"}, []string{"--metrics-listen 192.0.2.1:9464", "local address"}},
		{"--metrics-listen on a port in use", nil, []string{"migrate", "--plan", good, "--metrics-listen", busy.Addr().String()}, []string{"--metrics-listen " + busy.Addr().String(), "in use"}},
		{"verify --metrics-listen on a port in use", nil, []string{"verify", "--plan", good, "--metrics-listen", busy.Addr().String()}, []string{"--metrics-listen " + busy.Addr().String(), "in use"}},
		{"--channel matching nothing", nil, []string{"plan", "-o", "-", "--channel", "typo*"}, []string{`--channel "typo*"`, "matches none", "orders.eu"}},
		{"--channel that is not a glob", nil, []string{"plan", "-o", "-", "--channel", "["}, []string{`--channel "["`, "not a valid glob"}},
		{"--exclude that is not a glob", nil, []string{"plan", "-o", "-", "--exclude", "orders["}, []string{`--exclude "orders["`, "not a valid glob"}},
		{"fixture capture --channel that is not a glob", nil, []string{"fixture", "capture", "--channel", "["}, []string{`--channel "["`, "not a valid glob"}},
		{"an argument", nil, []string{"plan", "orders"}, []string{"unknown command", "orders"}},
		{"an unknown command", nil, []string{"migarte"}, []string{`unknown command "migarte"`}},
		// Paths.
		{"--state naming a file", nil, []string{"migrate", "--plan", good, "--state", aFile}, []string{"--state", "is a file, not a directory"}},
		{"status --state naming a file", nil, []string{"status", "--state", aFile}, []string{"--state", "is a file"}},
		{"--state kv: without a name", nil, []string{"migrate", "--plan", good, "--state", "kv:"}, []string{"--state kv:", "needs a bucket name"}},
		{"--state kv: with an illegal bucket name", nil, []string{"migrate", "--plan", good, "--state", "kv:orders.eu"}, []string{"--state kv:orders.eu", "letters, digits"}},
		{"--lease-ttl too short", nil, []string{"migrate", "--plan", good, "--lease-ttl", "1s"}, []string{"--lease-ttl 1s", "3s to 10m"}},
		{"status of a bucket that does not exist", nil, []string{"status", "--state", "kv:nothing-here"}, []string{`bucket "nothing-here"`, "no migration state"}},
		{"state rm of a bucket that does not exist", nil, []string{"state", "rm", "--state", "kv:nothing-here"}, []string{`bucket "nothing-here"`, "no migration state"}},
		{"-o naming a directory", nil, []string{"plan", "-o", dir}, []string{"--output", "is a directory"}},
		{"-o in a missing directory", nil, []string{"plan", "-o", filepath.Join(dir, "nope", "plan.yaml")}, []string{"--output", "does not exist"}},
		{"--junit naming a directory", nil, []string{"verify", "--plan", good, "--junit", dir}, []string{"--junit", "is a directory"}},
		{"capture -o naming a directory", nil, []string{"fixture", "capture", "-o", dir}, []string{"--output", "is a directory"}},
		{"--stan-dir that does not exist", nil, []string{"plan", "-o", "-", "--stan-dir", filepath.Join(dir, "nope")}, []string{filepath.Join(dir, "nope")}},
		{"--stan-dir that is no store", nil, []string{"plan", "-o", "-", "--stan-dir", dir}, []string{"not a STAN file store"}},
		{"--stan-config missing", nil, []string{"plan", "-o", "-", "--stan-dir", env.Pair.STAN.Dir(), "--stan-config", filepath.Join(dir, "nope.conf")}, []string{"--stan-config"}},
		{"--stan-config of a memory store", nil, []string{"plan", "-o", "-", "--stan-dir", env.Pair.STAN.Dir(), "--stan-config", stanConf}, []string{"file stores only"}},
		{"--follow with --stan-dir", nil, []string{"migrate", "--stan-dir", env.Pair.STAN.Dir(), "--follow"}, []string{"--follow needs a running STAN"}},
		{"fixture spec missing", nil, []string{"fixture", "load", filepath.Join(dir, "nope.yaml")}, []string{"nope.yaml", "does not exist"}},
		{"fixture load without a file", nil, []string{"fixture", "load"}, []string{"one fixture spec file"}},
		{"fixture into channels that hold messages", nil, []string{"fixture", "load", "../../testdata/fixtures/core.yaml"}, []string{"already holds messages", "--allow-existing"}},
		// Plan files edited wrong.
		{"unreadable plan", nil, []string{"migrate", "--plan", filepath.Join(dir, "missing.yaml")}, []string{"missing.yaml", "--plan"}},
		{"invalid YAML", nil, []string{"migrate", "--plan", badYAML}, []string{"bad.yaml:"}},
		{"unknown field", nil, []string{"verify", "--plan", unknown}, []string{"unknown.yaml:", "replica_count"}},
		{"illegal stream name", nil, []string{"migrate", "--plan", badName}, []string{"badname.yaml:", `"orders.eu"`, "orders_eu"}},
		{"channel no longer exists", nil, []string{"migrate", "--plan", gone}, []string{`"audit.gone"`, "re-run `stanmigrate plan`"}},
		{"replicas out of range", nil, []string{"migrate", "--plan", replicas}, []string{"replicas.yaml:", "replicas 9", "1 to 5"}},
		{"max_inflight 0", nil, []string{"migrate", "--plan", inflight}, []string{"inflight.yaml:", "max_inflight must be positive"}},
		{"unknown mode", nil, []string{"migrate", "--plan", mode}, []string{"mode.yaml:", `mode "stream"`}},
		{"unknown position", nil, []string{"verify", "--plan", position}, []string{"position.yaml:", `position "maybe"`}},
		{"negative limit", nil, []string{"migrate", "--plan", negative}, []string{"negative.yaml:", "cannot be negative"}},
		{"unknown storage", nil, []string{"migrate", "--plan", storage}, []string{"storage.yaml:", `storage "disk"`}},
	}
	before := captureState(t, env)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, append(envFor(env), tt.env...), tt.args...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			msg := strings.TrimSpace(r.stderr)
			if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "stanmigrate: ") {
				t.Errorf("want one line starting with \"stanmigrate: \", got:\n%s", r.stderr)
			}
			for _, w := range tt.wants {
				if !strings.Contains(msg, w) {
					t.Errorf("stderr lacks %q: %s", w, msg)
				}
			}
			if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
				t.Errorf("stack trace in output: %s", r.stderr)
			}
			diffState(t, before, captureState(t, env))
		})
	}
}
