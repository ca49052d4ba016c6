package migrate

// EventKind says which step of a run an Event reports.
type EventKind string

// The kinds of Event a run emits.
const (
	// EventStarted: a channel's copy began at its first sequence.
	EventStarted EventKind = "started"
	// EventResumed: a channel's copy continued past what an earlier run
	// (or a message in flight when it stopped) left in the stream.
	EventResumed EventKind = "resumed"
	// EventPublishing: which publish path the run, or a channel, takes.
	EventPublishing EventKind = "publishing"
	// EventRetrying: a transient fault; the channel resumes after a wait.
	EventRetrying EventKind = "retrying"
	// EventCaughtUp: a following channel finished its final catch-up:
	// every message STAN held when the run was told to finish is in the
	// stream (the cutover window's first stage ends here).
	EventCaughtUp EventKind = "caught-up"
	// EventComplete: a channel's messages are all in its stream.
	EventComplete EventKind = "complete"
	// EventProbing: a durable's pending messages are being probed.
	EventProbing EventKind = "probing"
	// EventConsumer: a durable's consumer was created (or found).
	EventConsumer EventKind = "consumer"
	// EventWaiting: another worker sharing the state store holds the
	// channel's lease.
	EventWaiting EventKind = "waiting"
	// EventHandedOver: this process's lease expired and another worker
	// took the channel over.
	EventHandedOver EventKind = "handed over"
	// EventCompleteElsewhere: another worker completed the channel.
	EventCompleteElsewhere EventKind = "complete elsewhere"
)
