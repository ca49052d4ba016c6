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

// Status writes per-channel progress from a state directory.
func Status(w io.Writer, cps []*migrate.Checkpoint) {
	if len(cps) == 0 {
		fmt.Fprintln(w, "No checkpoints in the state directory: nothing has been migrated with it yet.")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "CHANNEL\tSTREAM\tSTORED UP TO\tTARGET\tPROGRESS\tCONSUMERS\tUPDATED")
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
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%s\n", cp.Channel, cp.Stream, cp.LastSeq, cp.TargetSeq, state, len(cp.Consumers), cp.Updated.Format(time.RFC3339))
	}
	tw.Flush()
}
