package migrate

import (
	"time"

	"github.com/stanmigrate/stanmigrate/internal/state"
)

// Summary is the outcome of a run.
type Summary struct {
	Channels []*ChannelResult `json:"channels"`
	Copied   uint64           `json:"copied"`
	Bytes    uint64           `json:"bytes"`
	// AlreadyStored counts publishes the target refused because it held
	// the message already: resends after a failover, or a message another
	// worker (or a killed earlier run) stored first.
	AlreadyStored uint64        `json:"already_stored"`
	Elapsed       time.Duration `json:"elapsed_ns"`
	// NothingToDo is true when every channel and consumer was already
	// migrated: the run changed nothing.
	NothingToDo bool `json:"nothing_to_do"`
	// Worker names this process; DoneElsewhere counts the channels other
	// workers sharing the state store completed during this run.
	Worker        string `json:"worker,omitempty"`
	DoneElsewhere int    `json:"done_elsewhere,omitempty"`
}

// ChannelResult is one channel's outcome.
type ChannelResult struct {
	Channel  string `json:"channel"`
	Stream   string `json:"stream"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	Copied   uint64 `json:"copied"`
	Bytes    uint64 `json:"bytes"`
	// AlreadyStored: see Summary.
	AlreadyStored uint64           `json:"already_stored"`
	Status        string           `json:"status"`
	Sum           string           `json:"sha256,omitempty"`
	Consumers     []ConsumerResult `json:"consumers,omitempty"`
	Notes         []string         `json:"notes,omitempty"`
	Error         string           `json:"error,omitempty"`
	// Worker is the worker that completed the channel, when not this one.
	Worker string `json:"worker,omitempty"`
}

// ConsumerResult is one durable's outcome, as the checkpoint keeps it.
type ConsumerResult = state.ConsumerOutcome
