package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/migrate"
)

// clock is a settable time for the health rules, which are about how
// long nothing happened.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time       { return c.now }
func (c *clock) pass(d time.Duration) { c.now = c.now.Add(d) }
func newRun(c *clock) *Run            { return New(Options{Now: c.Now}) }
func copying(r *Run, ch string, src, stored uint64) {
	r.Phase(ch, migrate.PhaseCopying)
	r.Source(ch, src)
	r.Copied(ch, 0, 0, stored, time.Time{})
}

// TestHealth holds /healthz's definition of "progressing" (docs/metrics.md)
// case by case.
func TestHealth(t *testing.T) {
	tests := []struct {
		name    string
		steps   func(r *Run, c *clock)
		ok      bool
		contain string
	}{
		{"nothing started yet", func(*Run, *clock) {}, true, "progressing: 0 channel(s) copying"},
		{"copying and storing", func(r *Run, c *clock) {
			copying(r, "a", 100, 10)
			for i := range 10 {
				c.pass(30 * time.Second)
				r.Copied("a", 5, 50, uint64(15+5*i), time.Time{})
			}
		}, true, "1 channel(s) copying"},
		{"nothing stored for the stall window with messages left", func(r *Run, c *clock) {
			copying(r, "a", 100, 10)
			c.pass(DefaultStallAfter)
		}, false, `stalled: "a" (90 message(s) left, nothing stored for 1m0s)`},
		{"retrying for a minute is a stall", func(r *Run, c *clock) {
			copying(r, "a", 100, 10)
			for range 30 {
				c.pass(2 * time.Second)
				r.Retrying("a", true)
			}
		}, false, `stalled: "a"`},
		{"just under the stall window", func(r *Run, c *clock) {
			copying(r, "a", 100, 10)
			c.pass(DefaultStallAfter - time.Second)
		}, true, "progressing"},
		{"caught up while following, for long", func(r *Run, c *clock) {
			r.Phase("a", migrate.PhaseFollowing)
			r.Source("a", 100)
			r.Copied("a", 100, 1000, 100, time.Now())
			c.pass(time.Hour)
		}, true, "progressing"},
		{"creating consumers for long", func(r *Run, c *clock) {
			copying(r, "a", 100, 100)
			r.Phase("a", migrate.PhaseConsumers)
			c.pass(10 * time.Minute)
		}, true, "progressing"},
		{"held back by the rate caps", func(r *Run, c *clock) {
			copying(r, "a", 100, 10)
			c.pass(50 * time.Second)
			r.Throttled("a", 30*time.Second)
			c.pass(30*time.Second + DefaultStallAfter - time.Second)
		}, true, "progressing"},
		{"stalled after the rate caps' wait ended", func(r *Run, c *clock) {
			copying(r, "a", 100, 10)
			r.Throttled("a", 30*time.Second)
			c.pass(30*time.Second + DefaultStallAfter)
		}, false, `stalled: "a"`},
		{"one stalled channel among moving ones", func(r *Run, c *clock) {
			copying(r, "a", 100, 10)
			copying(r, "b", 100, 10)
			c.pass(DefaultStallAfter)
			r.Copied("b", 1, 1, 11, time.Time{})
		}, false, `stalled: "a"`},
		{"ended", func(r *Run, c *clock) {
			copying(r, "a", 100, 10)
			c.pass(time.Hour)
			r.End(nil)
		}, true, "the run is complete"},
		{"ended on an error", func(r *Run, c *clock) {
			r.End(errors.New("stream \"x\": boom"))
		}, false, `the run ended: stream "x": boom`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{now: time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)}
			r := newRun(c)
			tt.steps(r, c)
			ok, detail := r.Health()
			if ok != tt.ok || !strings.Contains(detail, tt.contain) {
				t.Errorf("Health() = %v, %q; want %v, containing %q", ok, detail, tt.ok, tt.contain)
			}
		})
	}
}

// TestLag: messages left from STAN's last sequence as last read, and
// seconds from the last copied message's original timestamp.
func TestLag(t *testing.T) {
	c := &clock{now: time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)}
	r := newRun(c)
	copying(r, "a", 100, 0)
	ch := r.chans["a"]
	if ch.lag() != 100 {
		t.Errorf("lag %d, want 100", ch.lag())
	}
	if _, known := ch.lagSeconds(c.now); known {
		t.Error("lag in seconds known before any message was copied")
	}
	r.Copied("a", 40, 400, 40, c.now.Add(-90*time.Second))
	if s, known := ch.lagSeconds(c.now); !known || s != 90 || ch.lag() != 60 {
		t.Errorf("after 40 copied: lag %d, %v s (known %v); want 60, 90 s", ch.lag(), s, known)
	}
	r.Copied("a", 60, 600, 100, c.now.Add(-time.Second))
	if s, _ := ch.lagSeconds(c.now); s != 0 || ch.lag() != 0 {
		t.Errorf("caught up: lag %d, %v s; want 0, 0", ch.lag(), s)
	}
	r.Source("a", 90) // an older read than the stream: no negative lag
	if ch.lag() != 0 {
		t.Errorf("stream ahead of the last read: lag %d, want 0", ch.lag())
	}
}
