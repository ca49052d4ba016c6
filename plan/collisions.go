package plan

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/stanmigrate/stanmigrate/internal/naming"
)

// checkCollisions reports channels whose stream names, and durables whose
// consumer names, JetStream would take for one.
func checkCollisions(p *Plan, add func(sev, obj, format string, args ...any)) {
	names := map[string]string{}
	for _, c := range p.Channels {
		if !c.Skip {
			names[c.Name] = c.Stream
		}
	}
	groups := naming.Collisions(names)
	folds := make([]string, 0, len(groups))
	for k := range groups {
		folds = append(folds, k)
	}
	sort.Strings(folds)
	for _, k := range folds {
		owners := groups[k]
		var streams []string
		for _, o := range owners {
			if !slices.Contains(streams, names[o]) {
				streams = append(streams, names[o])
			}
		}
		if len(streams) == 1 {
			add(Blocker, "channels "+strings.Join(owners, ", "), "map to the same stream name %q: rename the streams in the plan", streams[0])
			continue
		}
		add(Blocker, "channels "+strings.Join(owners, ", "), "map to stream names %s, which differ only in case (one stream to JetStream tooling and on case-insensitive file systems): rename the streams in the plan", quoted(streams))
	}
	for _, c := range p.Channels {
		cons := map[string][]string{}
		var order []string
		for _, d := range c.Durables {
			k := strings.ToLower(d.Consumer)
			if _, ok := cons[k]; !ok {
				order = append(order, k)
			}
			cons[k] = append(cons[k], d.Key())
		}
		for _, k := range order {
			if ks := cons[k]; len(ks) > 1 {
				add(Blocker, fmt.Sprintf("channel %q", c.Name), "durables %s map to the same consumer name: rename the consumers in the plan", strings.Join(ks, ", "))
			}
		}
	}
}

func quoted(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
