// Package jsformat is what stanmigrate writes onto JetStream and reads back:
// the headers on migrated messages, the deduplication id, the metadata
// keys on the streams and consumers it creates, and the values that record
// how a consumer's start position was learned. migrate writes this format,
// plan and verify read it; keeping it in one leaf package means a reader
// never has to import the writer to understand what was written (as a
// backup tool keeps its repository format apart from backup and check).
package jsformat

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Headers on every migrated message.
const (
	// HdrTimestamp is the original STAN timestamp (RFC 3339 with
	// nanoseconds): JetStream stamps its own time on each message.
	HdrTimestamp = "Nats-Streaming-Timestamp"
	// HdrChannel and HdrSequence are stan2js's other two headers, kept
	// for applications written against data stan2js migrated.
	HdrChannel  = "Nats-Streaming-Channel"
	HdrSequence = "Nats-Streaming-Sequence"
	// HdrTTL is JetStream's per-message TTL (nats-server 2.11+, whole
	// seconds): on channels that keep STAN's deadlines, max_age minus
	// the message's age when copied.
	HdrTTL = "Nats-TTL"
	// HdrMsgID is JetStream's deduplication header.
	HdrMsgID = "Nats-Msg-Id"
	// HdrExpectedLastSeq makes JetStream refuse a message unless the
	// stream's last sequence is the given one: with one writer per
	// stream, stream sequence == channel sequence, and a resend is
	// answered "wrong last sequence" instead of being stored twice.
	HdrExpectedLastSeq = "Nats-Expected-Last-Sequence"
	// HdrGap marks a placeholder that keeps stream sequence == channel
	// sequence across a sequence STAN no longer has; migrate deletes it
	// once stored.
	HdrGap = "Stanmigrate-Gap"
)

// Header sets a plan can choose. The Msg-Id is apart (a plan's msg_id):
// exactly-once rests on the expected last sequence, and a Msg-Id costs the
// server a map entry per message.
const (
	HeadersFull    = "full"    // the three Nats-Streaming-* headers, as stan2js writes them
	HeadersMinimal = "minimal" // the original timestamp only
)

// Timestamp formats a STAN timestamp (nanoseconds since the epoch) for
// HdrTimestamp.
func Timestamp(unixNano int64) string {
	return time.Unix(0, unixNano).UTC().Format(time.RFC3339Nano)
}

// ErrNoTimestamp: a stored message carries no HdrTimestamp (it was not
// written by stanmigrate, or is a gap placeholder).
var ErrNoTimestamp = errors.New("no " + HdrTimestamp + " header")

// ReadTimestamp reads a stored message's original STAN time back from
// HdrTimestamp.
func ReadTimestamp(h map[string][]string) (time.Time, error) {
	v := h[HdrTimestamp]
	if len(v) == 0 || v[0] == "" {
		return time.Time{}, ErrNoTimestamp
	}
	t, err := time.Parse(time.RFC3339Nano, v[0])
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q is not an RFC 3339 time: %w", HdrTimestamp, v[0], err)
	}
	return t, nil
}

// IsGap reports whether a stored message is a gap placeholder (HdrGap).
func IsGap(h map[string][]string) bool {
	v := h[HdrGap]
	return len(v) > 0 && v[0] != ""
}

// MsgID is the deduplication id of a migrated message.
func MsgID(cluster, channel string, seq uint64) string {
	return MsgIDPrefix(cluster, channel) + strconv.FormatUint(seq, 10)
}

// MsgIDPrefix is the part of MsgID shared by every message of a channel,
// so the replay loop builds each id with a single concatenation.
func MsgIDPrefix(cluster, channel string) string { return cluster + ":" + channel + ":" }

// Metadata keys. Streams and consumers stanmigrate creates record their
// origin under these keys; anything without them was not made by us.
const (
	metaPrefix = "stanmigrate."
	// MetaChannel (streams and consumers) names the STAN channel.
	MetaChannel = metaPrefix + "channel"
	// MetaCluster (streams) names the STAN cluster id.
	MetaCluster = metaPrefix + "cluster"
	// Consumer origin: the durable it replaces.
	MetaClientID = metaPrefix + "client_id"
	MetaDurable  = metaPrefix + "durable"
	MetaQueue    = metaPrefix + "queue_group"
	// MetaStart is the start sequence as a decimal string.
	MetaStart = metaPrefix + "start_seq"
	// MetaPosition is how the start was learned (a Position).
	MetaPosition = metaPrefix + "position"
	// MetaSettled is "no" while migrate reproduces STAN's acknowledged set
	// on a new consumer and "yes" once done; a consumer left at "no" by a
	// crash is migrate's own half-built artifact and is rebuilt.
	MetaSettled = metaPrefix + "settled"
)

// Position says how a durable's start sequence is (or will be) known.
type Position string

const (
	// Exact: from last_sent alone, with nothing pending.
	Exact Position = "exact"
	// Probe: pending messages whose lowest sequence only a probe at
	// migrate time can tell (a plan's value, never a consumer's).
	Probe Position = "probe"
	// Probed: a probe of the live durable gave the pending set.
	Probed Position = "probed"
	// Stored: the stopped server's store files gave the pending set.
	Stored Position = "stored"
)

// StreamOrigin is what a stream's metadata says about where it came from.
type StreamOrigin struct {
	Channel, Cluster string
}

// StreamMetadata is the metadata of a stream made for a channel.
func StreamMetadata(cluster, channel string) map[string]string {
	return map[string]string{MetaChannel: channel, MetaCluster: cluster}
}

// ReadStreamOrigin reads a stream's metadata; ok is false when the stream
// carries none of ours.
func ReadStreamOrigin(md map[string]string) (o StreamOrigin, ok bool) {
	o = StreamOrigin{Channel: md[MetaChannel], Cluster: md[MetaCluster]}
	return o, o.Channel != "" || o.Cluster != ""
}

// ConsumerOrigin is what a migrated consumer's metadata records.
type ConsumerOrigin struct {
	Channel    string
	ClientID   string
	Durable    string
	QueueGroup string
	// Start is the recorded start sequence; StartText the raw value,
	// kept so a reader can say what it found when it is not a number.
	Start     uint64
	StartText string
	Position  Position
	// Settled is MetaSettled: "" when there was nothing to settle,
	// SettledNo while migrate reproduces STAN's acknowledged set (a
	// consumer left so by a crash is rebuilt), SettledYes once done.
	Settled string
}

// MetaSettled values.
const (
	SettledNo  = "no"
	SettledYes = "yes"
)

// Metadata is the metadata recording o on a consumer.
func (o ConsumerOrigin) Metadata() map[string]string {
	md := map[string]string{
		MetaChannel:  o.Channel,
		MetaClientID: o.ClientID,
		MetaDurable:  o.Durable,
		MetaQueue:    o.QueueGroup,
		MetaStart:    strconv.FormatUint(o.Start, 10),
		MetaPosition: string(o.Position),
	}
	if o.Settled != "" {
		md[MetaSettled] = o.Settled
	}
	return md
}

// ReadConsumerOrigin decodes a consumer's metadata; ok is false when it
// carries none of ours.
func ReadConsumerOrigin(md map[string]string) (o ConsumerOrigin, ok bool) {
	o = ConsumerOrigin{
		Channel: md[MetaChannel], ClientID: md[MetaClientID], Durable: md[MetaDurable], QueueGroup: md[MetaQueue],
		StartText: md[MetaStart], Position: Position(md[MetaPosition]), Settled: md[MetaSettled],
	}
	o.Start, _ = strconv.ParseUint(o.StartText, 10, 64)
	return o, o.Channel != ""
}

// StartValid reports whether the recorded start is a sequence.
func (o ConsumerOrigin) StartValid() bool {
	_, err := strconv.ParseUint(o.StartText, 10, 64)
	return err == nil
}

// Made reports whether the consumer was made for the given durable.
func (o ConsumerOrigin) Made(channel, durable, queueGroup string) bool {
	return o.Channel == channel && o.Durable == durable && o.QueueGroup == queueGroup
}

// Set puts one header value, reusing the value slice (no allocation once
// the key is there): the publish path reuses one header map.
func Set(h map[string][]string, key, value string) {
	if v := h[key]; len(v) == 1 {
		v[0] = value
		return
	}
	h[key] = []string{value}
}

// Carried is what every migrated message of one channel carries besides
// its payload, as the plan chose; Written reads it back.
type Carried struct {
	Channel string
	// Full: stan2js's channel and sequence headers besides the original
	// timestamp (HeadersFull).
	Full bool
	// MsgIDPrefix is MsgIDPrefix(cluster, channel) when the plan asks for
	// a Msg-Id on every message, empty otherwise.
	MsgIDPrefix string
}

// NewCarried is what messages of channel carry under the plan's header
// set and Msg-Id choice.
func NewCarried(cluster, channel, headers string, msgID bool) Carried {
	c := Carried{Channel: channel, Full: headers != HeadersMinimal}
	if msgID {
		c.MsgIDPrefix = MsgIDPrefix(cluster, channel)
	}
	return c
}

// Put sets on h what message seq (seqStr, its decimal form) carries: a
// gap placeholder its marker, a message its original timestamp and, with
// Full, its channel and sequence; either one its Msg-Id when asked. h may
// hold the previous message's headers: what this one does not carry goes.
func (c Carried) Put(h map[string][]string, seqStr string, timestamp int64, gap bool) {
	if c.MsgIDPrefix != "" {
		Set(h, HdrMsgID, c.MsgIDPrefix+seqStr)
	}
	if gap {
		Set(h, HdrGap, "true")
		delete(h, HdrChannel)
		delete(h, HdrSequence)
		delete(h, HdrTimestamp)
		return
	}
	delete(h, HdrGap)
	if c.Full {
		Set(h, HdrChannel, c.Channel)
		Set(h, HdrSequence, seqStr)
	}
	Set(h, HdrTimestamp, Timestamp(timestamp))
}

// Written reports whether a stored message's headers say stanmigrate
// wrote it as sequence seq of channel (of cluster), so that a stream is
// never extended over data that is not ours. What a message carries
// depends on the plan's headers: a Msg-Id (cluster, channel and sequence),
// stan2js's channel and sequence headers, or only the original timestamp;
// then the stream's own metadata (streamOurs) must say it was made for
// the channel. A gap placeholder is ours by its marker.
func Written(h map[string][]string, streamOurs bool, cluster, channel string, seq uint64) bool {
	get := func(k string) string {
		if v := h[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	seqStr := strconv.FormatUint(seq, 10)
	switch {
	case get(HdrGap) != "":
		return streamOurs || get(HdrMsgID) == MsgID(cluster, channel, seq)
	case get(HdrMsgID) != "":
		return get(HdrMsgID) == MsgID(cluster, channel, seq)
	case get(HdrChannel) != "" || get(HdrSequence) != "":
		return get(HdrChannel) == channel && get(HdrSequence) == seqStr
	case get(HdrTimestamp) != "":
		return streamOurs
	}
	return false
}
