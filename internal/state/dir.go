package state

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/stanmigrate/stanmigrate/internal/atomicfile"
)

// Dir is a Store in a local directory, one file per key, each written
// atomically. The plan is plan.yaml and checkpoints are <stream>.json at
// the top, as earlier versions wrote them; other kinds get a
// subdirectory. A revision is a hash of the file's content, so a
// compare-and-set holds across processes sharing the directory (under an
// advisory lock) without a revision file beside each value.
type Dir struct{ path string }

// NewDir returns the store in dir; nothing is created until a write.
func NewDir(dir string) *Dir { return &Dir{path: dir} }

func (d *Dir) String() string { return "state directory " + d.path }

// Path is the directory.
func (d *Dir) Path() string { return d.path }

func (d *Dir) file(key string) string {
	kind, name := Kind(key), Name(key)
	switch {
	case key == PlanKey:
		return filepath.Join(d.path, "plan.yaml")
	case kind == KindCheckpoint:
		return filepath.Join(d.path, name+".json")
	default:
		return filepath.Join(d.path, kind, name+".json")
	}
}

func revision(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64() | 1
}

func (d *Dir) Get(_ context.Context, key string) ([]byte, uint64, error) {
	b, err := os.ReadFile(d.file(key))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", d.file(key), err)
	}
	return b, revision(b), nil
}

// dirLocks serialises compare-and-set within the process; the file lock
// does it across processes.
var dirLocks sync.Map

func (d *Dir) lock() (func(), error) {
	mu, _ := dirLocks.LoadOrStore(filepath.Clean(d.path), &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	if err := os.MkdirAll(d.path, 0o700); err != nil {
		mu.(*sync.Mutex).Unlock()
		return nil, fmt.Errorf("create state directory %s: %w", d.path, err)
	}
	unlock, err := lockFile(filepath.Join(d.path, ".lock"))
	if err != nil {
		mu.(*sync.Mutex).Unlock()
		return nil, err
	}
	return func() { unlock(); mu.(*sync.Mutex).Unlock() }, nil
}

func (d *Dir) Put(ctx context.Context, key string, value []byte, rev uint64, _ ...PutOption) (uint64, error) {
	unlock, err := d.lock()
	if err != nil {
		return 0, err
	}
	defer unlock()
	_, cur, err := d.Get(ctx, key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return 0, err
	}
	if cur != rev {
		return 0, fmt.Errorf("%s: %w", d.file(key), ErrConflict)
	}
	if err := atomicfile.Write(d.file(key), value); err != nil {
		return 0, err
	}
	return revision(value), nil
}

func (d *Dir) Delete(_ context.Context, key string) error {
	err := os.Remove(d.file(key))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", d.file(key), err)
	}
	return nil
}

func (d *Dir) Keys(_ context.Context, kind string) ([]string, error) {
	if kind == KindPlan {
		if _, err := os.Stat(d.file(PlanKey)); err == nil {
			return []string{PlanKey}, nil
		}
		return nil, nil
	}
	dir := filepath.Join(d.path, kind)
	if kind == KindCheckpoint {
		dir = d.path
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state directory %s: %w", dir, err)
	}
	var keys []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".json") || strings.HasPrefix(n, ".") {
			continue
		}
		keys = append(keys, Key(kind, strings.TrimSuffix(n, ".json")))
	}
	sort.Strings(keys)
	return keys, nil
}

// Destroy removes the files this store wrote, then the directory if
// nothing else is left in it.
func (d *Dir) Destroy(ctx context.Context) error {
	for _, kind := range []string{KindPlan, KindCheckpoint, KindLease, KindVerified} {
		keys, err := d.Keys(ctx, kind)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := d.Delete(ctx, k); err != nil {
				return err
			}
		}
		if kind != KindPlan && kind != KindCheckpoint {
			_ = os.Remove(filepath.Join(d.path, kind))
		}
	}
	_ = os.Remove(filepath.Join(d.path, ".lock"))
	_ = os.Remove(d.path)
	return nil
}
