package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/verify"
)

// cutoverClock times the stages of a cutover window, from the signal to
// finish a --follow run to the run's end, and passes migrate's events on.
type cutoverClock struct {
	migrate.Reporter
	mu       sync.Mutex
	finish   time.Time // told to finish
	caughtUp time.Time // the last channel's final catch-up ended
}

// Unwrap is the reporter the clock wraps: migrate looks through it for
// the metrics observer.
func (c *cutoverClock) Unwrap() migrate.Reporter { return c.Reporter }

func (c *cutoverClock) finishing() {
	c.mu.Lock()
	c.finish = time.Now()
	c.mu.Unlock()
}

func (c *cutoverClock) Event(e migrate.Event) {
	if e.Kind == migrate.EventCaughtUp {
		c.mu.Lock()
		if !c.finish.IsZero() {
			c.caughtUp = time.Now()
		}
		c.mu.Unlock()
	}
	c.Reporter.Event(e)
}

// printMigrate writes the migrate side of the window: the final catch-up,
// then streams finalized and consumers created. Nothing when the run was
// not told to finish.
func (c *cutoverClock) printMigrate(w io.Writer, end time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finish.IsZero() {
		return
	}
	caught := c.caughtUp
	if caught.IsZero() {
		caught = end
	}
	fmt.Fprintf(w, "cutover window (migrate): final catch-up %s, streams finalized and consumers %s, total %s\n",
		seconds(caught.Sub(c.finish)), seconds(end.Sub(caught)), seconds(end.Sub(c.finish)))
}

// printVerify writes the verify side of the window: the last round, which
// checks each channel's tail past its verified prefix, and the consumers.
func (c *cutoverClock) printVerify(w io.Writer, end time.Time, rep *verify.Report) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finish.IsZero() || rep == nil {
		return
	}
	var earlier, read uint64
	for _, ch := range rep.Channels {
		earlier += ch.Earlier
		read += ch.Read
	}
	fmt.Fprintf(w, "cutover window (verify): tail verify and consumers %s (%d message(s) read past %d verified earlier)\n",
		seconds(end.Sub(c.finish)), read, earlier)
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
