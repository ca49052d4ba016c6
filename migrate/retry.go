package migrate

import (
	"context"
	"fmt"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/conn"
)

// maxAttempts is how many consecutive failures a channel rides out
// (about two minutes with the backoff below) before giving up.
const maxAttempts = 40

// backoff waits before the next attempt: capped exponential, and gives up
// after maxAttempts consecutive failures.
func (r *runner) backoff(ctx context.Context, attempt int, ev Event, cause error) error {
	// A denied publish or subscribe only shows as a timeout; the server
	// told the connection why, and no retry will change it.
	if perr := conn.PermissionErr(r.o.Target, r.nc); perr != nil {
		return perr
	}
	if attempt >= maxAttempts {
		return fmt.Errorf("giving up after %d attempts: %w", attempt, cause)
	}
	wait := time.Duration(100<<min(attempt, 5)) * time.Millisecond // 100ms .. 3.2s
	r.obs.Retrying(ev.Channel, isFailover(cause))
	ev.Kind, ev.Message = EventRetrying, fmt.Sprintf("%v (retry in %v)", cause, wait)
	r.o.Reporter.Event(ev)
	select {
	case <-time.After(wait):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retry runs f until it succeeds, fails permanently, or maxAttempts
// transient failures in a row (a failover on the target makes API
// requests time out until a new leader serves them).
func (r *runner) retry(ctx context.Context, ev Event, f func() error) error {
	err := f()
	for attempt := 0; err != nil && !isPermanent(err) && ctx.Err() == nil; attempt++ {
		if berr := r.backoff(ctx, attempt, ev, err); berr != nil {
			return berr
		}
		err = f()
	}
	return err
}
