package serverbin

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Line is a nats-server release line, "2.10" for example.
type Line string

// The supported release lines. Each has a nested module under lines/ that
// pins one exact nats-server release.
const (
	Line2_10 Line = "2.10"
	Line2_11 Line = "2.11"
	Line2_12 Line = "2.12"
	Line2_15 Line = "2.15"

	// Current is the newest line: the one the main module also embeds.
	Current = Line2_15
)

// Lines lists every supported line, oldest first.
func Lines() []Line { return []Line{Line2_10, Line2_11, Line2_12, Line2_15} }

// CacheEnv names the environment variable that, when set, replaces the
// default binary cache root (os.UserCacheDir()/stanmigrate/nats-server).
const CacheEnv = "STANMIGRATE_NATS_SERVER_CACHE"

const serverPkg = "github.com/nats-io/nats-server/v2"

// buildTimeout bounds one `go build` of nats-server, downloads included.
const buildTimeout = 20 * time.Minute

// ModuleDir is the nested module that pins the line's nats-server release.
func (l Line) ModuleDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("serverbin: cannot locate the package source")
	}
	dir := filepath.Join(filepath.Dir(file), "lines", "v"+strings.ReplaceAll(string(l), ".", "_"))
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("serverbin: line %s has no pinned module (%w); supported lines: %v", l, err, Lines())
	}
	return dir, nil
}

// Version is the exact nats-server release pinned for the line, without
// the leading "v" ("2.10.29"), as read from the nested module's go.mod.
func (l Line) Version() (string, error) {
	dir, err := l.ModuleDir()
	if err != nil {
		return "", err
	}
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "require "))
		if len(fields) >= 2 && fields[0] == serverPkg {
			return strings.TrimPrefix(fields[1], "v"), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("serverbin: %s/go.mod does not require %s", dir, serverPkg)
}

// CacheRoot is where built binaries are kept: $STANMIGRATE_NATS_SERVER_CACHE,
// or os.UserCacheDir()/stanmigrate/nats-server.
func CacheRoot() (string, error) {
	if d := os.Getenv(CacheEnv); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("serverbin: no cache directory (set %s): %w", CacheEnv, err)
	}
	return filepath.Join(d, "stanmigrate", "nats-server"), nil
}

// cacheKey names the cache entry of a line: the version, the platform and a
// digest of the nested go.mod and go.sum, so that a changed pin (even of a
// dependency only) never reuses an old binary.
func cacheKey(version, moddir string) (string, error) {
	h := sha256.New()
	for _, name := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(moddir, name))
		if err != nil {
			return "", fmt.Errorf("serverbin: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	return fmt.Sprintf("%s-%s-%s-%s", version, runtime.GOOS, runtime.GOARCH, hex.EncodeToString(h.Sum(nil))[:12]), nil
}

// BuildError reports a line whose nats-server could not be built (or whose
// built binary did not report the pinned version).
type BuildError struct {
	Line    Line
	Version string
	// ModuleDir is the nested module the build ran in.
	ModuleDir string
	// Output is the build's combined output (may be long; Error shows its tail).
	Output string
	Err    error
}

func (e *BuildError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "serverbin: cannot build nats-server line %s", e.Line)
	if e.Version != "" {
		fmt.Fprintf(&b, " (v%s)", e.Version)
	}
	if e.ModuleDir != "" {
		fmt.Fprintf(&b, " in %s", e.ModuleDir)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if t := tail(e.Output, 30); t != "" {
		fmt.Fprintf(&b, "\n--- build output (last lines) ---\n%s", t)
	}
	return b.String()
}

func (e *BuildError) Unwrap() error { return e.Err }

// BuildResult is what one line's build came to in this process.
type BuildResult struct {
	Line    Line
	Version string
	Path    string
	// Built is true when this process ran `go build`; false when a complete
	// binary was already in the cache (or another process built it while
	// this one waited for the lock).
	Built    bool
	Duration time.Duration
	Err      error
}

type buildState struct {
	once sync.Once
	done chan struct{} // closed when res is final
	res  BuildResult
}

var (
	buildsMu sync.Mutex
	builds   = map[Line]*buildState{}
)

func state(l Line) *buildState {
	buildsMu.Lock()
	defer buildsMu.Unlock()
	s := builds[l]
	if s == nil {
		s = &buildState{done: make(chan struct{})}
		builds[l] = s
	}
	return s
}

func (s *buildState) get(l Line) BuildResult {
	s.once.Do(func() {
		start := time.Now()
		s.res = ensure(l)
		s.res.Duration = time.Since(start)
		close(s.done)
	})
	return s.res
}

// finished returns the result if the build is over.
func (s *buildState) finished() (BuildResult, bool) {
	select {
	case <-s.done:
		return s.res, true
	default:
		return BuildResult{}, false
	}
}

// Binary returns the path of the line's nats-server binary, building it
// into the cache first if no complete one is there. Builds happen once per
// machine: concurrent callers in this process share one build, and other
// processes wait on a lock file and then reuse the result. A failed build
// is returned as a *BuildError and is not retried within the process.
func Binary(l Line) (string, error) {
	r := state(l).get(l)
	return r.Path, r.Err
}

// Prepare starts building the given lines (all lines when none are given)
// in the background and returns at once; Binary and Start then wait only
// for what is still missing. A TestMain calls it first so that the builds
// overlap with the tests that need no nats-server process.
func Prepare(lines ...Line) {
	if len(lines) == 0 {
		lines = Lines()
	}
	for _, l := range lines {
		go state(l).get(l)
	}
}

// Results waits for the given lines' builds (all lines when none are
// given), starting any not yet started, and returns their outcomes.
func Results(lines ...Line) []BuildResult {
	if len(lines) == 0 {
		lines = Lines()
	}
	Prepare(lines...)
	out := make([]BuildResult, len(lines))
	for i, l := range lines {
		out[i] = state(l).get(l)
	}
	return out
}

// Summary describes, one line of text per release line, how each line's
// build went in this process: built (and how long it took), found in the
// cache, NOT BUILT (with the reason), or not finished. It does not wait.
func Summary() string {
	var b strings.Builder
	for _, l := range Lines() {
		version, _ := l.Version()
		r, ok := state(l).finished()
		switch {
		case !ok:
			fmt.Fprintf(&b, "nats-server %s (v%s): build not finished or not started\n", l, version)
		case r.Err != nil:
			fmt.Fprintf(&b, "nats-server %s (v%s): NOT BUILT: %v\n", l, version, firstLine(r.Err.Error()))
		case r.Built:
			fmt.Fprintf(&b, "nats-server %s (v%s): built in %s -> %s\n", l, version, r.Duration.Round(100*time.Millisecond), r.Path)
		default:
			fmt.Fprintf(&b, "nats-server %s (v%s): cached %s\n", l, version, r.Path)
		}
	}
	return b.String()
}

func ensure(l Line) BuildResult {
	res := BuildResult{Line: l}
	fail := func(moddir, output string, err error) BuildResult {
		res.Err = &BuildError{Line: l, Version: res.Version, ModuleDir: moddir, Output: output, Err: err}
		return res
	}
	moddir, err := l.ModuleDir()
	if err != nil {
		return fail("", "", err)
	}
	if res.Version, err = l.Version(); err != nil {
		return fail(moddir, "", err)
	}
	key, err := cacheKey(res.Version, moddir)
	if err != nil {
		return fail(moddir, "", err)
	}
	root, err := CacheRoot()
	if err != nil {
		return fail(moddir, "", err)
	}
	dir := filepath.Join(root, key)
	bin := filepath.Join(dir, "nats-server")
	res.Path = bin
	if checkVersion(bin, res.Version) == nil {
		return res
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(moddir, "", err)
	}
	unlock, err := lockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return fail(moddir, "", err)
	}
	defer unlock()
	// Another process may have built it while this one waited.
	if checkVersion(bin, res.Version) == nil {
		return res
	}
	// Left behind by a build that was killed: we hold the lock, so no one
	// else is writing them.
	if old, _ := filepath.Glob(filepath.Join(dir, ".nats-server.tmp-*")); len(old) > 0 {
		for _, f := range old {
			os.Remove(f)
		}
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".nats-server.tmp-%d", os.Getpid()))
	out, err := goBuild(moddir, tmp)
	res.Built = true
	if err != nil {
		os.Remove(tmp)
		return fail(moddir, out, fmt.Errorf("go build: %w", err))
	}
	if err := checkVersion(tmp, res.Version); err != nil {
		os.Remove(tmp)
		return fail(moddir, out, err)
	}
	if err := os.Rename(tmp, bin); err != nil {
		os.Remove(tmp)
		return fail(moddir, out, err)
	}
	return res
}

// goBuild builds the nats-server command inside the nested module, so its
// go.mod and go.sum (read-only) decide every dependency.
func goBuild(moddir, out string) (string, error) {
	// `go test` puts its own toolchain first on the test binary's PATH.
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("no go command on PATH: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", out, serverPkg)
	cmd.Dir = moddir
	cmd.SysProcAttr = sysProcAttr() // no orphaned build if the test process dies
	cmd.Env = append(os.Environ(),
		"GOWORK=off",
		"GOFLAGS=-mod=readonly",
		"CGO_ENABLED=0", // as nats-server's own release builds
	)
	b, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (after %s)", ctx.Err(), buildTimeout)
	}
	return string(b), err
}

// checkVersion runs `nats-server --version` and wants the pinned version:
// a truncated or foreign file in the cache fails here and is rebuilt.
func checkVersion(bin, version string) error {
	if !fileExists(bin) {
		return os.ErrNotExist
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s --version: %w: %s", bin, err, strings.TrimSpace(string(out)))
	}
	got := strings.TrimSpace(string(out))
	if f := strings.Fields(got); len(f) == 0 || f[len(f)-1] != "v"+version {
		return fmt.Errorf("%s --version printed %q, want v%s", bin, got, version)
	}
	return nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}
