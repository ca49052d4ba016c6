package report

import (
	"fmt"
	"io"

	"github.com/stanmigrate/stanmigrate/verify"
)

// Verification writes a verify report: channels, then consumers, then the
// problems in full. EARLIER is what earlier runs verified (the channel's
// verified prefix), NOW what this run read.
func Verification(w io.Writer, r *verify.Report) {
	tw := table(w)
	fmt.Fprintln(tw, "CHANNEL\tSTREAM\tSTAN MSGS\tSTAN SEQS\tSTREAM MSGS\tSTREAM SEQS\tEARLIER\tNOW\tSHA-256\tRESULT")
	for _, c := range r.Channels {
		res := "OK"
		if !c.OK {
			res = "DIFFERS"
		}
		sum := c.Source.SHA256
		switch {
		case c.Sampled > 0:
			sum = fmt.Sprintf("sampled %d", c.Sampled)
		case c.Source.SHA256 != c.Target.SHA256:
			sum = "differs"
		case len(sum) > 12:
			sum = sum[:12] + "…"
		}
		earlier, now := Count(c.Earlier), Count(c.Read)
		if c.Sampled > 0 {
			earlier, now = "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Channel, c.Stream,
			Count(c.Source.Msgs), seqRange(c.Source.FirstSeq, c.Source.LastSeq),
			Count(c.Target.Msgs), seqRange(c.Target.FirstSeq, c.Target.LastSeq), earlier, now, sum, res)
	}
	tw.Flush()
	if len(r.Consumers) > 0 {
		fmt.Fprintln(w)
		tw = table(w)
		fmt.Fprintln(tw, "CHANNEL\tDURABLE\tCONSUMER\tEXPECTED START\tCONSUMER START\tRESULT")
		for _, c := range r.Consumers {
			res := "OK"
			if !c.OK {
				res = "DIFFERS"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", c.Channel, c.Durable, c.Consumer, c.Expected, c.Actual, res)
		}
		tw.Flush()
	}
	for _, c := range r.Channels {
		if c.PrefixNote != "" {
			fmt.Fprintf(w, "\nnote: channel %q: %s", c.Channel, c.PrefixNote)
		}
	}
	for _, c := range r.Channels {
		if !c.OK && c.Problem != "" {
			fmt.Fprintf(w, "\ndifference: %s", c.Problem)
		}
	}
	for _, c := range r.Consumers {
		if !c.OK && c.Problem != "" {
			fmt.Fprintf(w, "\ndifference: %s", c.Problem)
		}
	}
	if r.OK {
		fmt.Fprintf(w, "\nverified: %d channel(s) and %d consumer(s) identical\n", len(r.Channels), len(r.Consumers))
	} else {
		fmt.Fprintf(w, "\n\n%d difference(s) found\n", r.Differences)
	}
}
