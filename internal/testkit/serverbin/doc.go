// Package serverbin runs real nats-server processes of every supported
// release line (2.10, 2.11, 2.12 and the current 2.15) for tests: each
// line's nats-server is built from the Go module proxy once per machine,
// cached, and started as a separate process that a test can SIGKILL and
// restart on the same port and store directory.
//
// One Go module can require only one version of nats-server, so each line
// is pinned by a nested module, lines/v2_NN/go.mod and go.sum, and built
// there with `go build github.com/nats-io/nats-server/v2` (read-only
// go.sum, GOWORK=off, CGO_ENABLED=0). A directory with its own go.mod is
// not part of the main module: `go vet ./...` and `go test ./...` of
// stanmigrate do not enter lines/ (TestNestedModulesStayOutOfMainModule).
//
// Binaries are cached under $STANMIGRATE_NATS_SERVER_CACHE, by default
// os.UserCacheDir()/stanmigrate/nats-server (~/.cache/stanmigrate/nats-server
// on Linux), in <version>-<goos>-<goarch>-<digest of go.mod and go.sum>/.
// A flock on the entry's .lock file makes concurrent test processes build
// once; the binary is written to a temporary name and renamed into place,
// and is reused only if `nats-server --version` prints the pinned version.
//
// A TestMain calls Prepare() first so that the builds run in the background
// while other tests do; Start(t, line, opts) then waits for its line and
// fails the test (never skips it) with the line, the version and the tail
// of the build output if the line could not be built. Summary() lists
// which lines were built, cached or not built.
//
// See README.md beside this file for bumping a pinned version.
package serverbin
