package changlob

import (
	"slices"
	"strings"
	"testing"
)

func TestSelector(t *testing.T) {
	names := []string{"orders.eu", "orders.us", "orders.eu.x", "payments", "audit.log"}
	for _, tt := range []struct {
		sel       Selector
		want      []string
		unmatched []string
	}{
		{Selector{}, names, nil},
		{Selector{Include: []string{"orders.*"}}, []string{"orders.eu", "orders.us", "orders.eu.x"}, nil},
		{Selector{Include: []string{"orders.??", "payments"}, Exclude: []string{"*.us"}}, []string{"orders.eu", "payments"}, nil},
		{Selector{Exclude: []string{"audit.*", "orders.*.*"}}, []string{"orders.eu", "orders.us", "payments"}, nil},
		{Selector{Include: []string{"typo*", "payments"}}, []string{"payments"}, []string{"typo*"}},
	} {
		var got []string
		for _, n := range names {
			if tt.sel.Match(n) {
				got = append(got, n)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%+v keeps %v, want %v", tt.sel, got, tt.want)
		}
		if u := tt.sel.Unmatched(names); !slices.Equal(u, tt.unmatched) {
			t.Errorf("%+v: unmatched %v, want %v", tt.sel, u, tt.unmatched)
		}
	}
}

func TestCheck(t *testing.T) {
	if err := Check([]string{"orders.*", "a?c", "[ab]"}); err != nil {
		t.Errorf("valid globs refused: %v", err)
	}
	if err := Check([]string{"ok", "orders["}); err == nil || !strings.Contains(err.Error(), `"orders[" is not a valid glob`) {
		t.Errorf("bad glob: %v", err)
	}
}
