package migrate

// PublishTimeout is how long a publish waits for its acknowledgement, for
// the failover tests.
const PublishTimeout = publishTimeout
