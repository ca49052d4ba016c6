package migrate

import "time"

// apiTimeout bounds each JetStream API request migrate makes (stream and
// consumer info, create, update, purge, message get and delete) in place
// of the client's 5 s default, which applies because the run's context
// has no deadline (see withoutDeadline). A request sent to a server that
// then goes away, or waiting on a stream or meta leader that is gone, is
// never answered: with the default, one such request cost a failover
// 5 s. Every request migrate makes is safe to repeat (a create or update
// with the same configuration succeeds again or reports the stream as
// there; purges, gets and deletes converge) and each is retried with
// backoff, so a healthy but slow answer costs a retry, not the run.
// Healthy requests on the shared two-core machine answer in well under
// 100 ms, an R3 stream create included.
const apiTimeout = time.Second
