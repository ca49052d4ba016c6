package main

import (
	"context"
	"errors"

	"github.com/spf13/cobra"
	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/metrics"
	"github.com/stanmigrate/stanmigrate/internal/monitor"
	"github.com/stanmigrate/stanmigrate/internal/seek"
	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/internal/state"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/plan"
	"github.com/stanmigrate/stanmigrate/verify"
)

// Exit codes, as every command's help lists them (exitCodesHelp).
const (
	exitOK          = 0
	exitFailed      = 1 // differences found, or the migration failed
	exitBadInput    = 2 // bad usage or input, server unreachable
	exitInterrupted = 130
)

const exitCodesHelp = `Exit codes:
  0    success
  1    verification found differences, or the migration failed
  2    bad usage or bad input (unreadable plan, invalid names, server unreachable)
  130  interrupted (state saved; re-run to resume)`

// usageError marks errors in how the command was called.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// badInput are the errors that mean "fix the input", exit 2.
var badInput = []error{
	plan.ErrInvalid,
	migrate.ErrBlocked,
	migrate.ErrChannelGone,
	migrate.ErrUnreadable,
	source.ErrUnreadable,
	fixture.ErrNotEmpty,
	fixture.ErrDurableExists,
	fixture.ErrLimits,
	conn.ErrUnreachable,
	conn.ErrAuth,
	conn.ErrPermission,
	conn.ErrTLS,
	monitor.ErrTLS,
	conn.ErrWrongCluster,
	conn.ErrNoJetStream,
	conn.ErrBadConfig,
	seek.ErrNoStream,
	seek.ErrNoTimestamp,
	state.ErrNoState,
	metrics.ErrListen,
}

// exitCode is the one place errors become exit codes.
func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, verify.ErrDifferences):
		return exitFailed
	case errors.As(err, new(usageError)):
		return exitBadInput
	}
	for _, e := range badInput {
		if errors.Is(err, e) {
			return exitBadInput
		}
	}
	return exitFailed
}

// noArgs refuses positional arguments as bad usage (exit 2), as every
// other flag mistake is.
func noArgs(cmd *cobra.Command, args []string) error {
	if err := cobra.NoArgs(cmd, args); err != nil {
		return usageError{err}
	}
	return nil
}
