package fastingest

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestBatchStartGivesUpWhenTheTargetMoved: a first Publish whose batch
// start is never answered (here: no stream takes the subject, and a plain
// subscriber keeps the server from answering "no responders", as a server
// that went away or a leader being elected would leave it unanswered)
// returns as soon as Moved reports that the target moved, with ErrTimeout
// (the message may have landed) and Moved's error, not after AckTimeout.
func TestBatchStartGivesUpWhenTheTargetMoved(t *testing.T) {
	e := startEnv(t)
	swallow, err := e.nc.Subscribe("unanswered", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer swallow.Unsubscribe()
	moved := errors.New("the connection to JetStream was interrupted")
	asked := 0
	p, err := New(e.nc, Options{AckTimeout: time.Hour, CheckEvery: 50 * time.Millisecond, Moved: func() error {
		asked++
		if asked < 3 {
			return nil
		}
		return moved
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.Publish("unanswered", nil, []byte("x"), 1)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, moved) {
		t.Fatalf("Publish of an unanswered batch start: %v; want ErrTimeout and the Moved error", err)
	}
	if asked != 3 {
		t.Errorf("Moved was asked %d times, want 3 (until it reported the move)", asked)
	}
	if seq, ferr := p.Err(); seq != 1 || !errors.Is(ferr, moved) {
		t.Errorf("Err() = %d, %v: want sequence 1 failed with the Moved error", seq, ferr)
	}
}
