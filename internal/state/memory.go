package state

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Memory is a Store that lives as long as the process: for a run that
// keeps no state (library callers that ask for none).
type Memory struct {
	mu   sync.Mutex
	rev  uint64
	vals map[string]memValue
}

type memValue struct {
	b   []byte
	rev uint64
}

// NewMemory returns an empty store.
func NewMemory() *Memory { return &Memory{vals: map[string]memValue{}} }

func (m *Memory) String() string { return "memory (nothing kept after the run)" }

func (m *Memory) Get(_ context.Context, key string) ([]byte, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.vals[key]
	if !ok {
		return nil, 0, ErrNotFound
	}
	return append([]byte(nil), v.b...), v.rev, nil
}

func (m *Memory) Put(_ context.Context, key string, value []byte, rev uint64, _ ...PutOption) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.vals[key].rev != rev {
		return 0, fmt.Errorf("%s: %w", key, ErrConflict)
	}
	m.rev++
	m.vals[key] = memValue{b: append([]byte(nil), value...), rev: m.rev}
	return m.rev, nil
}

func (m *Memory) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.vals, key)
	return nil
}

func (m *Memory) Keys(_ context.Context, kind string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.vals {
		if k == kind || strings.HasPrefix(k, kind+".") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

func (m *Memory) Destroy(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.vals = map[string]memValue{}
	return nil
}
