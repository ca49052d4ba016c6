package source

import (
	"slices"
	"sort"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/jsformat"
)

// Sub is one subscription as a server lists it (monitoring) or stores it
// (a store directory), before durables are merged.
type Sub struct {
	ClientID string
	// Durable is a plain durable's name, or the durable name of a durable
	// queue group's member; QueueGroup its group (or a non-durable's).
	Durable      string
	QueueGroup   string
	IsDurable    bool
	Online       bool
	MaxInflight  int
	AckWait      time.Duration
	LastSent     uint64
	PendingCount int
	// Pending are the unacknowledged sequences when the source holds
	// them (HasPending); monitoring only gives PendingCount.
	Pending    []uint64
	HasPending bool
}

// Merge turns a channel's subscriptions into durables and non-durables,
// the way STAN itself sees them: one entry per plain durable; one per
// durable queue group, with the group's furthest last_sent, its members'
// pending merged, online if any member is (the online members listed);
// non-durables apart. When every sub carries its pending set, each durable
// gets its exact Stored position. Durables come sorted by Key.
func Merge(subs []Sub) ([]Durable, []NonDurable) {
	var out []Durable
	var nds []NonDurable
	var sets [][]uint64
	stored := len(subs) > 0
	groups := map[string]int{}
	for _, s := range subs {
		if !s.IsDurable {
			nds = append(nds, NonDurable{ClientID: s.ClientID, QueueGroup: s.QueueGroup})
			continue
		}
		stored = stored && s.HasPending
		if s.QueueGroup == "" {
			out = append(out, Durable{
				DurableID:   DurableID{ClientID: s.ClientID, Durable: s.Durable},
				Online:      s.Online,
				MaxInflight: s.MaxInflight, AckWait: s.AckWait,
				LastSent: s.LastSent, PendingCount: s.PendingCount,
			})
			sets = append(sets, slices.Clone(s.Pending))
			continue
		}
		key := s.Durable + ":" + s.QueueGroup
		i, ok := groups[key]
		if !ok {
			i = len(out)
			groups[key] = i
			out = append(out, Durable{DurableID: DurableID{Durable: s.Durable, QueueGroup: s.QueueGroup},
				MaxInflight: s.MaxInflight, AckWait: s.AckWait})
			sets = append(sets, nil)
		}
		g := &out[i]
		g.LastSent = max(g.LastSent, s.LastSent)
		g.PendingCount += s.PendingCount
		sets[i] = append(sets[i], s.Pending...)
		if s.Online {
			g.Online = true
			g.Members = append(g.Members, s.ClientID)
		} else if g.ClientID == "" {
			g.ClientID = s.ClientID
		}
	}
	for i := range out {
		d := &out[i]
		sort.Strings(d.Members)
		if stored {
			p := sets[i]
			slices.Sort(p)
			p = slices.Compact(p)
			d.PendingCount = len(p)
			d.Stored = &Position{LastSent: d.LastSent, Pending: p, How: jsformat.Stored}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out, nds
}
