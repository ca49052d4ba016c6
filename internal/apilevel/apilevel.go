// Package apilevel is what a target's JetStream API level offers and what
// the streams and consumers stanmigrate creates require of it (ADR-44).
// Each nats-server release line raises the level it answers with
// (account info's api.level: 1 on 2.11, 2 on 2.12, 4 on 2.14) and a
// server that does not know a setting drops it from the JSON it is sent,
// so a stream asked for fast-ingest batches on an older server would be
// created without them. Two uses follow: whether the target takes a
// feature is decided here, once, from the level (plan and migrate ask
// the same question); and stream creates carry the level their settings
// need in the Nats-Required-Api-Level header, which servers from 2.12 on
// check, refusing the request instead of ignoring what they lack.
package apilevel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/conn"
)

// Level is a JetStream API level.
type Level int

// The levels stanmigrate relies on, with the release that brought them
// (nats-server's jetstream_versioning.go says which setting needs which).
const (
	// MsgTTL: per-message TTL (allow_msg_ttl) and subject delete
	// markers, nats-server 2.11.
	MsgTTL Level = 1
	// Checked: the server checks Nats-Required-Api-Level on API
	// requests (nats-server 2.12, PR #7157); atomic batches, counters,
	// schedules and async persistence came with it.
	Checked Level = 2
	// FastBatches: fast-ingest batch publishing (allow_batched),
	// nats-server 2.14.
	FastBatches Level = 4
)

// Header is the request header that names the level a request needs.
const Header = "Nats-Required-Api-Level"

// Of is the level a target answered with (jetstream.AccountInfo.API.Level;
// 0 before 2.11, which has no levels).
func Of(ai *jetstream.AccountInfo) Level {
	if ai == nil {
		return 0
	}
	return Level(ai.API.Level)
}

// FastIngest reports whether the target takes fast-ingest batches: the one
// answer plan reports and migrate acts on.
func (l Level) FastIngest() bool { return l >= FastBatches }

// PerMessageTTL reports whether the target keeps a per-message TTL.
func (l Level) PerMessageTTL() bool { return l >= MsgTTL }

// ChecksRequired reports whether the target refuses a request that needs
// a higher level than its own (older servers ignore the header).
func (l Level) ChecksRequired() bool { return l >= Checked }

// ForStream is the level a stream config needs, by the settings
// stanmigrate may set.
func ForStream(cfg jetstream.StreamConfig) Level {
	var l Level
	if cfg.AllowMsgTTL || cfg.SubjectDeleteMarkerTTL > 0 {
		l = max(l, MsgTTL)
	}
	if cfg.AllowAtomicPublish || cfg.AllowMsgCounter || cfg.AllowMsgSchedules {
		l = max(l, Checked)
	}
	if cfg.AllowBatchPublish {
		l = max(l, FastBatches)
	}
	return l
}

// ForConsumer is the level a consumer config needs. The consumers
// stanmigrate creates (explicit acks, a start sequence, metadata, which
// came with 2.10) need none, so their creates carry no header.
func ForConsumer(cfg jetstream.ConsumerConfig) Level {
	var l Level
	if (cfg.PauseUntil != nil && !cfg.PauseUntil.IsZero()) || cfg.PriorityPolicy != jetstream.PriorityPolicyNone ||
		cfg.PinnedTTL != 0 || len(cfg.PriorityGroups) > 0 {
		l = max(l, MsgTTL)
	}
	return l
}

// CreateStream creates a stream through js's API (its domain or prefix
// included), sending Header with ForStream(cfg) when that is above 0: a
// server from 2.12 on that lacks a setting refuses the create (error
// 10185) instead of making a stream without it.
func CreateStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	if err := request(ctx, js, "STREAM.CREATE."+cfg.Name, cfg, ForStream(cfg)); err != nil {
		return nil, err
	}
	return js.Stream(ctx, cfg.Name)
}

// UpdateStream updates a stream as CreateStream creates one.
func UpdateStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	return request(ctx, js, "STREAM.UPDATE."+cfg.Name, cfg, ForStream(cfg))
}

// request sends one API request with the level it needs and returns the
// server's error, as the client library would.
func request(ctx context.Context, js jetstream.JetStream, op string, body any, need Level) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	o := js.Options()
	msg := nats.NewMsg(conn.API{Domain: o.Domain, Prefix: o.APIPrefix}.Subject() + op)
	msg.Data = data
	if need > 0 {
		msg.Header.Set(Header, strconv.Itoa(int(need)))
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		// The client's own default for its requests (5 s unless the
		// caller chose shorter, as migrate does to ride out failovers).
		ctx, cancel = context.WithTimeout(ctx, o.DefaultTimeout)
		defer cancel()
	}
	resp, err := js.Conn().RequestMsgWithContext(ctx, msg)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return jetstream.ErrJetStreamNotEnabled
		}
		return err
	}
	var r struct {
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return fmt.Errorf("%s: %w: %v", op, jetstream.ErrInvalidJetStreamResponse, err)
	}
	if r.Error == nil {
		return nil
	}
	switch r.Error.ErrorCode {
	case jetstream.JSErrCodeStreamNameInUse:
		return jetstream.ErrStreamNameAlreadyInUse
	case jetstream.JSErrCodeStreamNotFound:
		return jetstream.ErrStreamNotFound
	case requiredLevelErrCode:
		return fmt.Errorf("%w: the request needs JetStream API level %d (%s): %w", ErrLevel, need, need.Release(), r.Error)
	}
	return r.Error
}

// requiredLevelErrCode is JetStream's "minimum api level required".
const requiredLevelErrCode = 10185

// ErrLevel: the target refused a request for a setting its level lacks.
var ErrLevel = errors.New("the target's JetStream is too old for this setting")

// Release names the first nats-server release line with the level (the
// lines whose level stanmigrate relies on).
func (l Level) Release() string {
	switch l {
	case 0:
		return "any nats-server"
	case MsgTTL:
		return "nats-server 2.11"
	case Checked:
		return "nats-server 2.12"
	case FastBatches:
		return "nats-server 2.14"
	}
	return fmt.Sprintf("a nats-server of JetStream API level %d", int(l))
}
