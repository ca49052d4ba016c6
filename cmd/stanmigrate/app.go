package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/term"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/monitor"
	"github.com/stanmigrate/stanmigrate/migrate"
	"github.com/stanmigrate/stanmigrate/plan"
	"github.com/stanmigrate/stanmigrate/verify"
)

// Exit codes, as in the spec and every command's help.
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

// app carries I/O and process-wide concerns into the commands, so tests
// can run commands with buffers.
type app struct {
	stdout, stderr io.Writer
	terminal       bool
	interrupts     *interrupts
	// printedErr is set when a command already reported its error.
	printedErr bool
}

func newApp(stdout, stderr io.Writer) *app {
	a := &app{stdout: stdout, stderr: stderr, interrupts: &interrupts{}}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		a.terminal = true
	}
	return a
}

// usageError marks errors in how the command was called.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// exitCode is the one place errors become exit codes.
func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, verify.ErrDifferences):
		return exitFailed
	case errors.As(err, new(usageError)),
		errors.Is(err, plan.ErrInvalid),
		errors.Is(err, migrate.ErrBlocked),
		errors.Is(err, migrate.ErrChannelGone),
		errors.Is(err, migrate.ErrUnreadable),
		errors.Is(err, conn.ErrUnreachable),
		errors.Is(err, conn.ErrAuth),
		errors.Is(err, conn.ErrPermission),
		errors.Is(err, conn.ErrTLS),
		errors.Is(err, monitor.ErrTLS),
		errors.Is(err, conn.ErrWrongCluster),
		errors.Is(err, conn.ErrNoJetStream),
		errors.Is(err, conn.ErrBadConfig):
		return exitBadInput
	}
	return exitFailed
}

// finish prints the error (one line per problem, no stack) and returns
// the exit code.
func (a *app) finish(err error) int {
	code := exitCode(err)
	if err != nil && !a.printedErr {
		msg := err.Error()
		if code == exitInterrupted {
			msg = "interrupted: state saved; run the same command again to resume"
		}
		fmt.Fprintln(a.stderr, "stanmigrate: "+strings.TrimSpace(msg))
	}
	return code
}

// interrupts turns Ctrl-C / SIGTERM into cancellation. In follow mode the
// first one means "finish": catch up, create consumers, stop. The next
// cancels (checkpoint saved, exit 130); one more exits at once — the
// checkpoint on disk is valid at every instant.
type interrupts struct {
	mu     sync.Mutex
	count  int
	finish func()
	cancel context.CancelFunc
}

func (i *interrupts) watch(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	i.cancel = cancel
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		for range ch {
			i.mu.Lock()
			i.count++
			n, finish := i.count, i.finish
			i.mu.Unlock()
			switch {
			case n == 1 && finish != nil:
				finish()
			case n == 1 || (n == 2 && finish != nil):
				cancel()
			default:
				os.Exit(exitInterrupted)
			}
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

// onFinish installs the follow-mode "finish" action for the first signal.
func (i *interrupts) onFinish(f func()) {
	i.mu.Lock()
	i.finish = f
	i.mu.Unlock()
}
