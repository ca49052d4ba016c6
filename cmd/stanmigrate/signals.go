package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// interrupts turns Ctrl-C / SIGTERM into cancellation. In follow mode the
// first one means "finish": catch up, create consumers, stop. The next
// cancels (checkpoint saved, exit 130); one more exits at once — the
// checkpoint on disk is valid at every instant.
type interrupts struct {
	mu     sync.Mutex
	count  int
	finish func()
}

func (i *interrupts) watch(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
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
