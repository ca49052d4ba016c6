package fastingest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// TestOrbitBehaviour records how orbit.go's FastPublisher (v0.3.2), the
// alternative to this package, reports the cases migrate depends on; it
// documents the reasons for not using it rather than testing our code.
// The assertions are on what it does today; should a release change it,
// this test says so.
func TestOrbitBehaviour(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out orbit's ack timeout")
	}
	e := startEnv(t)
	createStream(t, e.js, "orbplain", false, 1)
	createStream(t, e.js, "orbmid", true, 1)

	t.Run("not enabled: the first Add waits out the ack timeout", func(t *testing.T) {
		var mu sync.Mutex
		var handled []error
		fp, err := jetstreamext.NewFastPublisher(e.js,
			jetstreamext.FastPublishFlowControl{AckTimeout: time.Second},
			jetstreamext.WithFastPublisherErrorHandler(func(err error) { mu.Lock(); handled = append(handled, err); mu.Unlock() }))
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		_, err = fp.Add("orbplain", []byte("x"))
		el := time.Since(t0)
		mu.Lock()
		defer mu.Unlock()
		t.Logf("Add: %v after %v; error handler got %v", err, el.Round(time.Millisecond), handled)
		var apiErr *jetstream.APIError
		if err == nil || errors.As(err, &apiErr) || el < 900*time.Millisecond {
			t.Errorf("orbit now reports a disabled stream differently: %v after %v", err, el)
		}
	})

	t.Run("mismatch mid-batch: only the error handler learns the sequence", func(t *testing.T) {
		var mu sync.Mutex
		var handled []error
		fp, err := jetstreamext.NewFastPublisher(e.js,
			jetstreamext.FastPublishFlowControl{Flow: 16, MaxOutstandingAcks: 4, AckTimeout: 2 * time.Second},
			jetstreamext.WithFastPublisherErrorHandler(func(err error) { mu.Lock(); handled = append(handled, err); mu.Unlock() }))
		if err != nil {
			t.Fatal(err)
		}
		m := newMessage()
		var lastAck uint64
		for seq := uint64(1); seq <= 64; seq++ {
			m.set("orbmid", seq)
			ack, err := fp.AddMsg(&nats.Msg{Subject: "orbmid", Header: m.hdr, Data: payload(seq)})
			if err != nil {
				t.Fatal(err)
			}
			lastAck = ack.AckSequence
		}
		if _, err := e.js.Publish(context.Background(), "orbmid", []byte("foreign")); err != nil {
			t.Fatal(err)
		}
		var addErr error
		for seq := uint64(65); seq <= 200 && addErr == nil; seq++ {
			m.set("orbmid", seq)
			_, addErr = fp.AddMsg(&nats.Msg{Subject: "orbmid", Header: m.hdr, Data: payload(seq)})
			time.Sleep(200 * time.Microsecond)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Logf("ack sequence from Add before the foreign write: %d; Add after: %v; error handler: %v", lastAck, addErr, handled)
		if len(handled) == 0 {
			t.Error("orbit's error handler got nothing")
		}
	})
}
