package main

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nats-io/nats-streaming-server/stores"
	"gopkg.in/yaml.v3"

	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
)

// ciExampleModule is what the example's install step installs; the
// container acceptance run (.ci/containers.sh) replaces that one step with
// a build of the checkout.
const ciExampleModule = "github.com/stanmigrate/stanmigrate/cmd/stanmigrate"

var pinnedInstall = regexp.MustCompile(`^go install ` + regexp.QuoteMeta(ciExampleModule) + `@v\d+\.\d+\.\d+$`)

// workflow is the part of a GitHub Actions workflow the example uses.
type workflow struct {
	Jobs map[string]struct {
		Env   map[string]string `yaml:"env"`
		Steps []struct {
			Name string `yaml:"name"`
			Run  string `yaml:"run"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// TestCIExampleRunsAgainstEmbeddedServers runs examples/ci's workflow the
// way CI would, with the docker-compose servers replaced by embedded ones
// started like them (STAN with its default store limits and a file store,
// a JetStream server): every stanmigrate step, in order, with the
// workflow's own arguments, from a working directory laid out like the
// repository. It fails if a step's command line no longer works, or if
// the report verify writes is not a passing JUnit report.
func TestCIExampleRunsAgainstEmbeddedServers(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "examples/ci/github-actions.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var wf workflow
	if err := yaml.Unmarshal(data, &wf); err != nil {
		t.Fatalf("examples/ci/github-actions.yml: %v", err)
	}
	job, ok := wf.Jobs["rehearse"]
	if !ok {
		t.Fatal("the example has no job named rehearse")
	}

	limits := stores.DefaultStoreLimits
	pair, err := embedded.StartPair(t.TempDir(), &limits)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pair.Stop)
	// The workflow's environment, pointed at the embedded servers.
	embeddedValue := map[string]string{
		"STAN_URL": pair.STAN.URL(), "STAN_CLUSTER": pair.STAN.ClusterID(),
		"STAN_MONITOR": pair.STAN.MonitorURL(), "NATS_URL": pair.JetStream.URL(),
	}
	var env []string
	for k := range job.Env {
		v, ok := embeddedValue[k]
		if !ok {
			t.Fatalf("the workflow sets %s, which this test does not know how to point at an embedded server", k)
		}
		env = append(env, k+"="+v)
	}
	if len(env) != len(embeddedValue) {
		t.Fatalf("the workflow's environment %v should set %d connection variables", job.Env, len(embeddedValue))
	}

	// A working directory laid out like the repository's root.
	work := t.TempDir()
	if err := os.Symlink(filepath.Join(root, "examples"), filepath.Join(work, "examples")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(work)

	var ran []string
	installs := 0
	for _, step := range job.Steps {
		line := strings.TrimSpace(step.Run)
		if strings.HasPrefix(line, "go install ") {
			// A copied workflow cannot build from this checkout: it
			// installs a release, which must be pinned so a rehearsal
			// keeps testing the version the migration will run.
			installs++
			if !pinnedInstall.MatchString(line) {
				t.Errorf("step %q: %q should install %s at a pinned vX.Y.Z", step.Name, line, ciExampleModule)
			}
			continue
		}
		if !strings.HasPrefix(line, "stanmigrate ") {
			continue
		}
		if strings.ContainsAny(line, "\n|&;$`'\"") {
			t.Fatalf("step %q: %q is more than one plain command line; this test runs plain ones", step.Name, line)
		}
		args := strings.Fields(line)[1:]
		r := run(t, env, args...)
		if r.code != 0 {
			t.Fatalf("step %q (%s): exit %d\n%s%s", step.Name, line, r.code, r.stdout, r.stderr)
		}
		ran = append(ran, args[0]+" "+args[1])
		t.Logf("%s:\n%s", line, r.stdout)
	}
	if installs != 1 {
		t.Errorf("the example installs stanmigrate %d times, want once (go install %s@vX.Y.Z)", installs, ciExampleModule)
	}
	want := []string{"fixture load", "plan -o", "migrate --plan", "verify --plan"}
	if strings.Join(ran, ", ") != strings.Join(want, ", ") {
		t.Errorf("the example's stanmigrate steps are %v, want %v", ran, want)
	}

	// What CI publishes: a JUnit report of a passing verification, one
	// test case per channel and per consumer.
	report, err := os.ReadFile(filepath.Join(work, "report.xml"))
	if err != nil {
		t.Fatalf("verify --junit wrote no report: %v", err)
	}
	var suites struct {
		Suites []struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Errors   int `xml:"errors,attr"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(report, &suites); err != nil {
		t.Fatalf("report.xml: %v\n%s", err, report)
	}
	// 3 channels and 4 durables in examples/ci/fixture.yaml.
	if len(suites.Suites) != 1 || suites.Suites[0].Tests != 7 || suites.Suites[0].Failures != 0 || suites.Suites[0].Errors != 0 {
		t.Errorf("report.xml: want one suite of 7 passing test cases, got %+v\n%s", suites.Suites, report)
	}
}
