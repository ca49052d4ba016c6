package migrate

import "runtime"

// Defaults and ranges of Options, which Run applies and the command
// line's flags and help read.
var (
	// DefaultParallel is how many channels replay at once when nothing
	// says: each channel is one sequential pipeline (ordered by
	// sequence), and several at once keep both servers busy. Memory is
	// bounded by WindowBytes across them, not per channel.
	DefaultParallel = max(runtime.NumCPU(), 8)
)

const (
	// DefaultWindow is Options.Window when nothing says; MinWindow and
	// MaxWindow bound it.
	DefaultWindow        = 8192
	MinWindow, MaxWindow = 16, 1 << 20
	// DefaultWindowBytes is Options.WindowBytes when nothing says.
	DefaultWindowBytes = 32 << 20
)

// Positions say how far a consumer reproduces its durable's state.
const (
	// PositionsExact acknowledges on the consumer what STAN had
	// acknowledged past the start: only the pending are redelivered.
	PositionsExact = "exact"
	// PositionsLowestUnacked starts at the lowest unacknowledged sequence
	// (at-least-once): acknowledged messages past it come again.
	PositionsLowestUnacked = "lowest-unacked"
	// DefaultPositions is the default.
	DefaultPositions = PositionsExact
)
