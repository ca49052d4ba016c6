package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/testkit/serverbin"
)

// result is what a command printed and its exit code.
type result struct {
	stdout, stderr string
	code           int
}

// run runs one command line in-process, as main would, with buffered
// output that is not a terminal; env ("K=V") is set for the command only.
// Tests in this package do not run in parallel: the environment is the
// process's.
func run(t testing.TB, env []string, args ...string) result {
	t.Helper()
	return runWith(t, env, false, runners{}, args...)
}

// runWith is run with the command's runners replaced where r sets them
// (the real ones otherwise) and stderr a terminal or not.
func runWith(t testing.TB, env []string, terminal bool, r runners, args ...string) result {
	t.Helper()
	restore := setenv(t, env)
	defer restore()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var so, se bytes.Buffer
	a := newApp(&so, &se, terminal)
	root := newRootCmdWith(a, r)
	root.SetArgs(args)
	code := a.finish(root.ExecuteContext(ctx))
	return result{so.String(), se.String(), code}
}

// setenv applies env and returns what puts the previous values back.
func setenv(t testing.TB, env []string) func() {
	t.Helper()
	type old struct {
		v  string
		ok bool
	}
	prev := map[string]old{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if _, seen := prev[k]; !seen {
			ov, ok := os.LookupEnv(k)
			prev[k] = old{ov, ok}
		}
		if err := os.Setenv(k, v); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		for k, o := range prev {
			if o.ok {
				os.Setenv(k, o.v)
			} else {
				os.Unsetenv(k)
			}
		}
	}
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// packageDir is this package's directory, where the tests start.
var packageDir, _ = os.Getwd()

// binaryPath builds the real binary once, for the tests that must send
// it a signal (kill -9, Ctrl-C) or measure its memory.
func binaryPath(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stanmigrate-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "stanmigrate")
		build := exec.Command("go", "build", "-o", binary, ".")
		build.Dir = packageDir // a test may have moved to a directory of its own
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = err
			binary = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build stanmigrate: %v\n%s", buildErr, binary)
	}
	return binary
}

func TestMain(m *testing.M) {
	// nats-server processes of every release line (TestEveryReleaseLine):
	// built in the background while the other tests run, once per machine.
	serverbin.Prepare()
	code := m.Run()
	// Say which lines could not be built, even when no test got to them.
	for _, line := range strings.Split(serverbin.Summary(), "\n") {
		if strings.Contains(line, "NOT BUILT") {
			fmt.Println(line)
		}
	}
	if binary != "" && buildErr == nil {
		os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}
