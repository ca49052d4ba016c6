package monitor

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats-streaming-server/stores"
	"github.com/nats-io/nats-streaming-server/util"
	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/freeport"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
)

func startSTAN(t *testing.T, limits *stores.StoreLimits) *embedded.STAN {
	t.Helper()
	s, err := embedded.StartSTAN(embedded.STANConfig{Dir: t.TempDir(), Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func connect(t *testing.T, s *embedded.STAN, clientID string) stan.Conn {
	t.Helper()
	sc, err := stan.Connect(s.ClusterID(), clientID, stan.NatsURL(s.URL()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sc.Close() })
	return sc
}

// publishN publishes n messages to each channel and waits for every ack.
func publishN(t *testing.T, sc stan.Conn, n int, channels ...string) {
	t.Helper()
	if err := publish(sc, n, channels...); err != nil {
		t.Fatal(err)
	}
}

func publish(sc stan.Conn, n int, channels ...string) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	for _, ch := range channels {
		for i := 1; i <= n; i++ {
			wg.Add(1)
			_, err := sc.PublishAsync(ch, fmt.Appendf(nil, "%s-%d", ch, i), func(_ string, err error) {
				if err != nil {
					fail(fmt.Errorf("publish ack %s: %w", ch, err))
				}
				wg.Done()
			})
			if err != nil {
				wg.Done()
				fail(fmt.Errorf("publish %s: %w", ch, err))
			}
		}
	}
	wg.Wait()
	return firstErr
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually retries f until it succeeds: monitoring reflects acks and
// client closes asynchronously.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestChannelsPaging(t *testing.T) {
	s := startSTAN(t, nil)
	sc := connect(t, s, "pager")
	const n = 2500
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("ch.%04d", i)
	}
	publishN(t, sc, 1, names...)

	c := New(s.MonitorURL(), nil)
	ctx := ctxT(t)
	for _, pageSize := range []int{1000, 0} {
		t.Run(fmt.Sprintf("page=%d", pageSize), func(t *testing.T) {
			chans, err := c.Channels(ctx, pageSize)
			if err != nil {
				t.Fatal(err)
			}
			if len(chans) != n {
				t.Fatalf("got %d channels, want %d", len(chans), n)
			}
			for i, ch := range chans {
				if ch.Name != names[i] || ch.Msgs != 1 || ch.FirstSeq != 1 || ch.LastSeq != 1 || ch.Bytes == 0 {
					t.Fatalf("channel %d = %+v, want %s with one message", i, *ch, names[i])
				}
			}
		})
	}

	sz, err := c.Serverz(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sz.Channels != n || sz.TotalMsgs != n || sz.ClusterID != s.ClusterID() {
		t.Fatalf("serverz = %+v", *sz)
	}
}

// TestChannelsShiftingPages inserts channels that sort first while the
// listing is between pages, which shifts every later offset: the listing
// must neither repeat nor lose the channels that existed throughout.
func TestChannelsShiftingPages(t *testing.T) {
	s := startSTAN(t, nil)
	sc := connect(t, s, "shifter")
	var want []string
	for i := range 30 {
		want = append(want, fmt.Sprintf("m.%02d", i))
	}
	publishN(t, sc, 1, want...)

	target, err := url.Parse(s.MonitorURL())
	if err != nil {
		t.Fatal(err)
	}
	// A real reverse proxy in front of the real server, used only to act
	// between two pages.
	proxy := httputil.NewSingleHostReverseProxy(target)
	var pages atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxy.ServeHTTP(w, r)
		if r.URL.Path == pathChannelsz && pages.Add(1) == 1 {
			if err := publish(sc, 1, "a.0", "a.1", "a.2", "a.3", "a.4"); err != nil {
				t.Error(err)
			}
		}
	}))
	defer srv.Close()

	chans, err := New(srv.URL, nil).Channels(ctxT(t), 10)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var got []string
	for _, ch := range chans {
		seen[ch.Name]++
		got = append(got, ch.Name)
	}
	if !sort.StringsAreSorted(got) {
		t.Fatalf("not sorted: %v", got)
	}
	for _, name := range want {
		if seen[name] != 1 {
			t.Fatalf("%s listed %d times: %v", name, seen[name], got)
		}
	}
	if pages.Load() < 4 {
		t.Fatalf("only %d pages asked", pages.Load())
	}
}

func TestChannel(t *testing.T) {
	s := startSTAN(t, nil)
	sc := connect(t, s, "one")
	// STAN allows anything but '/', '*', '>' and empty tokens; NATS forbids
	// whitespace. These characters all mean something in a query string.
	odd := "orders.eu+us&x=1%20#frag?q;r"
	if !util.IsChannelNameValid(odd, false) {
		t.Fatalf("%q is not a valid channel name", odd)
	}
	publishN(t, sc, 3, odd, "orders.eu")

	c := New(s.MonitorURL()+"/", nil) // trailing slash tolerated
	ctx := ctxT(t)
	for _, tc := range []struct {
		name string
		msgs int
	}{{odd, 3}, {"orders.eu", 3}} {
		ch, err := c.Channel(ctx, tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Name != tc.name || ch.Msgs != tc.msgs || ch.FirstSeq != 1 || ch.LastSeq != 3 {
			t.Fatalf("Channel(%q) = %+v", tc.name, *ch)
		}
	}

	_, err := c.Channel(ctx, "no.such.channel")
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotStreaming) {
		t.Fatalf("missing channel: %v", err)
	}
	if !strings.Contains(err.Error(), `"no.such.channel"`) || !strings.Contains(err.Error(), pathChannelsz) {
		t.Fatalf("error does not name channel and path: %v", err)
	}
}

func TestSubscriptions(t *testing.T) {
	s := startSTAN(t, nil)
	pub := connect(t, s, "publisher")
	const ch = "orders"
	publishN(t, pub, 5, ch)

	received := func(n int) (stan.MsgHandler, func() error) {
		var got atomic.Int32
		return func(*stan.Msg) { got.Add(1) }, func() error {
			if g := int(got.Load()); g != n {
				return fmt.Errorf("received %d of %d", g, n)
			}
			return nil
		}
	}

	c1 := connect(t, s, "app-1")
	cb1, done1 := received(5)
	if _, err := c1.Subscribe(ch, cb1, stan.DurableName("dur"), stan.SetManualAckMode(),
		stan.DeliverAllAvailable(), stan.MaxInflight(20), stan.AckWait(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	c2 := connect(t, s, "app-2")
	cb2, done2 := received(5)
	if _, err := c2.QueueSubscribe(ch, "group", cb2, stan.DurableName("qdur"), stan.SetManualAckMode(),
		stan.DeliverAllAvailable(), stan.MaxInflight(10), stan.AckWait(40*time.Second)); err != nil {
		t.Fatal(err)
	}
	c3 := connect(t, s, "app-3")
	cb3, done3 := received(5)
	if _, err := c3.Subscribe(ch, cb3, stan.DeliverAllAvailable()); err != nil {
		t.Fatal(err)
	}
	eventually(t, done1)
	eventually(t, done2)
	eventually(t, done3)
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}

	mc := New(s.MonitorURL(), nil)
	ctx := ctxT(t)
	want := []Subscriptionz{
		{ClientID: "app-1", DurableName: "dur", IsDurable: true, IsOffline: true, MaxInflight: 20, AckWait: 30, LastSent: 5, PendingCount: 5},
		{ClientID: "app-2", QueueName: "qdur:group", IsDurable: true, MaxInflight: 10, AckWait: 40, LastSent: 5, PendingCount: 5},
		{ClientID: "app-3", MaxInflight: 1024, AckWait: 30, LastSent: 5},
	}
	check := func(chz *Channelz, want []Subscriptionz) error {
		if chz.SubsCount != len(chz.Subscriptions) {
			return fmt.Errorf("subs_count %d with %d subscriptions", chz.SubsCount, len(chz.Subscriptions))
		}
		got := map[string]Subscriptionz{}
		for _, sub := range chz.Subscriptions {
			k := *sub
			k.Inbox, k.AckInbox, k.IsStalled = "", "", false
			got[sub.ClientID+"/"+sub.QueueName] = k
		}
		for _, w := range want {
			if g := got[w.ClientID+"/"+w.QueueName]; g != w {
				return fmt.Errorf("subscription\n got %+v\nwant %+v\n all %v", g, w, got)
			}
		}
		if len(got) != len(want) {
			return fmt.Errorf("got %d subscriptions, want %d: %v", len(got), len(want), got)
		}
		return nil
	}
	eventually(t, func() error {
		chz, err := mc.Channel(ctx, ch)
		if err != nil {
			return err
		}
		return check(chz, want)
	})
	// The listing reports the same subscriptions as the single channel.
	all, err := mc.Channels(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Fatalf("channels: %d", len(all))
	}
	if err := check(all[0], want); err != nil {
		t.Fatal(err)
	}

	// With its last member gone, the durable queue group survives as one
	// offline shadow holding the group's position and pending messages.
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		chz, err := mc.Channel(ctx, ch)
		if err != nil {
			return err
		}
		for _, sub := range chz.Subscriptions {
			if sub.QueueName != "qdur:group" {
				continue
			}
			if !sub.IsOffline || !sub.IsDurable || sub.LastSent != 5 || sub.PendingCount != 5 || sub.DurableName != "" {
				return fmt.Errorf("shadow %+v", *sub)
			}
			t.Logf("offline queue shadow: client_id=%q", sub.ClientID)
			return nil
		}
		return errors.New("no queue shadow")
	})
}

func TestForChannel(t *testing.T) {
	global := ChannelLimits{MaxMsgs: 100, MaxBytes: 1000, MaxAge: time.Hour, MaxSubscriptions: 10}
	for _, tc := range []struct {
		keys    string // space separated; key i gets MaxMsgs i+1
		channel string
		want    string // winning key, "" for global
	}{
		{"a.b a.* a.> *.b *.> >", "a.b", "a.b"},
		{"a.* a.> *.b *.> >", "a.b", "a.*"},
		{"a.> *.b *.> >", "a.b", "a.>"}, // leftmost token decides
		{"*.b *.> >", "a.b", "*.b"},
		{"*.> >", "a.b", "*.>"},
		{">", "a.b", ">"},
		{"* >", "a", "*"},
		{"a.* *.b", "c.d", ""},
		{"a.*", "a.b.c", ""},
		{"a.>", "a", ""},
		{"*.*.c a.>", "a.b.c", "a.>"},
		{"a.*.c a.b.>", "a.b.c", "a.b.>"},
		{"a.> a.*.>", "a.b.c", "a.*.>"},
		{"a.*.> a.b.>", "a.b.c.d", "a.b.>"},
		{"a.b.c a.b.*", "a.b.c.d", ""},
		{"", "a", ""},
	} {
		l := StoreLimits{ChannelLimits: global, PerChannel: map[string]*ChannelLimits{}}
		for i, k := range strings.Fields(tc.keys) {
			l.PerChannel[k] = &ChannelLimits{MaxMsgs: i + 1, MaxBytes: 7}
		}
		got, key := l.ForChannel(tc.channel)
		want := global
		if tc.want != "" {
			want = *l.PerChannel[tc.want]
		}
		if key != tc.want || got != want {
			t.Errorf("keys %q channel %q: got %q %+v, want %q %+v", tc.keys, tc.channel, key, got, tc.want, want)
		}
	}

	// After STAN's inheritance a 0 left in a per-channel entry is unlimited:
	// it must not fall back to the (non-zero) global value.
	l := StoreLimits{ChannelLimits: global, PerChannel: map[string]*ChannelLimits{
		"z.*": {MaxBytes: 5},
		"n.*": {MaxMsgs: -1, MaxAge: -time.Second},
	}}
	if got, key := l.ForChannel("z.z"); key != "z.*" || got != (ChannelLimits{MaxBytes: 5}) {
		t.Errorf("zero per-channel: %q %+v", key, got)
	}
	if got, _ := l.ForChannel("n.n"); got != (ChannelLimits{}) {
		t.Errorf("negative per-channel: %+v", got)
	}
}

// TestForChannelAgainstSublist compares the winner with STAN's own sublist
// (the structure getChannelLimits takes the last match of) on random key
// sets, so the tie-breaking rule is the server's, not a guess.
func TestForChannelAgainstSublist(t *testing.T) {
	toks := []string{"a", "b", "*", ">"}
	var patterns []string
	var gen func(prefix []string)
	gen = func(prefix []string) {
		if len(prefix) > 0 {
			p := strings.Join(prefix, ".")
			if util.IsChannelNameValid(p, true) {
				patterns = append(patterns, p)
			}
		}
		if len(prefix) == 3 {
			return
		}
		for _, tk := range toks {
			gen(append(append([]string(nil), prefix...), tk))
		}
	}
	gen(nil)
	var channels []string
	for _, p := range patterns {
		if util.IsChannelNameLiteral(p) {
			channels = append(channels, p, p+".c")
		}
	}
	rng := rand.New(rand.NewSource(1))
	for range 500 {
		sl := util.NewSublist()
		l := StoreLimits{PerChannel: map[string]*ChannelLimits{}}
		for _, p := range patterns {
			if rng.Intn(4) == 0 {
				cl := &ChannelLimits{MaxMsgs: len(l.PerChannel) + 1}
				l.PerChannel[p] = cl
				if err := sl.Insert(p, p); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, ch := range channels {
			want := ""
			if r := sl.Match(ch); len(r) > 0 {
				want = r[len(r)-1].(string)
			}
			if _, got := l.ForChannel(ch); got != want {
				t.Fatalf("channel %q keys %v: got %q, STAN %q", ch, keys(l.PerChannel), got, want)
			}
		}
	}
}

func keys(m map[string]*ChannelLimits) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// TestLimitsLive checks that what storez reports, resolved by ForChannel,
// is what the server enforces.
func TestLimitsLive(t *testing.T) {
	cfg := &stores.StoreLimits{}
	cfg.MaxMsgs = 8
	add := func(name string, maxMsgs int, maxBytes int64) {
		cl := &stores.ChannelLimits{}
		cl.MaxMsgs, cl.MaxBytes = maxMsgs, maxBytes
		cfg.AddPerChannel(name, cl)
	}
	add("foo.*", 5, 0)
	add("foo.>", 7, 0)
	add("*.bar", 3, 0)
	add("foo.lit", 0, 1<<20) // max_msgs inherited from foo.*
	add("qux.>", 6, 0)
	add("*.quux", 2, 0)
	add("neg.*", -1, 0) // unlimited although the global limit is 8

	s := startSTAN(t, cfg)
	sc := connect(t, s, "limits")
	mc := New(s.MonitorURL(), nil)
	ctx := ctxT(t)
	st, err := mc.Storez(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Type != stores.TypeFile || st.Limits.MaxMsgs != 8 || len(st.Limits.PerChannel) != 7 {
		t.Fatalf("storez = %+v", *st)
	}
	if lit := st.Limits.PerChannel["foo.lit"]; lit == nil || lit.MaxMsgs != 5 {
		t.Fatalf("foo.lit not inherited in storez: %+v", lit)
	}
	const published = 10
	for _, tc := range []struct {
		channel string
		key     string
		maxMsgs int
	}{
		{"foo.x", "foo.*", 5},
		{"foo.bar", "foo.*", 5},
		{"baz.bar", "*.bar", 3},
		{"foo.x.y", "foo.>", 7},
		{"foo.lit", "foo.lit", 5},
		{"qux.quux", "qux.>", 6},
		{"neg.x", "neg.*", 0},
		{"other", "", 8},
	} {
		got, key := st.Limits.ForChannel(tc.channel)
		if key != tc.key || got.MaxMsgs != tc.maxMsgs {
			t.Errorf("ForChannel(%q) = %q %+v, want %q max_msgs %d", tc.channel, key, got, tc.key, tc.maxMsgs)
			continue
		}
		publishN(t, sc, published, tc.channel)
		kept := published
		if tc.maxMsgs > 0 {
			kept = min(published, tc.maxMsgs)
		}
		ch, err := mc.Channel(ctx, tc.channel)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Msgs != kept || ch.LastSeq != published || ch.FirstSeq != uint64(published-kept+1) {
			t.Errorf("%s: server kept %d msgs [%d,%d], ForChannel says max_msgs %d", tc.channel, ch.Msgs, ch.FirstSeq, ch.LastSeq, tc.maxMsgs)
		}
	}
}

func TestServerInfo(t *testing.T) {
	s := startSTAN(t, nil)
	ctx := ctxT(t)
	// A base URL without scheme is taken as http.
	c := New(strings.TrimPrefix(s.MonitorURL(), "http://"), nil)
	sz, err := c.Serverz(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sz.ClusterID != s.ClusterID() || sz.Version == "" || sz.State != "STANDALONE" {
		t.Fatalf("serverz = %+v", *sz)
	}
	vz, err := c.Varz(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if vz.MaxPayload != 1<<20 || vz.Version == "" {
		t.Fatalf("varz = %+v", *vz)
	}
	// Standalone is not "FT active": the endpoint only says 200 in FT mode.
	if active, err := c.IsFTActive(ctx); err != nil || active {
		t.Fatalf("IsFTActive = %v, %v", active, err)
	}
}

func TestErrors(t *testing.T) {
	ctx := ctxT(t)

	t.Run("refused", func(t *testing.T) {
		port, err := freeport.Port()
		if err != nil {
			t.Fatal(err)
		}
		c := New(fmt.Sprintf("http://admin:s3cret@127.0.0.1:%d/", port), nil)
		calls := map[string]func() error{
			"serverz":    func() error { _, err := c.Serverz(ctx); return err },
			"storez":     func() error { _, err := c.Storez(ctx); return err },
			"varz":       func() error { _, err := c.Varz(ctx); return err },
			"isFTActive": func() error { _, err := c.IsFTActive(ctx); return err },
			"channelsz":  func() error { _, err := c.Channels(ctx, 0); return err },
			"channel":    func() error { _, err := c.Channel(ctx, "x"); return err },
		}
		for name, call := range calls {
			err := call()
			if !errors.Is(err, ErrUnreachable) {
				t.Fatalf("%s: %v", name, err)
			}
			msg := err.Error()
			if strings.Contains(msg, "s3cret") || strings.Contains(msg, "admin") {
				t.Fatalf("%s: credentials leak: %s", name, msg)
			}
			if !strings.Contains(msg, fmt.Sprintf("monitoring http://127.0.0.1:%d/", port)) || !strings.Contains(msg, "connection refused") {
				t.Fatalf("%s: %s", name, msg)
			}
		}
		err = calls["serverz"]()
		if want := fmt.Sprintf("monitoring http://127.0.0.1:%d/streaming/serverz: connection refused: monitoring endpoint unreachable", port); err.Error() != want {
			t.Fatalf("got  %s\nwant %s", err, want)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		// A socket that accepts and never answers.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
			}
		}()
		c := New("http://"+ln.Addr().String(), &http.Client{Timeout: 200 * time.Millisecond})
		if _, err := c.Serverz(ctx); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "timeout") {
			t.Fatalf("client timeout: %v", err)
		}
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err = New("http://"+ln.Addr().String(), nil).Serverz(short)
		if !errors.Is(err, ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("context deadline: %v", err)
		}
		canceled, cancel2 := context.WithCancel(ctx)
		cancel2()
		_, err = New("http://"+ln.Addr().String(), nil).Serverz(canceled)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnreachable) {
			t.Fatalf("canceled: %v", err)
		}
	})

	t.Run("not streaming", func(t *testing.T) {
		port, err := freeport.Port()
		if err != nil {
			t.Fatal(err)
		}
		ns, err := natsd.NewServer(&natsd.Options{Host: "127.0.0.1", Port: -1, HTTPHost: "127.0.0.1", HTTPPort: port, NoSigs: true, NoLog: true})
		if err != nil {
			t.Fatal(err)
		}
		go ns.Start()
		defer ns.Shutdown()
		if !ns.ReadyForConnections(5 * time.Second) {
			t.Fatal("nats-server not ready")
		}
		c := New(fmt.Sprintf("http://127.0.0.1:%d", port), nil)
		for name, call := range map[string]func() error{
			"serverz":    func() error { _, err := c.Serverz(ctx); return err },
			"storez":     func() error { _, err := c.Storez(ctx); return err },
			"isFTActive": func() error { _, err := c.IsFTActive(ctx); return err },
			"channelsz":  func() error { _, err := c.Channels(ctx, 0); return err },
			"channel":    func() error { _, err := c.Channel(ctx, "x"); return err },
		} {
			if err := call(); !errors.Is(err, ErrNotStreaming) || errors.Is(err, ErrNotFound) {
				t.Fatalf("%s: %v", name, err)
			}
		}
		vz, err := c.Varz(ctx)
		if err != nil || vz.MaxPayload != 1<<20 {
			t.Fatalf("varz on nats-server: %+v %v", vz, err)
		}
	})

	t.Run("status", func(t *testing.T) {
		// Not a STAN stand-in: only an HTTP status no real server here
		// can be made to return.
		body := strings.Repeat("x", 190) + "0123456789TAIL"
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, body, http.StatusInternalServerError)
		}))
		defer srv.Close()
		_, err := New(srv.URL, nil).Serverz(ctx)
		if err == nil || !strings.Contains(err.Error(), "HTTP 500") || !strings.Contains(err.Error(), "0123456789") || strings.Contains(err.Error(), "TAIL") {
			t.Fatalf("500: %v", err)
		}
		if errors.Is(err, ErrUnreachable) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotStreaming) {
			t.Fatalf("500 classified: %v", err)
		}
	})

	t.Run("bad url", func(t *testing.T) {
		for _, u := range []string{"ftp://host/", "http://", "http://admin:s3cret@[::1"} {
			_, err := New(u, nil).Serverz(ctx)
			if err == nil || strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("%q: %v", u, err)
			}
		}
	})
}
