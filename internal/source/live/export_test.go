package live

import "time"

// SetStallTimeout shortens how long a read waits on a silent STAN, for
// tests; it returns the old value.
func SetStallTimeout(d time.Duration) time.Duration {
	old := stallTimeout
	stallTimeout = d
	return old
}
