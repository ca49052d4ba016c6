package verify

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-streaming-server/stores"

	"github.com/stanmigrate/stanmigrate/internal/digest"
	"github.com/stanmigrate/stanmigrate/plan"
)

// smallWindows are bounds that make window() return minWindow: an
// average message of 1 MiB.
func smallWindows(first, last, msgs uint64) bounds {
	return bounds{known: true, first: first, last: last, msgs: msgs, bytes: msgs << 20}
}

// A channel read through many windows, with differences in later ones,
// gives the same counts, lists and digests as reading it in one piece:
// every message once, in order, and each side's digest over exactly what
// that side holds.
func TestWindows(t *testing.T) {
	lim := &stores.StoreLimits{}
	lim.AddPerChannel("front", &stores.ChannelLimits{MsgStoreLimits: stores.MsgStoreLimits{MaxMsgs: 200}})
	lim.AddPerChannel("onesub", &stores.ChannelLimits{SubStoreLimits: stores.SubStoreLimits{MaxSubscriptions: 1}})
	e := newEnv(t, lim)
	ctx := context.Background()
	if w := window(msgCost(smallWindows(1, 1000, 1000), nil)); w != minWindow {
		t.Fatalf("window = %d, want %d", w, minWindow)
	}

	const n = 5*minWindow + 17
	e.publish(t, "many", 1, n)
	c := e.channel(t, "many")
	tampered := uint64(4*minWindow + 3)
	s := e.buildStream(t, c, map[uint64][]byte{tampered: []byte("tampered")})
	deleted := uint64(2*minWindow + 1)
	if err := s.DeleteMsg(ctx, deleted); err != nil {
		t.Fatal(err)
	}
	wantS, wantT := digest.New(), digest.New()
	for _, m := range e.read(t, c) {
		wantS.Add(m.Sequence, m.Subject, m.Data)
		switch m.Sequence {
		case deleted:
		case tampered:
			wantT.Add(m.Sequence, m.Subject, []byte("tampered"))
		default:
			wantT.Add(m.Sequence, m.Subject, m.Data)
		}
	}
	for _, b := range []bounds{smallWindows(1, n, n), {known: true, first: 1, last: n, msgs: n, bytes: n}} {
		r, err := fullChannel(ctx, e.src(t, true, nil), e.js, &c, b, e.streamAt(t, ctx, c.Stream), &prefix{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.OK || !slices.Equal(r.Missing, []uint64{deleted}) || !slices.Equal(r.Changed, []uint64{tampered}) || r.ExtraCount != 0 {
			t.Errorf("window %d: missing %v changed %v extra %v, want [%d] [%d] none", window(msgCost(b, &c)), r.Missing, r.Changed, r.Extra, deleted, tampered)
		}
		if r.Source.Msgs != n || r.Source.SHA256 != wantS.Sum() || r.Target.Msgs != n-1 || r.Target.SHA256 != wantT.Sum() {
			t.Errorf("window %d: STAN %+v, stream %+v; want %d msgs %s and %d msgs %s", window(msgCost(b, &c)), r.Source, r.Target, n, wantS.Sum(), n-1, wantT.Sum())
		}
	}

	// The front moved past where the read starts (bounds older than the
	// channel): windows that STAN starts later than asked still hand
	// over each remaining message once, in order.
	e.publish(t, "front", 1, 500)
	fc := e.channel(t, "front")
	if fc.FirstSeq != 301 {
		t.Fatalf("front: first sequence %d, want 301", fc.FirstSeq)
	}
	e.buildStream(t, fc, nil)
	want := digest.New()
	for _, m := range e.read(t, fc) {
		want.Add(m.Sequence, m.Subject, m.Data)
	}
	r, err := fullChannel(ctx, e.src(t, true, nil), e.js, &fc, smallWindows(1, 500, 500), e.streamAt(t, ctx, fc.Stream), &prefix{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Source.Msgs != 200 || r.Source.SHA256 != want.Sum() || r.MissingCount+r.ExtraCount+r.ChangedCount != 0 {
		t.Errorf("front: %+v", r)
	}
	// A channel that takes one subscription at a time is read one window
	// at a time.
	e.publish(t, "onesub", 1, 3*minWindow+5)
	oc := e.channel(t, "onesub")
	e.buildStream(t, oc, nil)
	r, err = fullChannel(ctx, e.src(t, true, nil), e.js, &oc, smallWindows(1, oc.LastSeq, oc.Msgs), e.streamAt(t, ctx, oc.Stream), &prefix{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK || r.Source.Msgs != oc.Msgs {
		t.Errorf("onesub: %+v", r)
	}

	// Without monitoring the read learns the real first sequence: from
	// the first message read when one window covers the range, and by
	// asking first when it takes several.
	big := fc
	big.Bytes = big.Msgs << 20
	for _, c := range []*plan.Channel{&fc, &big} {
		r, err = e.unmonitored(ctx, t, c)
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK || r.Source.FirstSeq != 301 || r.Source.SHA256 != want.Sum() {
			t.Errorf("front without monitoring, window %d: %+v", window(msgCost(bounds{}, c)), r)
		}
	}
}

func TestFeed(t *testing.T) {
	defer func(d time.Duration) { idleTimeout = d }(idleTimeout)
	idleTimeout = 50 * time.Millisecond
	ctx := context.Background()
	timer := time.NewTimer(time.Hour)
	timer.Stop()

	// Order survives batching, and a full feed holds the producer back
	// until the merger takes.
	f := newFeed[int](8)
	const total = 1000
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 1; i <= total; i++ {
			if !f.put(i) {
				t.Errorf("put %d refused", i)
				return
			}
		}
	})
	for want := 1; want <= total; want++ {
		got, why, err := f.next(ctx, timer, nil, idleTimeout)
		if err != nil || why != gotOne || got != want {
			t.Fatalf("next = %d, %v, %v; want %d", got, why, err, want)
		}
		f.mu.Lock()
		held := len(f.in)
		f.mu.Unlock()
		if held > f.limit {
			t.Fatalf("feed holds %d, limit %d", held, f.limit)
		}
	}
	wg.Wait()

	// Silence ends in wentIdle; an ended source first gives what it put.
	if _, why, err := f.next(ctx, timer, nil, idleTimeout); err != nil || why != wentIdle {
		t.Errorf("silent feed: %v, %v", why, err)
	}
	ended := make(chan struct{})
	f.put(7)
	close(ended)
	if got, why, _ := f.next(ctx, timer, ended, idleTimeout); why != gotOne || got != 7 {
		t.Errorf("ended feed: %d, %v; want 7", got, why)
	}
	if _, why, _ := f.next(ctx, timer, ended, idleTimeout); why != sourceEnded {
		t.Errorf("drained ended feed: %v", why)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := f.next(cctx, timer, nil, idleTimeout); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}

	// stop releases a producer blocked on a full feed.
	full := newFeed[int](1)
	full.put(1)
	refused := make(chan bool)
	go func() { refused <- !full.put(2) }()
	full.stop()
	if !<-refused {
		t.Error("put on a stopped full feed succeeded")
	}
}

// streamAt opens a stream as verifyChannel does before reading it.
func (e *env) streamAt(t *testing.T, ctx context.Context, name string) streamAt {
	t.Helper()
	s, st, err := openStream(ctx, e.js, name)
	if err != nil {
		t.Fatal(err)
	}
	return streamAt{s: s, state: st}
}
