package state

import (
	"context"
	"errors"
)

// SavedPlan returns the plan text the first run saved, or nil.
func SavedPlan(ctx context.Context, st Store) ([]byte, error) {
	b, _, err := st.Get(ctx, PlanKey)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return b, err
}

// SavePlan records the plan text, replacing whatever was there.
func SavePlan(ctx context.Context, st Store, text []byte) error {
	for {
		old, rev, err := st.Get(ctx, PlanKey)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err == nil && string(old) == string(text) {
			return nil
		}
		if _, err = st.Put(ctx, PlanKey, text, rev); !errors.Is(err, ErrConflict) {
			return err
		}
	}
}
