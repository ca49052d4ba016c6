package report

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/migrate"
)

// Migration writes the summary of a migrate run.
func Migration(w io.Writer, s *migrate.Summary) {
	if s == nil {
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "CHANNEL\tSTREAM\tSTATUS\tSEQUENCES\tCOPIED\tBYTES\tCONSUMERS")
	for _, c := range s.Channels {
		if c == nil {
			continue
		}
		var cons []string
		for _, k := range c.Consumers {
			extra := ""
			switch {
			case k.Acked > 0:
				extra = fmt.Sprintf(", %d acked, %d pending", k.Acked, len(k.Pending))
			case k.SeenAgain > 0:
				extra = fmt.Sprintf(", %d seen again", k.SeenAgain)
			}
			cons = append(cons, fmt.Sprintf("%s@%d (%s, %s%s)", k.Consumer, k.StartSeq, k.Position, k.Status, extra))
		}
		cs := strings.Join(cons, "; ")
		if cs == "" {
			cs = "-"
		}
		seqs := "-"
		if c.Status == "complete" || c.Status == "already complete" || c.Status == "complete elsewhere" {
			seqs = seqRange(c.FirstSeq, c.LastSeq)
		}
		status := c.Status
		if c.Worker != "" {
			status += " (" + c.Worker + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Channel, c.Stream, status, seqs, Count(c.Copied), Bytes(c.Bytes), cs)
	}
	tw.Flush()
	for _, c := range s.Channels {
		if c == nil {
			continue
		}
		for _, n := range c.Notes {
			fmt.Fprintf(w, "note: channel %q: %s\n", c.Channel, n)
		}
		if c.Error != "" {
			fmt.Fprintf(w, "error: channel %q: %s\n", c.Channel, c.Error)
		}
	}
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Copied) / s.Elapsed.Seconds()
	}
	fmt.Fprintf(w, "\n%s message(s), %s of payload copied in %v (%s msgs/s)\n", Count(s.Copied), Bytes(s.Bytes), s.Elapsed.Round(time.Millisecond), Count(uint64(rate)))
	if s.AlreadyStored > 0 {
		fmt.Fprintf(w, "%s publish(es) refused as already stored (resent after a failover or a kill, or stored first by another worker): none stored twice\n", Count(s.AlreadyStored))
	}
	if s.DoneElsewhere > 0 {
		fmt.Fprintf(w, "%d channel(s) completed by other workers sharing the state store (worker %s is this one)\n", s.DoneElsewhere, s.Worker)
	}
	if s.NothingToDo {
		fmt.Fprintln(w, "Nothing to do: every channel and consumer was already migrated; nothing was changed.")
	}
}

// StaleAfter is how old a checkpoint's rate may be for Status to still
// estimate from it: a running copy writes its checkpoint every second.
const StaleAfter = time.Minute

// StatusView is what status shows: the checkpoints, and the leases of
// the workers migrating right now (a fleet sharing a state bucket).
type StatusView struct {
	Checkpoints []*state.Checkpoint
	Leases      map[string]state.Lease // by stream
	Now         time.Time
}

// Status writes per-channel progress from a state store, with an
// estimate of the time left from each channel's recent copy rate as of
// v.Now.
func Status(w io.Writer, v StatusView) {
	if len(v.Checkpoints) == 0 {
		fmt.Fprintln(w, "No checkpoints in the state store: nothing has been migrated with it yet.")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "CHANNEL\tSTREAM\tSTORED UP TO\tTARGET\tPROGRESS\tETA\tCONSUMERS\tWORKER\tUPDATED")
	done := 0
	var left uint64
	var rate float64
	for _, cp := range v.Checkpoints {
		total := cp.TargetSeq + 1 - min(cp.FirstSeq, cp.TargetSeq+1)
		stored := uint64(0)
		if cp.LastSeq+1 > cp.FirstSeq {
			stored = cp.LastSeq + 1 - cp.FirstSeq
		}
		pct := "100%"
		if total > 0 {
			pct = fmt.Sprintf("%.1f%%", 100*float64(min(stored, total))/float64(total))
		}
		progress, updated := pct, cp.Updated.Format(time.RFC3339)
		if cp.Updated.IsZero() {
			progress, updated = "not started", "-"
		}
		if cp.Done {
			progress = "complete"
			done++
		}
		eta := channelETA(cp, v.Now)
		if !cp.Done {
			left += cp.TargetSeq - min(cp.LastSeq, cp.TargetSeq)
			if v.Now.Sub(cp.Updated) < StaleAfter {
				rate += cp.Rate
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%d\t%s\t%s\n", cp.Channel, cp.Stream, cp.LastSeq, cp.TargetSeq, progress, eta,
			len(cp.Consumers), worker(cp, v), updated)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d of %d channel(s) complete", done, len(v.Checkpoints))
	if n := len(v.Leases); n > 0 {
		fmt.Fprintf(w, "; %d being migrated by %d worker(s) now", n, workers(v.Leases))
	}
	fmt.Fprintln(w, ".")
	if left > 0 && rate > 0 {
		fmt.Fprintf(w, "%s message(s) left at %s msgs/s now: about %v (channels waiting for a --parallel slot are not counted in the rate)\n",
			Count(left), Count(uint64(rate)), etaOf(left, rate))
	}
}

// channelETA is the time a channel's copy has left at its recent rate:
// "-" when there is nothing to estimate (done, or not started), "stale"
// when its checkpoint is
// older than StaleAfter (no run is copying it now).
func channelETA(cp *state.Checkpoint, now time.Time) string {
	if cp.Done || cp.LastSeq >= cp.TargetSeq || cp.Updated.IsZero() {
		return "-"
	}
	if now.Sub(cp.Updated) >= StaleAfter {
		return "stale"
	}
	if cp.Rate <= 0 {
		return "unknown"
	}
	return etaOf(cp.TargetSeq-cp.LastSeq, cp.Rate).String()
}

func etaOf(msgs uint64, rate float64) time.Duration {
	return time.Duration(float64(msgs) / rate * float64(time.Second)).Round(time.Second)
}

// worker names who holds the channel now (with the lease's age), else
// who wrote its checkpoint last.
func worker(cp *state.Checkpoint, v StatusView) string {
	if ls, ok := v.Leases[cp.Stream]; ok {
		return fmt.Sprintf("%s (lease renewed %s ago)", ls.Worker, v.Now.Sub(ls.Renewed).Round(time.Second))
	}
	if cp.Worker == "" {
		return "-"
	}
	return cp.Worker
}

func workers(leases map[string]state.Lease) int {
	seen := map[string]bool{}
	for _, ls := range leases {
		seen[ls.Worker] = true
	}
	return len(seen)
}
