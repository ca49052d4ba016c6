// Package report renders plans, migration summaries and verification
// results for people (tables, markdown) and machines (JSON).
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/dustin/go-humanize"

	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/plan"
)

// Formats accepted by Plan.
const (
	Table    = "table"
	JSON     = "json"
	Markdown = "markdown"
)

// JSONTo writes v as indented JSON.
func JSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// Bytes is a humanized byte count.
func Bytes(n uint64) string { return humanize.IBytes(n) }

// Count is a number with thousands separators.
func Count(n uint64) string { return humanize.Comma(int64(n)) }

func seqRange(first, last uint64) string {
	if last < first {
		return fmt.Sprintf("empty (next %d)", first)
	}
	return fmt.Sprintf("%d..%d", first, last)
}

// Plan writes the dry-run report of a plan.
func Plan(w io.Writer, p *plan.Plan, format string) error {
	p.ComputeTotals()
	switch format {
	case JSON:
		return JSONTo(w, p)
	case Markdown:
		return planMarkdown(w, p)
	case Table, "":
		return planTable(w, p)
	}
	return fmt.Errorf("unknown format %q: use table, json or markdown", format)
}

func durablePosition(d plan.Durable) string {
	if d.Position == jsformat.Probe {
		return fmt.Sprintf("probed at migrate time (%d pending, ≤ %d)", d.Pending, d.StartSeq)
	}
	return fmt.Sprintf("%d (exact)", d.StartSeq)
}

func durableName(d plan.Durable) string {
	if d.QueueGroup != "" {
		return fmt.Sprintf("queue %s / %s", d.QueueGroup, d.Durable)
	}
	return d.ClientID + " / " + d.Durable
}

func planTable(w io.Writer, p *plan.Plan) error {
	t := p.Totals
	fmt.Fprintf(w, "Plan: STAN cluster %q (%s) -> JetStream %s%s (%s)\n", p.Source.ClusterID, p.Source.ServerVersion, p.Target.URL, targetAPI(p.Target), p.Target.ServerVersion)
	fmt.Fprintf(w, "%d channel(s), %s message(s), %s as STAN stores them, %d durable(s); %d blocker(s), %d warning(s)\n\n",
		t.Channels, Count(t.Msgs), Bytes(t.Bytes), t.Durables, t.Blockers, t.Warnings)
	if len(p.Findings) > 0 {
		tw := table(w)
		fmt.Fprintln(tw, "SEVERITY\tOBJECT\tFINDING")
		for _, f := range p.Findings {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", strings.ToUpper(f.Severity), f.Object, f.Message)
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	tw := table(w)
	fmt.Fprintln(tw, "CHANNEL\tSTREAM\tSEQUENCES\tMSGS\tBYTES\tLIMITS\tDURABLES")
	for _, c := range p.Channels {
		stream := c.Stream
		if c.Skip {
			stream += " (skip)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", c.Name, stream, seqRange(c.FirstSeq, c.LastSeq),
			Count(c.Msgs), Bytes(c.Bytes), limits(c.Limits), len(c.Durables))
	}
	tw.Flush()
	if t.Durables > 0 {
		fmt.Fprintln(w)
		tw = table(w)
		fmt.Fprintln(tw, "CHANNEL\tDURABLE\tCONSUMER\tMODE\tLAST SENT\tSTART")
		for _, c := range p.Channels {
			for _, d := range c.Durables {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", c.Name, durableName(d), d.Consumer, d.Mode, d.LastSent, durablePosition(d))
			}
		}
		tw.Flush()
	}
	if len(p.Excluded) > 0 {
		fmt.Fprintf(w, "\nLeft out by selection: %s\n", strings.Join(p.Excluded, ", "))
	}
	return nil
}

func limits(l plan.Limits) string {
	var parts []string
	if l.MaxMsgs > 0 {
		parts = append(parts, "msgs "+Count(uint64(l.MaxMsgs)))
	}
	if l.MaxBytes > 0 {
		parts = append(parts, "bytes "+Bytes(uint64(l.MaxBytes)))
	}
	if l.MaxAge > 0 {
		parts = append(parts, "age "+l.MaxAge.String())
	}
	if l.MaxConsumers > 0 {
		parts = append(parts, fmt.Sprintf("consumers %d", l.MaxConsumers))
	}
	if len(parts) == 0 {
		return "-"
	}
	s := strings.Join(parts, ", ")
	if l.From != "" {
		s += " (" + l.From + ")"
	}
	return s
}

func planMarkdown(w io.Writer, p *plan.Plan) error {
	t := p.Totals
	fmt.Fprintf(w, "# Migration plan: STAN `%s` → JetStream\n\n", p.Source.ClusterID)
	fmt.Fprintf(w, "| | |\n|---|---|\n| Source | STAN %s, cluster `%s` |\n| Target | %s%s (nats-server %s) |\n", p.Source.ServerVersion, p.Source.ClusterID, p.Target.URL, targetAPI(p.Target), p.Target.ServerVersion)
	fmt.Fprintf(w, "| Channels | %d (%d skipped) |\n| Messages | %s |\n| Bytes | %s |\n| Durables | %d |\n| Blockers | %d |\n| Warnings | %d |\n\n",
		t.Channels, t.Skipped, Count(t.Msgs), Bytes(t.Bytes), t.Durables, t.Blockers, t.Warnings)
	if len(p.Findings) > 0 {
		fmt.Fprintf(w, "## Findings\n\n| Severity | Object | Finding |\n|---|---|---|\n")
		for _, f := range p.Findings {
			fmt.Fprintf(w, "| %s | %s | %s |\n", f.Severity, mdEscape(f.Object), mdEscape(f.Message))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "## Channels\n\n| Channel | Stream | Sequences | Messages | Bytes | Limits |\n|---|---|---|---:|---:|---|\n")
	for _, c := range p.Channels {
		stream := "`" + c.Stream + "`"
		if c.Skip {
			stream += " (skip)"
		}
		fmt.Fprintf(w, "| `%s` | %s | %s | %s | %s | %s |\n", c.Name, stream, seqRange(c.FirstSeq, c.LastSeq), Count(c.Msgs), Bytes(c.Bytes), mdEscape(limits(c.Limits)))
	}
	if t.Durables > 0 {
		fmt.Fprintf(w, "\n## Durables\n\n| Channel | Durable | Consumer | Mode | Last sent | Start (how known) |\n|---|---|---|---|---:|---|\n")
		for _, c := range p.Channels {
			for _, d := range c.Durables {
				fmt.Fprintf(w, "| `%s` | %s | `%s` | %s | %d | %s |\n", c.Name, mdEscape(durableName(d)), d.Consumer, d.Mode, d.LastSent, durablePosition(d))
			}
		}
	}
	if len(p.Excluded) > 0 {
		fmt.Fprintf(w, "\nLeft out by selection: %s\n", strings.Join(p.Excluded, ", "))
	}
	return nil
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// targetAPI names the JetStream domain or API prefix the plan reaches, ""
// for the connected server's own.
func targetAPI(t plan.Target) string {
	switch {
	case t.Domain != "":
		return fmt.Sprintf(" domain %q", t.Domain)
	case t.APIPrefix != "":
		return fmt.Sprintf(" API prefix %q", t.APIPrefix)
	}
	return ""
}
