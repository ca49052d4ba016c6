package migrate

import (
	"errors"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/apilevel"
	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/state"
)

// Sentinel errors the command branches on.
var (
	ErrBlocked     = errors.New("the plan has blockers")
	ErrChannelGone = errors.New("channel no longer exists on STAN")
	ErrConflict    = errors.New("conflict on the target")
	ErrTooLarge    = errors.New("message too large for the target")
	ErrStorage     = errors.New("target storage or stream limit reached")
	ErrOwnerOnline = errors.New("durable owner is online")
	ErrStreamLost  = errors.New("stream lost messages")
	// ErrUnreadable: the source cannot read a channel's files.
	ErrUnreadable = errors.New("channel unreadable in the STAN directory")
)

// permanent marks errors that retrying cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

func isPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p) || errors.Is(err, conn.ErrAuth) || errors.Is(err, conn.ErrPermission) ||
		errors.Is(err, conn.ErrTLS) || errors.Is(err, conn.ErrWrongCluster) || errors.Is(err, conn.ErrNoJetStream) ||
		errors.Is(err, conn.ErrBadConfig) || errors.Is(err, apilevel.ErrLevel) || errors.Is(err, state.ErrStale)
}

// isLimitErr recognises the target refusing for lack of room or a limit,
// which no retry fixes. The client library does not map every such answer
// to a code, hence the text match.
func isLimitErr(err error) bool {
	if err == nil {
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeMaximumConsumersLimit, 10027 /* maximum number of streams */, 10047 /* insufficient storage */ :
			return true
		}
	}
	m := strings.ToLower(err.Error())
	if strings.Contains(m, "maximum number of streams") || strings.Contains(m, "maximum consumers") {
		return true
	}
	return strings.Contains(m, "insufficient resources") || strings.Contains(m, "maximum bytes") ||
		strings.Contains(m, "maximum messages") || strings.Contains(m, "storage resources exceeded") ||
		strings.Contains(m, "no space")
}
