package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// iostreams are where a command writes: results to Out, logs, progress and
// errors to Err. Terminal says whether Err is a terminal (progress bars
// only there).
type iostreams struct {
	Out, Err io.Writer
	Terminal bool
}

// app carries I/O and process-wide concerns into the commands, so tests
// can run every command in-process with buffers.
type app struct {
	io         *iostreams
	interrupts *interrupts
	env        environment
	// now is the clock times relative to now count from (a test fixes it).
	now func() time.Time
}

func newApp(stdout, stderr io.Writer, terminal bool) *app {
	return &app{io: &iostreams{Out: stdout, Err: stderr, Terminal: terminal}, interrupts: &interrupts{}, env: readEnvironment(), now: time.Now}
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// execute runs one command line and returns its exit code.
func (a *app) execute(ctx context.Context, args []string) int {
	root := newRootCmd(a)
	root.SetArgs(args)
	return a.finish(root.ExecuteContext(ctx))
}

// finish prints the error (one line per problem, no stack) and returns
// the exit code.
func (a *app) finish(err error) int {
	code := exitCode(err)
	if err != nil {
		msg := err.Error()
		if code == exitInterrupted {
			msg = "interrupted: state saved; run the same command again to resume"
		}
		fmt.Fprintln(a.io.Err, "stanmigrate: "+strings.TrimSpace(msg))
	}
	return code
}
