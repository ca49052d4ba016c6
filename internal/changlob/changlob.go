// Package changlob selects channels by name with globs, the one selector
// behind plan --channel/--exclude, fixture capture --channel and the plan
// options. A glob is path.Match's: * matches any run of characters but
// '/', dots included, so orders.* matches orders.eu and orders.eu.x.
package changlob

import (
	"fmt"
	"path"
)

// Check returns an error naming the first glob path.Match cannot read:
// matching with it would silently select (or leave out) nothing.
func Check(globs []string) error {
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("%q is not a valid glob: %w", g, err)
		}
	}
	return nil
}

// Selector keeps the channels that match one of Include (every channel
// when Include is empty) and none of Exclude.
type Selector struct {
	Include, Exclude []string
}

// Match says whether the selector keeps the channel called name.
func (s Selector) Match(name string) bool {
	return (len(s.Include) == 0 || matchAny(s.Include, name)) && !matchAny(s.Exclude, name)
}

// Unmatched lists the Include globs that match none of names: an empty
// selection is almost always a typo.
func (s Selector) Unmatched(names []string) []string {
	var out []string
	for _, g := range s.Include {
		if !matchAnyName(g, names) {
			out = append(out, g)
		}
	}
	return out
}

func matchAny(globs []string, name string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

func matchAnyName(glob string, names []string) bool {
	for _, n := range names {
		if ok, _ := path.Match(glob, n); ok {
			return true
		}
	}
	return false
}
