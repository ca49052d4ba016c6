package live_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/internal/source/live"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
)

// windowed seeds one channel of 1,000 messages and returns a live source
// on it.
func windowed(t *testing.T) (context.Context, source.Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	spec := &fixture.Spec{Channels: []fixture.Channel{{Name: "w", Messages: 1000, Size: 16}}}
	env, err := testenv.Start(ctx, t.TempDir(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	return ctx, env.Src(t)
}

// TestWindowReadStopsForGoodWhenDeliverSaysStop: migrate refuses a
// message once a publish failed, and must see nothing after it: a later
// sequence would be taken for a gap in the channel and the refused
// message never copied. The refusal falls inside the second of the two
// windows open at once, while a third is already waiting.
func TestWindowReadStopsForGoodWhenDeliverSaysStop(t *testing.T) {
	ctx, src := windowed(t)
	var mu sync.Mutex
	var got []uint64
	rd, err := src.Read(ctx, "w", 1, source.ReadOptions{MaxInflight: 100, To: 1000, Deliver: func(m source.Msg) bool {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m.Sequence)
		return m.Sequence < 150
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	select {
	case <-rd.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the read did not end after Deliver refused sequence 150")
	}
	if err := rd.Err(); err != nil {
		t.Fatalf("the read ended with %v; want no error (the consumer stopped it)", err)
	}
	time.Sleep(500 * time.Millisecond) // what the open windows would still deliver
	mu.Lock()
	defer mu.Unlock()
	want := make([]uint64, 150)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %d message(s), %v...; want exactly sequences 1..150", len(got), got[max(0, len(got)-5):])
	}
}

// TestSilentWindowEndsTheRead: a window STAN stops sending while it owes
// messages (here: the read asks up to 1,100 of a channel that ends at
// 1,000) ends the read with ErrLost once the stall timeout passed, so
// that migrate reads again instead of waiting for ever.
func TestSilentWindowEndsTheRead(t *testing.T) {
	defer live.SetStallTimeout(live.SetStallTimeout(time.Second))
	ctx, src := windowed(t)
	var n atomic.Int64
	rd, err := src.Read(ctx, "w", 1, source.ReadOptions{MaxInflight: 300, To: 1100, Deliver: func(source.Msg) bool { n.Add(1); return true }})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	select {
	case <-rd.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the read did not end though STAN went silent before its last sequence")
	}
	if err := rd.Err(); !errors.Is(err, source.ErrLost) {
		t.Fatalf("the read ended with %v; want ErrLost", err)
	}
	if n := n.Load(); n != 1000 {
		t.Fatalf("delivered %d message(s) before the read ended; want all 1000", n)
	}
}
