package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-streaming-server/stores"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/digest"
	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/monitor"
	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/internal/source/live"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/plan"
)

func TestMain(m *testing.M) {
	// Nothing in these tests should stall; if something does, fail fast
	// rather than wait out production timeouts.
	idleTimeout = 3 * time.Second
	os.Exit(m.Run())
}

type env struct {
	p   *embedded.Pair
	sc  stan.Conn
	nc  *nats.Conn
	js  jetstream.JetStream
	mon *monitor.Client
}

func newEnv(t *testing.T, limits *stores.StoreLimits) *env {
	t.Helper()
	p, err := embedded.StartPair(t.TempDir(), limits)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	e := &env{p: p, mon: monitor.New(p.STAN.MonitorURL(), nil)}
	e.sc = e.connect(t, "test-publisher")
	if e.nc, err = nats.Connect(p.JetStream.URL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.nc.Close)
	if e.js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) connect(t *testing.T, clientID string) stan.Conn {
	t.Helper()
	sc, err := stan.Connect(e.p.STAN.ClusterID(), clientID, stan.NatsURL(e.p.STAN.URL()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sc.Close() })
	return sc
}

func (e *env) publish(t *testing.T, channel string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := e.sc.Publish(channel, []byte(fmt.Sprintf("%s payload %d", channel, i))); err != nil {
			t.Fatal(err)
		}
	}
}

// channel is the plan entry for a channel as monitoring shows it now.
func (e *env) channel(t *testing.T, name string) plan.Channel {
	t.Helper()
	cz, err := e.mon.Channel(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return plan.Channel{Name: name, Stream: "S_" + name, FirstSeq: cz.FirstSeq, LastSeq: cz.LastSeq,
		Msgs: uint64(cz.Msgs), Bytes: cz.Bytes, Replicas: 1, Storage: "file"}
}

// read returns every message of the channel, in order.
func (e *env) read(t *testing.T, c plan.Channel) []*stan.Msg {
	t.Helper()
	if c.Msgs == 0 {
		return nil
	}
	got := make(chan *stan.Msg, c.Msgs)
	sub, err := e.sc.Subscribe(c.Name, func(m *stan.Msg) { got <- m }, stan.DeliverAllAvailable(), stan.MaxInflight(int(c.Msgs)))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	var out []*stan.Msg
	for len(out) < int(c.Msgs) {
		select {
		case m := <-got:
			out = append(out, m)
		case <-time.After(5 * time.Second):
			t.Fatalf("channel %q: read %d of %d messages", c.Name, len(out), c.Msgs)
		}
	}
	return out
}

// buildStream makes the stream exactly as migrate does: subject = channel,
// purged up to the first sequence, every message republished in order so
// that stream sequence == channel sequence. alter replaces payloads.
func (e *env) buildStream(t *testing.T, c plan.Channel, alter map[uint64][]byte) jetstream.Stream {
	t.Helper()
	ctx := context.Background()
	s, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: c.Stream, Subjects: []string{c.Name}, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	if c.FirstSeq > 1 {
		if err := s.Purge(ctx, jetstream.WithPurgeSequence(c.FirstSeq)); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range e.read(t, c) {
		data := m.Data
		if a, ok := alter[m.Sequence]; ok {
			data = a
		}
		ack, err := e.js.Publish(ctx, m.Subject, data, jetstream.WithExpectLastSequence(m.Sequence-1))
		if err != nil {
			t.Fatalf("publish seq %d: %v", m.Sequence, err)
		}
		if ack.Sequence != m.Sequence {
			t.Fatalf("stream sequence %d for channel sequence %d", ack.Sequence, m.Sequence)
		}
	}
	return s
}

func (e *env) plan(chans ...plan.Channel) *plan.Plan {
	return &plan.Plan{Version: plan.FormatVersion, Source: plan.Source{ClusterID: e.p.STAN.ClusterID()}, Channels: chans}
}

func (e *env) options() Options {
	return Options{Target: conn.Side{Name: "JetStream", URL: e.p.JetStream.URL()}, Parallel: 2}
}

// src is the STAN server as a source: through monitoring, or without it
// (p's channels and durables, bounds learned by subscribing).
func (e *env) src(t *testing.T, withMonitor bool, p *plan.Plan) source.Source {
	t.Helper()
	o := live.Options{ClusterID: e.p.STAN.ClusterID(), STAN: conn.Side{Name: "STAN", URL: e.p.STAN.URL()},
		Sessions: 2, LearnTimeout: 300 * time.Millisecond}
	var src source.Source
	if withMonitor {
		m, err := live.NewMonitored(context.Background(), o, e.mon, e.p.STAN.MonitorURL())
		if err != nil {
			t.Fatal(err)
		}
		src = m
	} else {
		src = live.NewUnmonitored(o, p.SourceChannels())
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// run verifies p through the source withMonitor chooses.
func (e *env) run(ctx context.Context, t *testing.T, withMonitor bool, p *plan.Plan, o Options) (*Report, error) {
	t.Helper()
	return Run(ctx, e.src(t, withMonitor, p), p, o)
}

// mon0 is a monitored source for a test that needs no plan.
func (e *env) mon0(t *testing.T) source.Source { return e.src(t, true, nil) }

// unmonitored compares one channel with its stream without monitoring:
// its bounds are learned by subscribing.
func (e *env) unmonitored(ctx context.Context, t *testing.T, c *plan.Channel) (*ChannelReport, error) {
	t.Helper()
	rep, err := e.run(ctx, t, false, e.plan(*c), e.options())
	if err != nil && !errors.Is(err, ErrDifferences) {
		return nil, err
	}
	return &rep.Channels[0], nil
}

// progressFunc is a Reporter calling a function with each channel's
// progress.
type progressFunc func(channel string, msgs uint64)

func (progressFunc) Begin(uint64, uint64)                   {}
func (f progressFunc) Progress(channel string, msgs uint64) { f(channel, msgs) }

func TestChannels(t *testing.T) {
	lim := &stores.StoreLimits{}
	lim.AddPerChannel("trunc", &stores.ChannelLimits{MsgStoreLimits: stores.MsgStoreLimits{MaxMsgs: 10}})
	e := newEnv(t, lim)
	ctx := context.Background()

	cases := []struct {
		name    string
		publish int
		alter   map[uint64][]byte
		mutate  func(t *testing.T, c plan.Channel, s jetstream.Stream)
		first   uint64
		missing []uint64
		extra   []uint64
		changed []uint64
	}{
		{name: "same", publish: 20, first: 1},
		{name: "deleted", publish: 20, first: 1, missing: []uint64{7},
			mutate: func(t *testing.T, _ plan.Channel, s jetstream.Stream) {
				if err := s.DeleteMsg(ctx, 7); err != nil {
					t.Fatal(err)
				}
			}},
		// The stream keeps a deleted last message's sequence as its last:
		// reading must end on "nothing pending", not wait for it.
		{name: "deletedlast", publish: 20, first: 1, missing: []uint64{20},
			mutate: func(t *testing.T, _ plan.Channel, s jetstream.Stream) {
				if err := s.DeleteMsg(ctx, 20); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "extra", publish: 20, first: 1, extra: []uint64{21},
			mutate: func(t *testing.T, c plan.Channel, _ jetstream.Stream) {
				if _, err := e.js.Publish(ctx, c.Name, []byte("not from STAN")); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "changed", publish: 20, first: 1, changed: []uint64{5},
			alter: map[uint64][]byte{5: []byte("tampered")}},
		// max_msgs 10 of 25: STAN keeps 16..25 and the stream starts there.
		{name: "trunc", publish: 25, first: 16},
		// Created by a subscription: no message ever, sequences 0/0.
		{name: "empty", publish: 0, first: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.publish > 0 {
				e.publish(t, tc.name, 1, tc.publish)
			} else {
				sub, err := e.sc.Subscribe(tc.name, func(*stan.Msg) {})
				if err != nil {
					t.Fatal(err)
				}
				_ = sub.Unsubscribe()
			}
			c := e.channel(t, tc.name)
			s := e.buildStream(t, c, tc.alter)
			if tc.mutate != nil {
				tc.mutate(t, c, s)
			}
			want := digest.New()
			for _, m := range e.read(t, c) {
				want.Add(m.Sequence, m.Subject, m.Data)
			}
			ok := tc.missing == nil && tc.extra == nil && tc.changed == nil

			var progressed uint64
			o := e.options()
			o.Reporter = progressFunc(func(ch string, n uint64) {
				if ch != tc.name {
					t.Errorf("progress for channel %q", ch)
				}
				progressed += n
			})
			rep, err := e.run(ctx, t, true, e.plan(c), o)
			if ok != (err == nil) || (!ok && !errors.Is(err, ErrDifferences)) {
				t.Fatalf("Run: err = %v, want differences: %v", err, !ok)
			}
			if len(rep.Channels) != 1 || rep.OK != ok {
				t.Fatalf("report %+v", rep)
			}
			if progressed != want.Count && tc.extra == nil {
				t.Errorf("progress reported %d messages, want %d", progressed, want.Count)
			}
			fromRun := rep.Channels[0]

			// The same comparison without monitoring: bounds learned by
			// subscribing.
			fromChannel, err := e.unmonitored(ctx, t, &c)
			if err != nil {
				t.Fatal(err)
			}
			for how, r := range map[string]*ChannelReport{"Run": &fromRun, "Channel": fromChannel} {
				if r.OK != ok {
					t.Errorf("%s: OK = %v, problem %q", how, r.OK, r.Problem)
				}
				if !slices.Equal(r.Missing, tc.missing) || !slices.Equal(r.Extra, tc.extra) || !slices.Equal(r.Changed, tc.changed) {
					t.Errorf("%s: missing %v extra %v changed %v, want %v %v %v", how, r.Missing, r.Extra, r.Changed, tc.missing, tc.extra, tc.changed)
				}
				if r.MissingCount != uint64(len(tc.missing)) || r.ExtraCount != uint64(len(tc.extra)) || r.ChangedCount != uint64(len(tc.changed)) {
					t.Errorf("%s: counts %d/%d/%d", how, r.MissingCount, r.ExtraCount, r.ChangedCount)
				}
				if r.Source.SHA256 != want.Sum() || r.Source.Msgs != want.Count || r.Source.FirstSeq != tc.first || r.Source.LastSeq != c.LastSeq {
					t.Errorf("%s: STAN side %+v, want %d msgs %d..%d sha %s", how, r.Source, want.Count, tc.first, c.LastSeq, want.Sum())
				}
				if ok && r.Target != r.Source {
					t.Errorf("%s: stream side %+v, STAN side %+v", how, r.Target, r.Source)
				}
				if !ok {
					if r.Target.SHA256 == r.Source.SHA256 {
						t.Errorf("%s: same hash on both sides of a difference", how)
					}
					var seq uint64
					for _, l := range [][]uint64{tc.missing, tc.extra, tc.changed} {
						if len(l) > 0 {
							seq = l[0]
						}
					}
					if !strings.Contains(r.Problem, strconv.Quote(tc.name)) || !strings.Contains(r.Problem, fmt.Sprintf("sequence %d ", seq)) {
						t.Errorf("%s: problem %q should name channel %q and sequence %d", how, r.Problem, tc.name, seq)
					}
				}
			}
			if rep.Differences != len(tc.missing)+len(tc.extra)+len(tc.changed) {
				t.Errorf("differences = %d", rep.Differences)
			}
			t.Logf("%s: %s", tc.name, fromRun.Problem)
		})
	}

	t.Run("all at once", func(t *testing.T) {
		var chans []plan.Channel
		for _, tc := range cases {
			chans = append(chans, e.channel(t, tc.name))
		}
		rep, err := e.run(ctx, t, true, e.plan(chans...), e.options())
		if !errors.Is(err, ErrDifferences) || rep.Differences != 4 || len(rep.Channels) != len(cases) {
			t.Fatalf("err %v, report %+v", err, rep)
		}
		for i, r := range rep.Channels {
			if r.Channel != cases[i].name {
				t.Errorf("report %d is channel %q, want plan order", i, r.Channel)
			}
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := Run(cctx, e.mon0(t), e.plan(e.channel(t, "same")), e.options()); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("stalled", func(t *testing.T) {
		// STAN announced more than it delivers: the merge must end with
		// a report, not hang, once reading again got no further.
		defer func(d, b time.Duration) { idleTimeout, rereadBudget = d, b }(idleTimeout, rereadBudget)
		idleTimeout, rereadBudget = 200*time.Millisecond, time.Second
		c := e.channel(t, "same")
		r, err := fullChannel(ctx, e.src(t, true, nil), e.js, &c, bounds{known: true, first: 1, last: 25, msgs: 25}, e.streamAt(t, ctx, c.Stream), &prefix{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.OK || !strings.Contains(r.Problem, "STAN delivered nothing") || r.Source.Msgs != 20 {
			t.Errorf("%+v", r)
		}
	})

	t.Run("missing stream", func(t *testing.T) {
		c := e.channel(t, "same")
		c.Stream = "NOPE"
		rep, err := e.run(ctx, t, true, e.plan(c), e.options())
		if !errors.Is(err, ErrDifferences) {
			t.Fatal(err)
		}
		r := rep.Channels[0]
		if r.MissingCount != 20 || !strings.Contains(r.Problem, `stream "NOPE" does not exist`) {
			t.Errorf("report %+v", r)
		}
	})

	t.Run("sample", func(t *testing.T) {
		e.publish(t, "sampled", 1, 15)
		c := e.channel(t, "sampled")
		e.buildStream(t, c, map[uint64][]byte{9: []byte("tampered")})
		for _, withMonitor := range []bool{true, false} {
			o := e.options()
			o.Sample = 100
			rep, err := e.run(ctx, t, withMonitor, e.plan(c), o)
			if !errors.Is(err, ErrDifferences) {
				t.Fatalf("monitor %v: err %v", withMonitor, err)
			}
			r := rep.Channels[0]
			if r.Sampled != 15 || !slices.Equal(r.Changed, []uint64{9}) || r.OK || r.Source != r.Target {
				t.Errorf("monitor %v: report %+v", withMonitor, r)
			}
		}
		o := e.options()
		o.Sample = 5
		rep, err := e.run(ctx, t, true, e.plan(e.channel(t, "same"), e.channel(t, "trunc")), o)
		if err != nil {
			t.Fatalf("sampling identical channels: %v %+v", err, rep)
		}
		for _, r := range rep.Channels {
			if r.Sampled != 5 || !r.OK {
				t.Errorf("report %+v", r)
			}
		}
	})
}

// TestExpiredChannel covers a channel whose every message aged out: STAN
// reports it as first = last+1, and migrate leaves an empty stream
// positioned at the same first sequence.
func TestExpiredChannel(t *testing.T) {
	lim := &stores.StoreLimits{}
	lim.AddPerChannel("gone", &stores.ChannelLimits{MsgStoreLimits: stores.MsgStoreLimits{MaxAge: time.Second}})
	e := newEnv(t, lim)
	e.publish(t, "gone", 1, 5)
	var c plan.Channel
	deadline := time.Now().Add(5 * time.Second)
	for {
		c = e.channel(t, "gone")
		if c.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages did not expire: %+v", c)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c.FirstSeq != 6 || c.LastSeq != 5 {
		t.Fatalf("expired channel at %d..%d", c.FirstSeq, c.LastSeq)
	}
	e.buildStream(t, c, nil)
	rep, err := e.run(context.Background(), t, true, e.plan(c), e.options())
	if err != nil {
		t.Fatalf("%v: %+v", err, rep)
	}
	if r := rep.Channels[0]; r.Source.FirstSeq != 6 || r.Target.FirstSeq != 6 || r.Target.LastSeq != 5 {
		t.Errorf("report %+v", r)
	}
	r, err := e.unmonitored(context.Background(), t, &c)
	if err != nil || !r.OK {
		t.Errorf("without monitoring: %v %+v", err, r)
	}
}

func TestConsumers(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	const channel = "orders"
	e.publish(t, channel, 1, 6)

	// A plain durable and a durable queue group each receive and ack the
	// six messages, then their owners leave: both stay offline at
	// last_sent 6.
	app := e.connect(t, "app1")
	got := make(chan uint64, 64)
	onMsg := func(m *stan.Msg) {
		_ = m.Ack()
		got <- m.Sequence
	}
	opts := []stan.SubscriptionOption{stan.DurableName("dur"), stan.SetManualAckMode(), stan.MaxInflight(64),
		stan.AckWait(30 * time.Second), stan.DeliverAllAvailable()}
	if _, err := app.Subscribe(channel, onMsg, opts...); err != nil {
		t.Fatal(err)
	}
	if _, err := app.QueueSubscribe(channel, "workers", onMsg, opts...); err != nil {
		t.Fatal(err)
	}
	for range 12 {
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("durables did not receive the messages")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		cz, err := e.mon.Channel(ctx, channel)
		if err != nil {
			t.Fatal(err)
		}
		settled := len(cz.Subscriptions) == 2
		for _, s := range cz.Subscriptions {
			settled = settled && s.LastSent == 6 && s.PendingCount == 0
		}
		if settled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("acks not applied")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	e.publish(t, channel, 7, 4)

	c := e.channel(t, channel)
	e.buildStream(t, c, nil)
	durable := plan.Durable{DurableID: source.DurableID{ClientID: "app1", Durable: "dur"}, Consumer: "app1_dur", Mode: plan.ModePull,
		MaxInflight: 64, AckWait: plan.Duration(30 * time.Second), LastSent: 6, StartSeq: 7, Position: jsformat.Exact}
	queue := plan.Durable{DurableID: source.DurableID{QueueGroup: "workers", Durable: "dur"}, Consumer: "workers_dur", Mode: plan.ModePull,
		MaxInflight: 64, AckWait: plan.Duration(30 * time.Second), LastSent: 6, StartSeq: 7, Position: jsformat.Exact}
	create := func(d plan.Durable, start uint64, position jsformat.Position) {
		t.Helper()
		_, err := e.js.CreateConsumer(ctx, c.Stream, jetstream.ConsumerConfig{
			Durable:       d.Consumer,
			DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:   start,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       d.AckWait.D(),
			MaxAckPending: d.MaxInflight,
			Metadata: map[string]string{
				jsformat.MetaChannel:  channel,
				jsformat.MetaClientID: d.ClientID,
				jsformat.MetaDurable:  d.Durable,
				jsformat.MetaQueue:    d.QueueGroup,
				jsformat.MetaStart:    strconv.FormatUint(start, 10),
				jsformat.MetaPosition: string(position),
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	create(durable, 7, jsformat.Exact)
	create(queue, 7, jsformat.Exact)

	run := func(withMonitor bool, ds ...plan.Durable) (*Report, error) {
		t.Helper()
		pc := c
		pc.Durables = ds
		return e.run(ctx, t, withMonitor, e.plan(pc), e.options())
	}

	for _, withMonitor := range []bool{true, false} {
		rep, err := run(withMonitor, durable, queue)
		if err != nil {
			t.Fatalf("monitor %v: %v: %+v", withMonitor, err, rep)
		}
		if len(rep.Consumers) != 2 {
			t.Fatalf("consumers %+v", rep.Consumers)
		}
		for _, r := range rep.Consumers {
			if !r.OK || r.Expected != 7 || r.Actual != 7 || r.Position != string(jsformat.Exact) {
				t.Errorf("monitor %v: %+v", withMonitor, r)
			}
		}
		if rep.Consumers[1].Durable != "queue workers:dur" {
			t.Errorf("durable key %q", rep.Consumers[1].Durable)
		}
	}

	t.Run("wrong start", func(t *testing.T) {
		wrong := durable
		wrong.Consumer = "wrong"
		create(wrong, 4, jsformat.Exact)
		rep, err := run(true, wrong)
		if !errors.Is(err, ErrDifferences) || rep.Differences != 1 {
			t.Fatalf("err %v, report %+v", err, rep)
		}
		r := rep.Consumers[0]
		if r.OK || r.Expected != 7 || r.Actual != 4 {
			t.Fatalf("%+v", r)
		}
		for _, want := range []string{`"wrong"`, "sequence 4", "expected 7"} {
			if !strings.Contains(r.Problem, want) {
				t.Errorf("problem %q lacks %q", r.Problem, want)
			}
		}
		t.Log(r.Problem)
	})

	t.Run("probed", func(t *testing.T) {
		// A probed start below last_sent+1 is what a durable with pending
		// messages looks like; it is trusted while STAN agrees.
		probed := durable
		probed.Consumer = "probed"
		create(probed, 5, jsformat.Probed)
		rep, err := run(true, probed)
		if err != nil {
			t.Fatalf("%v: %+v", err, rep)
		}
		if r := rep.Consumers[0]; !r.OK || r.Expected != 5 || r.Position != string(jsformat.Probed) {
			t.Errorf("%+v", r)
		}
	})

	t.Run("missing and misconfigured", func(t *testing.T) {
		absent := durable
		absent.Consumer = "absent"
		slow := durable
		slow.AckWait = plan.Duration(time.Minute)
		gone := durable
		gone.ClientID = "nobody"
		rep, err := run(true, absent, slow, gone)
		if !errors.Is(err, ErrDifferences) || rep.Differences != 3 {
			t.Fatalf("err %v, report %+v", err, rep)
		}
		for i, want := range []string{"consumer not found", "ack wait 30s, the plan says 1m0s", "STAN no longer has this durable"} {
			if r := rep.Consumers[i]; r.OK || !strings.Contains(r.Problem, want) {
				t.Errorf("consumer %d: %q lacks %q", i, r.Problem, want)
			}
		}
	})
}

func TestAckSeqs(t *testing.T) {
	for _, tc := range []struct {
		reply        string
		seq, pending uint64
		ok           bool
	}{
		{"$JS.ACK.ORDERS.cons.1.42.7.1700000000000000000.3", 42, 3, true},
		{"$JS.ACK._.ACCHASH.ORDERS.cons.1.42.7.1700000000000000000.0.rand", 42, 0, true},
		{"$JS.ACK.hub.ACCHASH.ORDERS.cons.1.42.7.1700000000000000000.5", 42, 5, true},
		{"$JS.ACK.ORDERS.cons.1.x.7.1.0", 0, 0, false},
		{"_INBOX.abc", 0, 0, false},
		{"$JS.ACK.A.B.C.D.E.F.G.H.I.J", 0, 0, false},
	} {
		seq, pending, ok := ackSeqs(tc.reply)
		if seq != tc.seq || pending != tc.pending || ok != tc.ok {
			t.Errorf("%s: %d %d %v", tc.reply, seq, pending, ok)
		}
	}
}

func TestPick(t *testing.T) {
	if got := pick(5, 9, 10); !slices.Equal(got, []uint64{5, 6, 7, 8, 9}) {
		t.Errorf("all: %v", got)
	}
	got := pick(100, 1099, 50)
	if len(got) != 50 || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != 50 || got[0] < 100 || got[49] > 1099 {
		t.Errorf("sample: %v", got)
	}
}

func TestReportJSON(t *testing.T) {
	b, err := json.Marshal(ChannelReport{Channel: "a.b", Stream: "a_b", Source: Side{Msgs: 1}, Target: Side{Msgs: 2}})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["stream_name"] != "a_b" || m["stan"] == nil || m["stream"] == nil {
		t.Errorf("%s", b)
	}
}
