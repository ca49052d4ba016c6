package fastingest

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stanmigrate/stanmigrate/internal/jsformat"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/topotest"
)

const (
	hdrChannel   = jsformat.HdrChannel
	hdrSequence  = jsformat.HdrSequence
	hdrTimestamp = jsformat.HdrTimestamp
)

type env struct {
	srv *embedded.JetStream
	nc  *nats.Conn
	js  jetstream.JetStream
}

func startEnv(t testing.TB) *env {
	t.Helper()
	srv, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	e := &env{srv: srv}
	e.nc, e.js = connect(t, srv.URL())
	return e
}

func connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return topotest.JetStream(t, url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
}

func createStream(t testing.TB, js jetstream.JetStream, name string, batched bool, replicas int) jetstream.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: name, Subjects: []string{name}, Storage: jetstream.FileStorage,
		Replicas: replicas, AllowBatchPublish: batched,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// message publishes channel message seq the way migrate does: expected
// last sequence plus the three stan2js headers.
type message struct {
	hdr     nats.Header
	prevStr string
}

func newMessage() *message { return &message{hdr: nats.Header{}} }

func (m *message) set(ch string, seq uint64) {
	s := strconv.FormatUint(seq, 10)
	prev := m.prevStr
	if prev == "" || seq == 1 {
		prev = strconv.FormatUint(seq-1, 10)
	}
	SetExpectedLastSeq(m.hdr, prev)
	Set(m.hdr, hdrChannel, ch)
	Set(m.hdr, hdrSequence, s)
	Set(m.hdr, hdrTimestamp, "2024-01-02T03:04:05.123456789Z")
	m.prevStr = s
}

func payload(seq uint64) []byte { return []byte("payload-" + strconv.FormatUint(seq, 10)) }

// acker awaits every published sequence in order, like migrate's acker,
// recording the last one confirmed and the first error.
type acker struct {
	p        *Publisher
	ch       chan uint64
	done     chan struct{}
	mu       sync.Mutex
	acked    uint64
	err      error
	errAt    uint64
	maxAhead uint64
}

func newAcker(p *Publisher, window int) *acker {
	a := &acker{p: p, ch: make(chan uint64, window), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		timer := stoppedTimer()
		for seq := range a.ch {
			if a.err != nil {
				continue
			}
			if err := p.Await(seq, timer, 10*time.Second); err != nil {
				a.mu.Lock()
				a.err, a.errAt = err, seq
				a.mu.Unlock()
				continue
			}
			a.mu.Lock()
			a.acked = seq
			a.mu.Unlock()
		}
	}()
	return a
}

func (a *acker) finish() (uint64, uint64, error) {
	close(a.ch)
	<-a.done
	return a.acked, a.errAt, a.err
}

// publishRange publishes from..to on ch with migrate's headers and awaits
// them all; it returns the acker's result.
func publishRange(t *testing.T, p *Publisher, ch string, from, to uint64, window int) (uint64, uint64, error) {
	t.Helper()
	a := newAcker(p, window)
	m := newMessage()
	for seq := from; seq <= to; seq++ {
		m.set(ch, seq)
		if err := p.Publish(ch, m.hdr, payload(seq), seq); err != nil {
			break
		}
		if ahead := seq - p.Stored(); ahead > uint64(window) {
			t.Errorf("sequence %d published with only %d stored: %d in flight, window %d", seq, p.Stored(), ahead, window)
		}
		a.ch <- seq
	}
	return a.finish()
}

// checkStream reads the whole stream and checks that stream sequence ==
// channel sequence for every message, from first to last.
func checkStream(t *testing.T, js jetstream.JetStream, name string, first, last uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != last-first+1 || info.State.FirstSeq != first || info.State.LastSeq != last {
		t.Fatalf("stream %s holds %d messages, %d..%d; want %d..%d", name, info.State.Msgs, info.State.FirstSeq, info.State.LastSeq, first, last)
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	it, err := c.Messages()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()
	for want := first; want <= last; want++ {
		msg, err := it.Next()
		if err != nil {
			t.Fatalf("reading stream at %d: %v", want, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if md.Sequence.Stream != want || msg.Headers().Get(hdrSequence) != strconv.FormatUint(want, 10) || string(msg.Data()) != string(payload(want)) {
			t.Fatalf("stream sequence %d (want %d) holds channel sequence %q, payload %q", md.Sequence.Stream, want, msg.Headers().Get(hdrSequence), msg.Data())
		}
	}
}

func lastSeq(t *testing.T, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// TestSequencesMatch: every message lands at the stream sequence it was
// published for, all are confirmed, and a pause in publishing (the open
// batch ends after Linger) followed by more messages keeps the sequences.
func TestSequencesMatch(t *testing.T) {
	e := startEnv(t)
	createStream(t, e.js, "match", true, 1)
	const window = 256
	p := newPublisher(t, e.nc, Options{Window: window})
	acked, _, err := publishRange(t, p, "match", 1, 30_000, window)
	if err != nil || acked != 30_000 {
		t.Fatalf("confirmed up to %d, error %v", acked, err)
	}
	time.Sleep(50 * time.Millisecond) // longer than Linger: the next message opens a new batch
	acked, _, err = publishRange(t, p, "match", 30_001, 30_123, window)
	if err != nil || acked != 30_123 || p.Stored() != 30_123 {
		t.Fatalf("confirmed up to %d (stored %d), error %v", acked, p.Stored(), err)
	}
	checkStream(t, e.js, "match", 1, 30_123)
}

// TestMismatchMidBatch: another writer's message lands in the stream in
// the middle of an open batch. The next message's expected last sequence
// fails; Await reports the wrong-last-sequence error at exactly that
// sequence, everything before it is confirmed, nothing after it is stored
// (the rest of the batch is dropped by the server), and the Publisher
// refuses further messages.
func TestMismatchMidBatch(t *testing.T) {
	e := startEnv(t)
	createStream(t, e.js, "mid", true, 1)
	const window = 64
	// A long Linger keeps the batch open across the foreign write.
	p := newPublisher(t, e.nc, Options{Window: window, Flow: 16, Linger: time.Minute})
	m := newMessage()
	timer := stoppedTimer()
	for seq := uint64(1); seq <= 496; seq++ { // 496: a multiple of the flow, so acked without a commit
		m.set("mid", seq)
		if err := p.Publish("mid", m.hdr, payload(seq), seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Await(496, timer, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// The foreign message takes stream sequence 497.
	if _, err := e.js.Publish(context.Background(), "mid", []byte("foreign")); err != nil {
		t.Fatal(err)
	}
	var pubErr error
	for seq := uint64(497); seq <= 700 && pubErr == nil; seq++ {
		m.set("mid", seq)
		pubErr = p.Publish("mid", m.hdr, payload(seq), seq)
		if pubErr == nil {
			time.Sleep(100 * time.Microsecond)
		}
	}
	err := p.Await(497, timer, 10*time.Second)
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
		t.Fatalf("Await(497) = %v, want wrong last sequence", err)
	}
	if err := p.Await(498, timer, 10*time.Second); !errors.Is(err, ErrUnconfirmed) {
		t.Fatalf("Await(498) = %v, want ErrUnconfirmed", err)
	}
	if seq, ferr := p.Err(); seq != 497 || ferr == nil {
		t.Fatalf("Err() = %d, %v; want the failure at 497", seq, ferr)
	}
	if p.Stored() != 496 {
		t.Fatalf("Stored() = %d, want 496", p.Stored())
	}
	if pubErr == nil {
		pubErr = p.Publish("mid", m.hdr, payload(701), 701)
	}
	if pubErr == nil {
		t.Fatal("Publish goes on after the failure")
	}
	time.Sleep(100 * time.Millisecond)
	if got := lastSeq(t, e.js, "mid"); got != 497 {
		t.Fatalf("stream's last sequence %d, want 497 (496 ours, then the foreign message)", got)
	}
	t.Logf("failure: %v", err)
}

// TestMismatchFirstMessage: the stream already holds a message, so the
// very first one's expected last sequence fails. The server sends the
// batch's first flow ack before it checks the headers, so Publish may
// succeed; Await reports the error, and nothing is stored.
func TestMismatchFirstMessage(t *testing.T) {
	e := startEnv(t)
	createStream(t, e.js, "first", true, 1)
	if _, err := e.js.Publish(context.Background(), "first", []byte("foreign")); err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, e.nc, Options{})
	m := newMessage()
	m.set("first", 1)
	if err := p.Publish("first", m.hdr, payload(1), 1); err != nil {
		t.Logf("Publish: %v", err)
	}
	timer := stoppedTimer()
	err := p.Await(1, timer, 5*time.Second)
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
		t.Fatalf("Await(1) = %v, want wrong last sequence", err)
	}
	m.set("first", 2)
	if err := p.Publish("first", m.hdr, payload(2), 2); err == nil {
		t.Fatal("Publish goes on after the failure")
	}
	if p.Stored() != 0 {
		t.Fatalf("Stored() = %d", p.Stored())
	}
	if got := lastSeq(t, e.js, "first"); got != 1 {
		t.Fatalf("stream's last sequence %d, want 1", got)
	}
}

// TestNotEnabled: a stream without allow_batched is refused on the first
// Publish with ErrNotEnabled, and nothing is stored, so the caller can
// publish the same message the per-message way.
func TestNotEnabled(t *testing.T) {
	e := startEnv(t)
	createStream(t, e.js, "plain", false, 1)
	p := newPublisher(t, e.nc, Options{})
	m := newMessage()
	m.set("plain", 1)
	err := p.Publish("plain", m.hdr, payload(1), 1)
	if !errors.Is(err, ErrNotEnabled) {
		t.Fatalf("Publish = %v, want ErrNotEnabled", err)
	}
	if p.Stored() != 0 {
		t.Fatalf("Stored() = %d", p.Stored())
	}
	if got := lastSeq(t, e.js, "plain"); got != 0 {
		t.Fatalf("stream's last sequence %d, want 0", got)
	}
}

// TestOldServer: a server that does not know fast-ingest takes the
// message as a plain publish and answers with a plain PubAck (simulated
// here by a responder, as no pre-2.14 server is at hand). The first
// Publish reports ErrUnsupported with the message counted as stored.
func TestOldServer(t *testing.T) {
	e := startEnv(t)
	sub, err := e.nc.Subscribe("old", func(m *nats.Msg) {
		_ = m.Respond([]byte(`{"stream":"old","seq":7}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	p := newPublisher(t, e.nc, Options{})
	m := newMessage()
	m.set("old", 7)
	err = p.Publish("old", m.hdr, payload(7), 7)
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Publish = %v, want ErrUnsupported", err)
	}
	if seq, _ := p.Err(); p.Stored() != 7 || seq != 8 {
		t.Fatalf("Stored() = %d, failure at %d; want 7 stored, failure at 8", p.Stored(), seq)
	}
}

// TestServerRestartMidBatch: the server restarts while a batch streams
// in. The Publisher reports a failure; what it confirmed never exceeds
// what the stream holds; a new Publisher resuming after the stream's last
// sequence finishes with every sequence exactly once.
func TestServerRestartMidBatch(t *testing.T) {
	e := startEnv(t)
	createStream(t, e.js, "restart", true, 1)
	const total, window = 60_000, 1024
	p := newPublisher(t, e.nc, Options{Window: window, AckTimeout: 3 * time.Second})
	restarted := make(chan error, 1)
	published := make(chan struct{})
	go func() {
		for p.Stored() < 10_000 {
			select {
			case <-published:
				restarted <- errors.New("publishing ended before 10,000 messages were stored: the restart never ran")
				return
			case <-time.After(time.Millisecond):
			}
		}
		restarted <- e.srv.Restart()
	}()
	acked, errAt, err := publishRange(t, p, "restart", 1, total, window)
	close(published)
	p.Close()
	if rerr := <-restarted; rerr != nil {
		t.Fatal(rerr)
	}
	if err == nil {
		t.Fatalf("no failure across a restart (confirmed up to %d)", acked)
	}
	t.Logf("first run: confirmed up to %d, failed at %d: %v", acked, errAt, err)
	if !e.nc.IsConnected() {
		deadline := time.Now().Add(10 * time.Second)
		for !e.nc.IsConnected() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Let the server's ingest settle before reading the stream's state.
	time.Sleep(200 * time.Millisecond)
	resume := lastSeq(t, e.js, "restart")
	if acked > resume {
		t.Fatalf("confirmed %d, but the stream holds only up to %d", acked, resume)
	}
	t.Logf("resuming after %d", resume)
	p2 := newPublisher(t, e.nc, Options{Window: window})
	acked, _, err = publishRange(t, p2, "restart", resume+1, total, window)
	if err != nil || acked != total {
		t.Fatalf("resumed run confirmed up to %d, error %v", acked, err)
	}
	checkStream(t, e.js, "restart", 1, total)
}

// TestClientDeathMidBatch: the client's connection vanishes mid-batch
// (as with kill -9). Messages that reached the server are stored, the rest
// are not; the server's half-open batch is left to its timeout. A new
// client resuming after the stream's last sequence ends exact.
func TestClientDeathMidBatch(t *testing.T) {
	e := startEnv(t)
	createStream(t, e.js, "death", true, 1)
	const total, window = 40_000, 1024
	nc, _ := connect(t, e.srv.URL())
	p := newPublisher(t, nc, Options{Window: window})
	m := newMessage()
	var confirmed uint64
	for seq := uint64(1); seq <= 15_000; seq++ {
		m.set("death", seq)
		if err := p.Publish("death", m.hdr, payload(seq), seq); err != nil {
			t.Fatal(err)
		}
		confirmed = p.Stored()
	}
	nc.Close() // no flush, no EOB: the batch stays open on the server
	time.Sleep(200 * time.Millisecond)
	resume := lastSeq(t, e.js, "death")
	if confirmed > resume || resume > 15_000 {
		t.Fatalf("confirmed %d, stream holds up to %d of 15000 published", confirmed, resume)
	}
	t.Logf("confirmed %d, stream holds %d; resuming", confirmed, resume)
	p2 := newPublisher(t, e.nc, Options{Window: window})
	acked, _, err := publishRange(t, p2, "death", resume+1, total, window)
	if err != nil || acked != total {
		t.Fatalf("resumed run confirmed up to %d, error %v", acked, err)
	}
	checkStream(t, e.js, "death", 1, total)
}

// TestBounded: what the Publisher holds is bounded by the window, not by
// the number of messages: the in-flight count never exceeds the window
// (checked after every Publish by publishRange) and, across batches opened
// and ended by pauses, the batch table is empty again once all are
// acknowledged (the rest of its state is fixed-size).
func TestBounded(t *testing.T) {
	e := startEnv(t)
	createStream(t, e.js, "bounded", true, 1)
	const window = 512
	p := newPublisher(t, e.nc, Options{Window: window})
	// Publish in spurts so that batches end and new ones open.
	var from uint64 = 1
	for round := 0; round < 20; round++ {
		to := from + 4_999
		acked, _, err := publishRange(t, p, "bounded", from, to, window)
		if err != nil || acked != to {
			t.Fatalf("round %d: confirmed up to %d, error %v", round, acked, err)
		}
		from = to + 1
		if round%5 == 4 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(50 * time.Millisecond)
	p.bmu.Lock()
	n := len(p.batches)
	p.bmu.Unlock()
	if n != 0 {
		t.Fatalf("%d batches still tracked after all were acknowledged", n)
	}
	checkStream(t, e.js, "bounded", 1, from-1)
}

// TestTinyWindow: with the smallest window (2, so an ack interval of 1)
// publishing still makes progress: the flow stays below the window.
func TestTinyWindow(t *testing.T) {
	e := startEnv(t)
	createStream(t, e.js, "tiny", true, 1)
	p := newPublisher(t, e.nc, Options{Window: 2})
	acked, _, err := publishRange(t, p, "tiny", 1, 2_000, 2)
	if err != nil || acked != 2_000 {
		t.Fatalf("confirmed up to %d, error %v", acked, err)
	}
	checkStream(t, e.js, "tiny", 1, 2_000)
}

// TestSequenceChecks: Publish refuses sequence 0 and a sequence that does
// not follow the previous one, before sending anything.
func TestSequenceChecks(t *testing.T) {
	e := startEnv(t)
	createStream(t, e.js, "seqs", true, 1)
	p := newPublisher(t, e.nc, Options{})
	if err := p.Publish("seqs", nil, []byte("x"), 0); !errors.Is(err, ErrSequence) {
		t.Fatalf("Publish(0) = %v", err)
	}
	if err := p.Publish("seqs", nil, []byte("x"), 1); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish("seqs", nil, []byte("x"), 3); !errors.Is(err, ErrSequence) {
		t.Fatalf("Publish(3) after 1 = %v", err)
	}
	p.Flush()
	timer := stoppedTimer()
	if err := p.Await(1, timer, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := lastSeq(t, e.js, "seqs"); got != 1 {
		t.Fatalf("stream's last sequence %d, want 1", got)
	}
}

// newPublisher is New for a test, closed when the test ends (Close may
// have been called already).
func newPublisher(t testing.TB, nc *nats.Conn, o Options) *Publisher {
	t.Helper()
	p, err := New(nc, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// stoppedTimer is a timer for Await to reset.
func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}
