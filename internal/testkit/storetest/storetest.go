// Package storetest builds STAN file store directories for tests: a real
// embedded server seeded from a fixture and then stopped, copies of its
// directory, checksums proving a directory unchanged, and controlled
// damage to its files.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"
	stand "github.com/nats-io/nats-streaming-server/server"

	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/monitor"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
)

// Seeded is a STAN file store directory built from a fixture on a real
// server that has since been stopped.
type Seeded struct {
	// Dir is the stopped server's store directory. Tests must not change
	// it: copy it (CopyDir) to damage or migrate from.
	Dir  string
	Spec *fixture.Spec
	// Live is what the server's monitoring reported just before it was
	// stopped.
	Live []*monitor.Channelz
	// STAN is the stopped server; Start revives it on Dir.
	STAN *embedded.STAN
}

// SliceMaxMsgs makes the server split each channel's messages into files
// of at most n messages (file_options slice_max_msgs), so that a fixture
// spans several message files and the server deletes whole files when
// limits drop messages.
func SliceMaxMsgs(n int) func(*stand.Options, *natsd.Options) {
	return func(o *stand.Options, _ *natsd.Options) { o.FileStoreOpts.SliceMaxMsgs = n }
}

// Seed starts STAN with a file store under root, seeds the fixture,
// records monitoring, and stops the server with the fixture's online
// clients still registered (as an operator stopping the server would).
// configure, when not nil, adjusts the server's options.
func Seed(ctx context.Context, root, fixturePath string, configure func(*stand.Options, *natsd.Options)) (*Seeded, error) {
	spec, err := fixture.Load(fixturePath)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, "stan")
	st, err := embedded.StartSTAN(embedded.STANConfig{Dir: dir, Limits: spec.StoreLimits(), Configure: configure})
	if err != nil {
		return nil, err
	}
	seeded, err := fixture.Seed(ctx, st.URL(), st.ClusterID(), spec, fixture.WithMonitor(st.MonitorURL()))
	if err != nil {
		st.Stop()
		return nil, fmt.Errorf("seed %s: %w", fixturePath, err)
	}
	live, err := monitor.New(st.MonitorURL(), nil).Channels(ctx, 0)
	st.Stop()
	// The online owners' connections are dead with the server; closing
	// them only releases client resources.
	go seeded.Close()
	if err != nil {
		return nil, err
	}
	return &Seeded{Dir: dir, Spec: spec, Live: live, STAN: st}, nil
}

// LiveChannel returns the monitoring entry of a channel.
func (s *Seeded) LiveChannel(name string) *monitor.Channelz {
	for _, c := range s.Live {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// CopyDir copies a directory tree (regular files and directories).
func CopyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

// Sums maps every entry under a directory to the SHA-256 of its content
// ("dir" for directories), its mode and its modification time, so that
// any created, removed, renamed, truncated or rewritten file shows.
func Sums(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		stamp := fmt.Sprintf(" %v %d", info.Mode(), info.ModTime().UnixNano())
		if d.IsDir() {
			out[rel] = "dir" + stamp
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		out[rel] = hex.EncodeToString(h.Sum(nil)) + stamp
		return nil
	})
	if err != nil {
		t.Fatalf("checksum %s: %v", root, err)
	}
	return out
}

// SameSums fails the test with every difference between two Sums.
func SameSums(t testing.TB, before, after map[string]string) {
	t.Helper()
	for p, b := range before {
		a, ok := after[p]
		switch {
		case !ok:
			t.Errorf("%s was removed", p)
		case a != b:
			t.Errorf("%s changed: %s -> %s", p, b, a)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s was created", p)
		}
	}
}

// FlipByte inverts one byte of a file at offset (negative: from the end).
func FlipByte(t testing.TB, path string, offset int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if offset < 0 {
		offset += int64(len(b))
	}
	b[offset] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Truncate cuts a file by n bytes.
func Truncate(t testing.TB, path string, n int64) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, st.Size()-n); err != nil {
		t.Fatal(err)
	}
}

// Append adds bytes at the end of a file.
func Append(t testing.TB, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

// Timeout is a context for one test's seeding.
func Timeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
