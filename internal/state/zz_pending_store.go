// TEMPORARY (branch cutover): a stand-in for the lead's internal/state
// Store (issue 18) so verify's prefix can be built before it lands. Delete
// this file when merging main.
package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/stanmigrate/stanmigrate/internal/atomicfile"
)

var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

type Store interface {
	Get(ctx context.Context, key string) (value []byte, rev uint64, err error)
	Put(ctx context.Context, key string, value []byte, rev uint64) (uint64, error)
	Delete(ctx context.Context, key string) error
	Keys(ctx context.Context, prefix string) ([]string, error)
	String() string
	Close() error
}

const KindVerified = "verified"

func Key(kind, name string) string { return kind + "/" + name }

func NewDir(dir string) *Dir { return &Dir{Path: dir} }

// Dir is a directory store; revisions are not kept across processes.
type Dir struct{ Path string }

func (d Dir) file(key string) string { return filepath.Join(d.Path, filepath.FromSlash(key)+".json") }

func (d Dir) Get(_ context.Context, key string) ([]byte, uint64, error) {
	b, err := os.ReadFile(d.file(key))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	rb, _ := os.ReadFile(d.file(key) + ".rev")
	rev, _ := strconv.ParseUint(strings.TrimSpace(string(rb)), 10, 64)
	return b, max(rev, 1), nil
}

func (d Dir) Put(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	_, cur, err := d.Get(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		if rev != 0 {
			return 0, ErrConflict
		}
	case err != nil:
		return 0, err
	case cur != rev:
		return 0, ErrConflict
	}
	if err := os.MkdirAll(filepath.Dir(d.file(key)), 0o755); err != nil {
		return 0, err
	}
	if err := atomicfile.Write(d.file(key), value); err != nil {
		return 0, err
	}
	if err := atomicfile.Write(d.file(key)+".rev", []byte(strconv.FormatUint(cur+1, 10))); err != nil {
		return 0, err
	}
	return cur + 1, nil
}

func (d Dir) Delete(_ context.Context, key string) error {
	_ = os.Remove(d.file(key) + ".rev")
	return os.Remove(d.file(key))
}

func (d Dir) Keys(context.Context, string) ([]string, error) {
	return nil, fmt.Errorf("not in stand-in")
}
func (d Dir) String() string { return d.Path }
func (d Dir) Close() error   { return nil }
