// Command stanmigrate moves a NATS Streaming deployment into JetStream.
package main

import (
	"context"
	"os"
)

func main() {
	a := newApp(os.Stdout, os.Stderr)
	ctx, stop := a.interrupts.watch(context.Background())
	defer stop()
	err := newRootCmd(a).ExecuteContext(ctx)
	os.Exit(a.finish(err))
}
