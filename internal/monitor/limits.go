package monitor

import (
	"strings"
	"time"
)

// ChannelLimits mirrors STAN's per-channel limits as storez reports them.
// 0 means unlimited.
type ChannelLimits struct {
	MaxMsgs          int           `json:"max_msgs"`
	MaxBytes         int64         `json:"max_bytes"`
	MaxAge           time.Duration `json:"max_age"` // nanoseconds in JSON
	MaxSubscriptions int           `json:"max_subscriptions"`
	MaxInactivity    time.Duration `json:"max_inactivity"`
}

// StoreLimits mirrors storez "limits": the global channel limits flattened
// next to max_channels, and per-channel limits keyed by channel name or
// wildcard pattern.
//
// In a STAN configuration a per-channel 0 means "inherit" and a negative
// value "unlimited". The server resolves that (stores.StoreLimits.Build,
// called on the reported copy when the server starts serving): each entry
// inherits, field by field, from the next wider pattern matching it, up to
// the global limits, and negatives become 0. So in storez from a running
// server every per-channel value is final and 0 means unlimited, even where
// the global limit is set. ForChannel relies on that and does not inherit
// again (it cannot: a resolved 0 is indistinguishable from an unresolved
// one). Only an FT standby reports the raw configuration.
type StoreLimits struct {
	MaxChannels int `json:"max_channels"`
	ChannelLimits
	PerChannel map[string]*ChannelLimits `json:"channels,omitempty"`
}

// ForChannel returns the limits STAN applies to the literal channel name and
// the per-channel key they come from ("" for the global limits).
//
// STAN (stores/common.go getChannelLimits) matches the name against every
// key with NATS subject rules — "*" one token, ">" one or more trailing
// tokens — and takes the last match of its sublist, whose order
// (util/sublist.go matchLevel) is: at each token position, ">" entries
// first, then entries with "*" there, then entries with the literal token.
// The winner is therefore decided at the first token where two matching
// keys differ, literal beating "*" beating ">". Consequences:
//
//	a.b beats a.* beats a.> beats *.b beats *.> beats >
//
// Note a.> beats *.b for channel a.b: the leftmost difference decides, not
// how many channels a pattern can match. A literal key equal to the name
// always wins.
//
// Negative values (only seen in an FT standby's raw configuration) are
// reported as 0, unlimited, which is what STAN would make of them.
func (l StoreLimits) ForChannel(name string) (ChannelLimits, string) {
	if cl, ok := l.PerChannel[name]; ok && cl != nil {
		return cl.normalized(), name
	}
	nameToks := strings.Split(name, ".")
	var best []string
	bestKey := ""
	for key, cl := range l.PerChannel {
		if cl == nil {
			continue
		}
		toks := strings.Split(key, ".")
		if !subjectMatches(toks, nameToks) {
			continue
		}
		if best == nil || narrower(toks, best) || (!narrower(best, toks) && key > bestKey) {
			best, bestKey = toks, key
		}
	}
	if best == nil {
		return l.ChannelLimits.normalized(), ""
	}
	return l.PerChannel[bestKey].normalized(), bestKey
}

func (cl ChannelLimits) normalized() ChannelLimits {
	cl.MaxMsgs = max(cl.MaxMsgs, 0)
	cl.MaxBytes = max(cl.MaxBytes, 0)
	cl.MaxAge = max(cl.MaxAge, 0)
	cl.MaxSubscriptions = max(cl.MaxSubscriptions, 0)
	cl.MaxInactivity = max(cl.MaxInactivity, 0)
	return cl
}

// subjectMatches reports whether pattern tokens match literal tokens.
func subjectMatches(pattern, literal []string) bool {
	for i, p := range pattern {
		if p == ">" {
			return i == len(pattern)-1 && len(literal) > i
		}
		if i >= len(literal) || (p != "*" && p != literal[i]) {
			return false
		}
	}
	return len(pattern) == len(literal)
}

// narrower reports whether pattern a comes after b in STAN's match order,
// both being known to match the same channel.
func narrower(a, b []string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if ra, rb := tokenRank(a[i]), tokenRank(b[i]); ra != rb {
			return ra > rb
		}
	}
	return false // identical ranks: two matching keys can only be equal
}

func tokenRank(t string) int {
	switch t {
	case ">":
		return 0
	case "*":
		return 1
	}
	return 2
}
