// Package conn opens connections to the STAN source and the JetStream
// target from one description per side, and classifies connection
// failures so the command can say what to fix.
package conn

import "errors"

// Sentinel errors callers branch on (the command maps them to exit 2).
var (
	ErrUnreachable  = errors.New("server unreachable")
	ErrAuth         = errors.New("authentication failed")
	ErrPermission   = errors.New("permission denied")
	ErrTLS          = errors.New("TLS handshake failed")
	ErrWrongCluster = errors.New("no NATS Streaming server answered for this cluster id")
	ErrNoJetStream  = errors.New("JetStream is not enabled")
	ErrBadConfig    = errors.New("bad connection settings")
)
