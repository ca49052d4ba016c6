package verify

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/stanmigrate/stanmigrate/plan"
)

// Report is the outcome of a run.
type Report struct {
	Channels    []ChannelReport  `json:"channels"`
	Consumers   []ConsumerReport `json:"consumers"`
	Differences int              `json:"differences"`
	OK          bool             `json:"ok"`
}

// Side is what one side holds for a channel.
type Side struct {
	Msgs     uint64 `json:"msgs"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	// SHA256 is the digest.Channel sum over every message read; empty in
	// sample mode.
	SHA256 string `json:"sha256,omitempty"`
}

// ChannelReport compares one channel with its stream. The stream's name is
// "stream_name" in JSON because "stream" holds the stream side.
type ChannelReport struct {
	Channel string `json:"channel"`
	Stream  string `json:"stream_name"`
	Source  Side   `json:"stan"`
	Target  Side   `json:"stream"`
	// The first differing sequences of each kind, ascending: Missing are
	// on STAN but not in the stream, Extra in the stream but not on STAN,
	// Changed in both with a different subject or payload.
	Missing      []uint64 `json:"missing,omitempty"`
	Extra        []uint64 `json:"extra,omitempty"`
	Changed      []uint64 `json:"changed,omitempty"`
	MissingCount uint64   `json:"missing_count"`
	ExtraCount   uint64   `json:"extra_count"`
	ChangedCount uint64   `json:"changed_count"`
	OK           bool     `json:"ok"`
	// Problem is a one-line summary when !OK, naming the channel and the
	// first differing sequences.
	Problem string `json:"problem,omitempty"`
	// Sampled is how many sequences were checked in sample mode.
	Sampled int `json:"sampled,omitempty"`
	// Earlier is how many of the channel's messages an earlier verify
	// had found identical (its verified prefix, through EarlierSeq); Read
	// is how many this run compared.
	Earlier    uint64 `json:"verified_earlier"`
	EarlierSeq uint64 `json:"verified_through,omitempty"`
	Read       uint64 `json:"read_now"`
	// PrefixNote says why a recorded prefix was not used.
	PrefixNote string `json:"prefix_note,omitempty"`
	// Expired counts messages found on one side only and past their
	// deadline (STAN timestamp + max_age) when compared: dropped by that
	// side's expiry, not lost, and left out of both hashes.
	Expired uint64 `json:"expired,omitempty"`

	// ageLimited: the channel has a max_age, so each side's first
	// sequence moves on its own as messages expire; what lies between
	// the two is compared message by message (see expiry).
	ageLimited bool

	notes []string // facts that make the channel differ beyond sequences
}

// ConsumerReport compares one durable with its consumer.
type ConsumerReport struct {
	Channel  string `json:"channel"`
	Stream   string `json:"stream"`
	Durable  string `json:"durable"` // plan.Durable.Key()
	Consumer string `json:"consumer"`
	// Expected and Actual are start sequences: where STAN would resume the
	// durable, and the consumer's DeliverByStartSequence.
	Expected uint64 `json:"expected_start"`
	Actual   uint64 `json:"actual_start"`
	Position string `json:"position,omitempty"`
	OK       bool   `json:"ok"`
	Problem  string `json:"problem,omitempty"`
}

// finish decides OK and writes the one-line summary.
func finish(r *ChannelReport, b bounds, noStream bool) {
	if b.gone {
		r.notes = append([]string{"the channel no longer exists on STAN"}, r.notes...)
	}
	if noStream {
		r.notes = append([]string{fmt.Sprintf("stream %q does not exist on the target", r.Stream)}, r.notes...)
	}
	sameFirst := r.Source.FirstSeq == r.Target.FirstSeq || r.ageLimited
	sameShape := r.Source.Msgs == r.Target.Msgs && sameFirst && r.Source.LastSeq == r.Target.LastSeq
	r.OK = sameShape && len(r.notes) == 0 && r.MissingCount+r.ExtraCount+r.ChangedCount == 0
	if r.OK {
		return
	}
	parts := slices.Clone(r.notes)
	if r.MissingCount > 0 {
		parts = append(parts, seqPhrase(r.MissingCount, r.Missing, "missing from the stream", "missing from the stream"))
	}
	if r.ExtraCount > 0 {
		parts = append(parts, seqPhrase(r.ExtraCount, r.Extra, "in the stream but not on STAN", "in the stream but not on STAN"))
	}
	if r.ChangedCount > 0 {
		parts = append(parts, seqPhrase(r.ChangedCount, r.Changed, "differs (subject or payload)", "differ (subject or payload)"))
	}
	if !sameShape {
		parts = append(parts, fmt.Sprintf("STAN has %s, the stream %s", shape(r.Source), shape(r.Target)))
	}
	r.Problem = fmt.Sprintf("channel %q (stream %q): %s", r.Channel, r.Stream, strings.Join(parts, "; "))
}

func seqPhrase(n uint64, seqs []uint64, one, many string) string {
	if n == 1 && len(seqs) == 1 {
		return fmt.Sprintf("sequence %d %s", seqs[0], one)
	}
	list := make([]string, len(seqs))
	for i, s := range seqs {
		list[i] = strconv.FormatUint(s, 10)
	}
	more := ""
	if n > uint64(len(seqs)) {
		more = ", ..."
	}
	return fmt.Sprintf("%d sequences %s: %s%s", n, many, strings.Join(list, ", "), more)
}

func shape(s Side) string {
	if s.Msgs == 0 {
		return fmt.Sprintf("no messages (first %d, last %d)", s.FirstSeq, s.LastSeq)
	}
	return fmt.Sprintf("%d message(s) %d..%d", s.Msgs, s.FirstSeq, s.LastSeq)
}

// unreadable reports a channel the source cannot read: a difference, so
// that a verification never passes over it silently.
func unreadable(c *plan.Channel, err error) *ChannelReport {
	return &ChannelReport{Channel: c.Name, Stream: c.Stream,
		Problem: fmt.Sprintf("channel %q (stream %q): cannot be read from the STAN source: %v", c.Name, c.Stream, err)}
}
