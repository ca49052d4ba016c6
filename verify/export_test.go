package verify

import "time"

// SetProgressInterval changes how often a channel's check reports
// progress, for tests that act at a point mid-read; it returns the old
// value.
func SetProgressInterval(d time.Duration) time.Duration {
	old := progressInterval
	progressInterval = d
	return old
}
