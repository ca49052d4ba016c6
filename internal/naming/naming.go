// Package naming holds the rules that turn STAN names into JetStream names.
package naming

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
)

// MaxNameLen is JetStream's limit for stream and consumer names.
const MaxNameLen = 255

// Legal makes name acceptable as a JetStream stream or consumer name:
// characters JetStream forbids (subject tokens, wildcards, whitespace and
// path separators, since names become directory names on the file store)
// become '_'. Names longer than MaxNameLen keep a prefix plus a hash of the
// whole name, so the mapping stays deterministic and distinct.
func Legal(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for _, r := range name {
		switch {
		case r == '.' || r == '*' || r == '>' || r == '/' || r == '\\' || unicode.IsSpace(r) || unicode.IsControl(r):
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	out := b.String()
	if out == "" {
		out = "_"
	}
	if len(out) > MaxNameLen {
		sum := sha256.Sum256([]byte(name))
		suffix := "_" + hex.EncodeToString(sum[:6])
		out = out[:MaxNameLen-len(suffix)] + suffix
	}
	return out
}

// StreamName is the default stream name for a channel.
func StreamName(channel string) string { return Legal(channel) }

// ConsumerName is the default consumer name for a durable: the client id
// and durable name for a plain durable, the group and durable name for a
// durable queue group (whose members share one consumer).
func ConsumerName(clientID, durable, queueGroup string) string {
	if queueGroup != "" {
		return Legal(queueGroup + "_" + durable)
	}
	return Legal(clientID + "_" + durable)
}

// Collisions groups names that JetStream (or a case-insensitive file
// system under the store) would treat as one. Only groups with more than
// one member are returned, keyed by the folded name.
func Collisions(names map[string]string) map[string][]string {
	byFold := map[string][]string{}
	for owner, n := range names {
		k := strings.ToLower(n)
		byFold[k] = append(byFold[k], owner)
	}
	out := map[string][]string{}
	for k, owners := range byFold {
		if len(owners) > 1 {
			sortStrings(owners)
			out[k] = owners
		}
	}
	return out
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// SubjectsOverlap reports whether two NATS subjects (either may hold
// wildcards) can match a common subject.
func SubjectsOverlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		if i == len(at) || i == len(bt) {
			return len(at) == len(bt)
		}
		x, y := at[i], bt[i]
		if x == ">" || y == ">" {
			return true
		}
		if x != "*" && y != "*" && x != y {
			return false
		}
	}
}
