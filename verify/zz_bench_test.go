package verify

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/stan.go"
)

func TestSpeed(t *testing.T) {
	e := newEnv(t, nil)
	const n = 300000
	payload := make([]byte, 100)
	var acked atomic.Int64
	done := make(chan struct{})
	for i := 0; i < n; i++ {
		if _, err := e.sc.PublishAsync("big", payload, func(string, error) {
			if acked.Add(1) == n {
				close(done)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	c := e.channel(t, "big")
	ctx := context.Background()
	s, _ := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: c.Stream, Subjects: []string{c.Name}})
	for i := 0; i < n; i++ {
		if _, err := e.js.PublishAsync("big", payload); err != nil {
			t.Fatal(err)
		}
	}
	<-e.js.PublishAsyncComplete()

	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(0, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for round := 0; round < 3; round++ {
		c0 := cpu()
		start := time.Now()
		got := make(chan struct{})
		var cnt atomic.Int64
		sub, err := e.sc.Subscribe("big", func(m *stan.Msg) {
			if cnt.Add(1) == n {
				close(got)
			}
		}, stan.DeliverAllAvailable(), stan.MaxInflight(8192))
		if err != nil {
			t.Fatal(err)
		}
		<-got
		raw := time.Since(start)
		sub.Unsubscribe()
		c1 := cpu()

		start = time.Now()
		tr, _ := startStream(ctx, s)
		for i := 0; i < n; i++ {
			<-tr.ch
		}
		tr.stop()
		rawJS := time.Since(start)
		c2 := cpu()

		start = time.Now()
		r, err := Channel(ctx, e.sc, e.js, "x", &c)
		if err != nil || !r.OK {
			t.Fatal(err, r)
		}
		v := time.Since(start)
		c3 := cpu()
		t.Logf("cpu raw %v js %v verify %v", c1-c0, c2-c1, c3-c2)
		t.Logf("raw %v (%.0f/s), js %v (%.0f/s), verify %v (%.0f/s) ratio %.2f", raw, n/raw.Seconds(), rawJS, n/rawJS.Seconds(), v, n/v.Seconds(), raw.Seconds()/v.Seconds())
	}
}
