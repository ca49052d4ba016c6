package live_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/internal/source/live"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testenv"
)

// windowed seeds one channel of 1,000 messages (STAN keeping at most
// maxMsgs of it, 0: all) and returns a live source on it and the server.
func windowed(t *testing.T, maxMsgs int) (context.Context, source.Source, *testenv.Env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	spec := &fixture.Spec{Channels: []fixture.Channel{{Name: "w", Messages: 1000, Size: 16}}}
	if maxMsgs > 0 {
		spec.Limits.Channels = map[string]fixture.ChannelLimit{"w": {MaxMsgs: maxMsgs}}
	}
	env, err := testenv.Start(ctx, t.TempDir(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	return ctx, env.Src(t), env
}

// endOf waits for rd to end on its own and returns why; the test fails
// if it has not within 20 s.
func endOf(t *testing.T, rd source.Reader, when string) error {
	t.Helper()
	select {
	case <-rd.Done():
		return rd.Err()
	case <-time.After(20 * time.Second):
		t.Fatalf("the read did not end %s", when)
		return nil
	}
}

// TestWindowReadStopsForGoodWhenDeliverSaysStop: migrate refuses a
// message once a publish failed, and must see nothing after it: a later
// sequence would be taken for a gap in the channel and the refused
// message never copied. The refusal falls inside the second of the two
// windows open at once, while a third is already waiting.
func TestWindowReadStopsForGoodWhenDeliverSaysStop(t *testing.T) {
	ctx, src, _ := windowed(t, 0)
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
	if err := endOf(t, rd, "after Deliver refused sequence 150"); err != nil {
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
// 1,000) ends the read with ErrLost, so that migrate and verify read again
// instead of waiting for ever (an FT standby taking over leaves exactly
// this silence: TestFaultTolerantSTANFailoverMidMigrate). STAN sends a
// window in full at once, so the read gives up as an acknowledged read
// with room does, long before a stall timeout of an hour, whether it is
// migrate's (Contiguous) or verify's.
func TestSilentWindowEndsTheRead(t *testing.T) {
	defer live.SetStallTimeout(live.SetStallTimeout(time.Hour))
	for _, tc := range []struct {
		name       string
		contiguous bool
	}{
		{"verify's read", false},
		{"migrate's read", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, src, _ := windowed(t, 0)
			var n atomic.Int64
			rd, err := src.Read(ctx, "w", 1, source.ReadOptions{MaxInflight: 300, To: 1100, Contiguous: tc.contiguous,
				Deliver: func(source.Msg) bool { n.Add(1); return true }})
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			if err := endOf(t, rd, "though STAN went silent before its last sequence"); !errors.Is(err, source.ErrLost) {
				t.Fatalf("the read ended with %v; want ErrLost", err)
			}
			if n := n.Load(); n != 1000 {
				t.Fatalf("delivered %d message(s) before the read ended; want all 1000", n)
			}
		})
	}
}

// TestContiguousReadEndsWhereALaterWindowStartsPastItsFirstSequence: the
// front of a channel (max_msgs 1,000) moves past the third window's first
// sequence while the consumer is busy in the first. A contiguous read
// (migrate's) ends with ErrJump there rather than hand over sequence 401
// after 200: only a fresh read's start may be taken for a gap. A read that
// is not contiguous (verify's) goes on from 401.
func TestContiguousReadEndsWhereALaterWindowStartsPastItsFirstSequence(t *testing.T) {
	for _, contiguous := range []bool{true, false} {
		t.Run(fmt.Sprintf("contiguous=%v", contiguous), func(t *testing.T) {
			ctx, src, env := windowed(t, 1000)
			sc, err := stan.Connect(env.Pair.STAN.ClusterID(), "producer", stan.NatsURL(env.Pair.STAN.URL()))
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			var mu sync.Mutex
			var got []uint64
			rd, err := src.Read(ctx, "w", 1, source.ReadOptions{MaxInflight: 100, To: 1000, Contiguous: contiguous, Deliver: func(m source.Msg) bool {
				if m.Sequence == 50 {
					// The first two windows (1..200) are sent; STAN now drops 1..400.
					for i := 0; i < 400; i++ {
						if err := sc.Publish("w", []byte("more")); err != nil {
							t.Error(err)
							return false
						}
					}
				}
				mu.Lock()
				defer mu.Unlock()
				got = append(got, m.Sequence)
				return true
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			if !contiguous {
				deadline := time.Now().Add(20 * time.Second)
				for {
					mu.Lock()
					n := len(got)
					mu.Unlock()
					if n >= 800 || time.Now().After(deadline) {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				mu.Lock()
				defer mu.Unlock()
				if len(got) != 800 || got[199] != 200 || got[200] != 401 || got[799] != 1000 {
					t.Fatalf("delivered %d message(s); want 1..200 then 401..1000", len(got))
				}
				return
			}
			if err := endOf(t, rd, "where the third window started past sequence 201"); !errors.Is(err, source.ErrJump) {
				t.Fatalf("the read ended with %v; want ErrJump", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 200 || got[199] != 200 {
				t.Fatalf("delivered %d message(s) (last %d); want exactly 1..200", len(got), got[len(got)-1])
			}
		})
	}
}
