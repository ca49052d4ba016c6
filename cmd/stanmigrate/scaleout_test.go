package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/topotest"
)

// TestTwoMigratorsSplitByChannelIntoOneCluster is the scale-out recipe:
// one plan per disjoint channel selection, two migrate processes at once
// (each with its own state directory, as on two machines) into one
// three-node JetStream cluster with R3 streams. Both end exact, and
// neither touched the other's channels.
func TestTwoMigratorsSplitByChannelIntoOneCluster(t *testing.T) {
	env := startFixture(t, "lines.yaml")
	cl := topotest.JetStreamCluster(t, embedded.JetStreamClusterConfig{})
	e := append(envFor(env), "NATS_URL="+cl.URLs())
	dir := t.TempDir()
	plans := map[string][]string{
		"a": {"--channel", "bulk.a"},
		"b": {"--exclude", "bulk.a"},
	}
	for name, sel := range plans {
		args := append([]string{"plan", "-o", filepath.Join(dir, name+".yaml"), "--replicas", "3"}, sel...)
		if r := run(t, e, args...); r.code != 0 {
			t.Fatalf("plan %s: exit %d\n%s", name, r.code, r.stderr)
		}
	}

	bin := binaryPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	outs := map[string]*bytes.Buffer{}
	codes := map[string]int{}
	var mu sync.Mutex
	started := time.Now()
	for name := range plans {
		var out bytes.Buffer
		outs[name] = &out
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, bin, "migrate", "--plan", filepath.Join(dir, name+".yaml"),
				"--state", filepath.Join(dir, name+".state"), "--json")
			cmd.Env = append(os.Environ(), e...)
			cmd.Stdout = &out
			var errOut bytes.Buffer
			cmd.Stderr = &errOut
			err := cmd.Run()
			mu.Lock()
			defer mu.Unlock()
			codes[name] = cmd.ProcessState.ExitCode()
			if err != nil {
				t.Errorf("migrate %s: %v\n%s%s", name, err, out.String(), errOut.String())
			}
		})
	}
	wg.Wait()
	t.Logf("both migrations done in %v", time.Since(started).Round(time.Millisecond))
	for name := range plans {
		if codes[name] != 0 {
			t.Fatalf("migrate %s: exit %d", name, codes[name])
		}
		if !strings.Contains(outs[name].String(), `"status": "complete"`) {
			t.Errorf("migrate %s did not complete a channel:\n%s", name, outs[name].String())
		}
	}
	if strings.Contains(outs["a"].String(), `"bulk.b"`) || strings.Contains(outs["b"].String(), `"bulk.a"`) {
		t.Errorf("a migrator touched the other's channel:\na: %s\nb: %s", outs["a"].String(), outs["b"].String())
	}
	for name := range plans {
		if r := run(t, e, "verify", "--plan", filepath.Join(dir, name+".yaml")); r.code != 0 {
			t.Errorf("verify %s: exit %d\n%s%s", name, r.code, r.stdout, r.stderr)
		}
	}
}
