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

// StatusView is what status shows: the checkpoints, and the leases of
// the workers migrating right now (a fleet sharing a state bucket).
type StatusView struct {
	Checkpoints []*state.Checkpoint
	Leases      map[string]state.Lease // by stream
	Now         time.Time
}

// Status writes per-channel progress from a state store.
func Status(w io.Writer, v StatusView) {
	if len(v.Checkpoints) == 0 {
		fmt.Fprintln(w, "No checkpoints in the state store: nothing has been migrated with it yet.")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "CHANNEL\tSTREAM\tSTORED UP TO\tTARGET\tPROGRESS\tCONSUMERS\tWORKER\tUPDATED")
	done := 0
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
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%s\t%s\n", cp.Channel, cp.Stream, cp.LastSeq, cp.TargetSeq, progress,
			len(cp.Consumers), worker(cp, v), updated)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d of %d channel(s) complete", done, len(v.Checkpoints))
	if n := len(v.Leases); n > 0 {
		fmt.Fprintf(w, "; %d being migrated by %d worker(s) now", n, workers(v.Leases))
	}
	fmt.Fprintln(w, ".")
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
