package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/naming"
	"github.com/stanmigrate/stanmigrate/internal/seek"
)

type seqAtTimeOptions struct {
	io     *iostreams
	global *globalOptions

	channel  string
	stream   string
	planFile string
	at       string
	json     bool
	// start is --time resolved by validate.
	start time.Time
	// now is the clock a duration ago counts from (time.Now unless a
	// test sets it).
	now func() time.Time
}

// validate checks the flags and resolves --time, before anything runs.
func (o *seqAtTimeOptions) validate() error {
	if err := o.global.validate(); err != nil {
		return err
	}
	switch {
	case o.stream != "" && o.channel != "":
		return usageError{errors.New("--stream and --channel name the same thing: give one")}
	case o.stream == "" && o.channel == "":
		return usageError{errors.New("--channel is required (or --stream)")}
	case o.stream != "" && o.planFile != "":
		return usageError{errors.New("--plan maps --channel to its stream: with --stream, leave it out")}
	}
	t, err := parseStartTime(o.at, o.now())
	o.start = t
	return err
}

func newSeqAtTimeCmd(a *app, g *globalOptions, runF func(context.Context, *seqAtTimeOptions) error) *cobra.Command {
	o := &seqAtTimeOptions{io: a.io, global: g, now: a.now}
	cmd := &cobra.Command{
		Use:   "seq-at-time --channel NAME --time T",
		Short: "Print the first stream sequence whose original STAN time is at or after T",
		Long: `seq-at-time answers, for a migrated channel's stream, "from which sequence on
are the messages STAN stored at or after time T", by the original STAN
timestamp every migrated message keeps (Nats-Streaming-Timestamp). JetStream's
DeliverByStartTime sees the migration's own timestamps, so an application
that subscribed with STAN's StartAtTime or StartAtTimeDelta starts its
consumer by this sequence instead (DeliverByStartSequence).

--time takes an RFC 3339 time (2026-12-01T09:30:00Z, fractions allowed) or a
duration ago as StartAtTimeDelta does (90m, 72h). The search reads about
log2(messages) messages by sequence and changes nothing. When every message is
older than T it prints the stream's next sequence (last + 1), from which a
consumer gets only messages stored later.

` + exitCodesHelp,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runSeqAtTime(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.channel, "channel", "", "the STAN channel (its stream is named by the plan, or by the default naming rule)")
	f.StringVar(&o.stream, "stream", "", "the stream to search, instead of --channel")
	f.StringVar(&o.planFile, "plan", "", "plan file that maps --channel to its stream (default: the naming rule migrate uses by default)")
	f.StringVar(&o.at, "time", "", "RFC 3339 time, or a duration ago (90m, 72h)")
	f.BoolVar(&o.json, "json", false, "print the answer as JSON")
	return cmd
}

// parseStartTime reads --time: an RFC 3339 time or a duration before now.
func parseStartTime(v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, usageError{errors.New("--time is required: pass an RFC 3339 time (2026-12-01T09:30:00Z) or a duration ago (90m)")}
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return time.Time{}, usageError{fmt.Errorf("--time %q is neither an RFC 3339 time (2026-12-01T09:30:00Z) nor a duration ago (90m, 72h)", v)}
	}
	if d < 0 {
		return time.Time{}, usageError{fmt.Errorf("--time %q: a duration ago cannot be negative", v)}
	}
	return now.Add(-d), nil
}

// streamFor names the stream to search.
func (o *seqAtTimeOptions) streamFor() (string, error) {
	switch {
	case o.stream != "":
		return o.stream, nil
	case o.planFile == "":
		return naming.StreamName(o.channel), nil
	}
	p, err := o.global.loadPlan(o.planFile)
	if err != nil {
		return "", err
	}
	c := p.Channel(o.channel)
	if c == nil {
		return "", usageError{fmt.Errorf("channel %q is not in plan %s: check --channel, or pass --stream", o.channel, o.planFile)}
	}
	return c.Stream, nil
}

func runSeqAtTime(ctx context.Context, o *seqAtTimeOptions) error {
	stream, err := o.streamFor()
	if err != nil {
		return err
	}
	nc, js, err := conn.JetStream(ctx, o.global.nats, "stanmigrate-seq-at-time")
	if err != nil {
		return err
	}
	defer nc.Close()
	res, err := seek.AtOrAfter(ctx, js, stream, o.start)
	if err != nil {
		return err
	}
	return printResult(o.io, o.json, res, func() { printSeqAtTime(o, res) })
}

func printSeqAtTime(o *seqAtTimeOptions, r *seek.Result) {
	at := r.Time.UTC().Format(time.RFC3339Nano)
	switch {
	case r.Msgs == 0:
		fmt.Fprintf(o.io.Out, "stream %q is empty: start at sequence %d (the next one)\n", r.Stream, r.Seq)
	case !r.Found:
		fmt.Fprintf(o.io.Out, "every message of stream %q is older than %s (last sequence %d): start at sequence %d for messages stored later\n",
			r.Stream, at, r.LastSeq, r.Seq)
	default:
		fmt.Fprintf(o.io.Out, "sequence %d of stream %q is the first at or after %s (its original time: %s)\n",
			r.Seq, r.Stream, at, r.Timestamp.UTC().Format(time.RFC3339Nano))
	}
}
