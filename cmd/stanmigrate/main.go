// Command stanmigrate moves a NATS Streaming deployment into JetStream.
package main

import (
	"context"
	"os"
)

func main() {
	a := newApp(os.Stdout, os.Stderr, isTerminal(os.Stderr))
	ctx, stop := a.interrupts.watch(context.Background())
	code := a.execute(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
