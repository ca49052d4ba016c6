package source

import "sync"

// Ending is the plumbing every Reader shares: Done is closed once, when
// the read stopped on its own, with Err saying why; Stopping is closed
// once, when the reader's Close began. Readers embed it and implement
// Close with Stop.
type Ending struct {
	done, stop        chan struct{}
	endOnce, stopOnce sync.Once
	err               error
}

// NewEnding returns an Ending neither ended nor stopping.
func NewEnding() *Ending {
	return &Ending{done: make(chan struct{}), stop: make(chan struct{})}
}

// Done is closed when the reader stopped on its own.
func (e *Ending) Done() <-chan struct{} { return e.done }

// Err is why the reader stopped, once Done is closed; nil before.
func (e *Ending) Err() error {
	select {
	case <-e.done:
		return e.err
	default:
		return nil
	}
}

// End records why the read stopped and closes Done; only the first call
// counts.
func (e *Ending) End(err error) {
	e.endOnce.Do(func() {
		e.err = err
		close(e.done)
	})
}

// Stopping is closed once Stop was called.
func (e *Ending) Stopping() <-chan struct{} { return e.stop }

// Stop closes Stopping and then runs release, both only on the first
// call: what a reader's Close does once however often it is called.
func (e *Ending) Stop(release func()) {
	e.stopOnce.Do(func() {
		close(e.stop)
		if release != nil {
			release()
		}
	})
}
