package report

import (
	"fmt"
	"io"
	"strings"
	"time"

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
		if c.Status == "complete" || c.Status == "already complete" {
			seqs = seqRange(c.FirstSeq, c.LastSeq)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Channel, c.Stream, c.Status, seqs, Count(c.Copied), Bytes(c.Bytes), cs)
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
	if s.NothingToDo {
		fmt.Fprintln(w, "Nothing to do: every channel and consumer was already migrated; nothing was changed.")
	}
}

// StaleAfter is how old a checkpoint's rate may be for Status to still
// estimate from it: a running copy writes its checkpoint every second.
const StaleAfter = time.Minute

// Status writes per-channel progress from a state directory, with an
// estimate of the time left from each channel's recent copy rate as of
// now.
func Status(w io.Writer, cps []*migrate.Checkpoint, now time.Time) {
	if len(cps) == 0 {
		fmt.Fprintln(w, "No checkpoints in the state directory: nothing has been migrated with it yet.")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "CHANNEL\tSTREAM\tSTORED UP TO\tTARGET\tPROGRESS\tETA\tCONSUMERS\tUPDATED")
	var left uint64
	var rate float64
	for _, cp := range cps {
		total := cp.TargetSeq + 1 - min(cp.FirstSeq, cp.TargetSeq+1)
		done := uint64(0)
		if cp.LastSeq+1 > cp.FirstSeq {
			done = cp.LastSeq + 1 - cp.FirstSeq
		}
		pct := "100%"
		if total > 0 {
			pct = fmt.Sprintf("%.1f%%", 100*float64(min(done, total))/float64(total))
		}
		state := pct
		if cp.Done {
			state = "complete"
		}
		eta := channelETA(cp, now)
		if !cp.Done {
			left += cp.TargetSeq - min(cp.LastSeq, cp.TargetSeq)
			if now.Sub(cp.Updated) < StaleAfter {
				rate += cp.Rate
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%d\t%s\n", cp.Channel, cp.Stream, cp.LastSeq, cp.TargetSeq, state, eta, len(cp.Consumers), cp.Updated.Format(time.RFC3339))
	}
	tw.Flush()
	if left > 0 && rate > 0 {
		fmt.Fprintf(w, "\n%s message(s) left at %s msgs/s now: about %v (channels waiting for a --parallel slot are not counted in the rate)\n",
			Count(left), Count(uint64(rate)), etaOf(left, rate))
	}
}

// channelETA is the time a channel's copy has left at its recent rate:
// "-" when there is nothing to estimate, "stale" when its checkpoint is
// older than StaleAfter (no run is copying it now).
func channelETA(cp *migrate.Checkpoint, now time.Time) string {
	if cp.Done || cp.LastSeq >= cp.TargetSeq {
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
