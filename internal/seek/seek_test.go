package seek_test

import (
	"context"
	"errors"
	"math/bits"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/seek"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/topotest"
)

func startJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	j, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(j.Stop)
	_, js := topotest.JetStream(t, j.URL())
	return js
}

// base is the original time of the first message in the tests' streams.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fill stores n messages on subject with original timestamps base +
// i*step (i from 0), as migrate writes them, plus extra headers per
// sequence (1-based), and returns each sequence's timestamp.
func fill(t *testing.T, js jetstream.JetStream, stream string, n int, step time.Duration, extra map[int]nats.Header) map[uint64]time.Time {
	t.Helper()
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{stream}}); err != nil {
		t.Fatal(err)
	}
	ts := map[uint64]time.Time{}
	for i := range n {
		at := base.Add(time.Duration(i) * step)
		h := nats.Header{}
		h.Set(jsformat.HdrTimestamp, jsformat.Timestamp(at.UnixNano()))
		for k, v := range extra[i+1] {
			h[k] = v
		}
		ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: stream, Header: h, Data: []byte(strconv.Itoa(i))})
		if err != nil {
			t.Fatal(err)
		}
		ts[ack.Sequence] = at
	}
	return ts
}

func TestAtOrAfterFindsTheFirstMessageAtOrAfterTheTime(t *testing.T) {
	js := startJS(t)
	ctx := context.Background()
	const n = 1000
	step := time.Second
	fill(t, js, "orders", n, step, nil)
	// Sequences 400..449 deleted, as by a limit or a purge: a search
	// landing there steps to the next stored message.
	s, _ := js.Stream(ctx, "orders")
	for seq := uint64(400); seq < 450; seq++ {
		if err := s.DeleteMsg(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}
	at := func(seq uint64) time.Time { return base.Add(time.Duration(seq-1) * step) }
	cases := []struct {
		name  string
		t     time.Time
		found bool
		seq   uint64
	}{
		{"before the first message", base.Add(-time.Hour), true, 1},
		{"the first message's own time", base, true, 1},
		{"exactly a message's time", at(700), true, 700},
		{"between two messages", at(700).Add(time.Millisecond), true, 701},
		{"inside the deleted run", at(420), true, 450},
		{"just before the deleted run", at(399).Add(time.Nanosecond), true, 450},
		{"the last message's own time", at(n), true, n},
		{"after the last message", at(n).Add(time.Nanosecond), false, n + 1},
	}
	// A binary search with a get per step: about log2(n) reads.
	maxLookups := 2 * bits.Len(uint(n))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := seek.AtOrAfter(ctx, js, "orders", c.t)
			if err != nil {
				t.Fatal(err)
			}
			if r.Found != c.found || r.Seq != c.seq {
				t.Fatalf("found %v at %d, want %v at %d", r.Found, r.Seq, c.found, c.seq)
			}
			if c.found && !r.Timestamp.Equal(at(c.seq)) {
				t.Errorf("timestamp %v, want sequence %d's %v", r.Timestamp, c.seq, at(c.seq))
			}
			if r.Lookups > maxLookups {
				t.Errorf("%d lookups for %d messages, want at most %d", r.Lookups, n, maxLookups)
			}
		})
	}
}

func TestAtOrAfterStepsOverGapPlaceholders(t *testing.T) {
	js := startJS(t)
	gap := nats.Header{jsformat.HdrGap: {"true"}}
	// Placeholders carry no timestamp; one left behind (migrate deletes
	// them once stored) is stepped over like a deleted sequence.
	extra := map[int]nats.Header{}
	for seq := 4; seq <= 6; seq++ {
		extra[seq] = gap
	}
	fill(t, js, "gappy", 8, time.Minute, extra)
	for want := uint64(1); want <= 8; want++ {
		if want >= 4 && want <= 6 {
			continue
		}
		r, err := seek.AtOrAfter(context.Background(), js, "gappy", base.Add(time.Duration(want-1)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if !r.Found || r.Seq != want {
			t.Errorf("time of sequence %d: found %v at %d", want, r.Found, r.Seq)
		}
	}
	r, err := seek.AtOrAfter(context.Background(), js, "gappy", base.Add(3*time.Minute+time.Second))
	if err != nil || r.Seq != 7 {
		t.Fatalf("time just after sequence 4's slot: %+v, %v; want 7", r, err)
	}
}

func TestAtOrAfterRefusesForeignMessagesAndMissingStreams(t *testing.T) {
	js := startJS(t)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "foreign", Subjects: []string{"foreign"}}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := js.Publish(ctx, "foreign", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	_, err := seek.AtOrAfter(ctx, js, "foreign", base)
	if !errors.Is(err, seek.ErrNoTimestamp) {
		t.Fatalf("want ErrNoTimestamp, got %v", err)
	}
	// The error names the stream and the sequence that lacks the header.
	if msg := err.Error(); !containsAll(msg, `stream "foreign"`, "sequence 3", jsformat.HdrTimestamp) {
		t.Errorf("error does not name stream, sequence and header: %s", msg)
	}
	if _, err := seek.AtOrAfter(ctx, js, "nosuch", base); !errors.Is(err, seek.ErrNoStream) {
		t.Fatalf("missing stream: want ErrNoStream, got %v", err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "empty", Subjects: []string{"empty"}}); err != nil {
		t.Fatal(err)
	}
	r, err := seek.AtOrAfter(ctx, js, "empty", base)
	if err != nil || r.Found || r.Seq != 1 {
		t.Fatalf("empty stream: %+v, %v; want not found, next sequence 1", r, err)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
