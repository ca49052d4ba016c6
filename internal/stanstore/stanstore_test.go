package stanstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-streaming-server/stores"
	"github.com/nats-io/nats-streaming-server/util"

	"github.com/stanmigrate/stanmigrate/internal/fixture"
	"github.com/stanmigrate/stanmigrate/internal/source"
	sourcedir "github.com/stanmigrate/stanmigrate/internal/source/dir"
	"github.com/stanmigrate/stanmigrate/internal/stanstore"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/storetest"
)

const coreFixture = "../../testdata/fixtures/core.yaml"

var (
	coreOnce sync.Once
	coreRoot string
	core     *storetest.Seeded
	coreErr  error
)

// seededCore seeds the core fixture once for the package; tests copy its
// directory before touching it.
func seededCore(t *testing.T) *storetest.Seeded {
	t.Helper()
	coreOnce.Do(func() {
		coreRoot, coreErr = os.MkdirTemp("", "stanstore-core-")
		if coreErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		// Files of 64 messages: channels span several files, and the
		// server deletes the files max_msgs emptied.
		core, coreErr = storetest.Seed(ctx, coreRoot, coreFixture, storetest.SliceMaxMsgs(64))
	})
	if coreErr != nil {
		t.Fatal(coreErr)
	}
	return core
}

func TestMain(m *testing.M) {
	code := m.Run()
	if coreRoot != "" {
		os.RemoveAll(coreRoot)
	}
	os.Exit(code)
}

// copyCore copies the seeded directory for one test.
func copyCore(t *testing.T) (string, *storetest.Seeded) {
	t.Helper()
	s := seededCore(t)
	dir := filepath.Join(t.TempDir(), "stan")
	storetest.CopyDir(t, s.Dir, dir)
	return dir, s
}

func open(t *testing.T, dir string, spec *fixture.Spec) *stanstore.Store {
	t.Helper()
	st, err := stanstore.Open(context.Background(), dir, stanstore.Options{Limits: spec.StoreLimits()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func byName(chans []stanstore.Channel) map[string]stanstore.Channel {
	out := map[string]stanstore.Channel{}
	for _, c := range chans {
		out[c.Name] = c
	}
	return out
}

// The store read from the stopped server's directory says what the
// running server's monitoring said, and what the fixture predicts down to
// each durable's exact pending set.
func TestOpenMatchesServer(t *testing.T) {
	dir, s := copyCore(t)
	st := open(t, dir, s.Spec)
	chans := matchServer(t, st, s)
	// Limits come from the options, matched as the server matches them.
	if c := chans["payments"]; c.Limits.MaxMsgs != 300 || c.LimitsFrom != "payments" {
		t.Errorf("payments limits %+v from %q, want max_msgs 300 from \"payments\"", c.Limits, c.LimitsFrom)
	}
	if c := chans["audit.log"]; c.Limits.MaxMsgs != 1000 || c.LimitsFrom != "audit.*" {
		t.Errorf("audit.log limits %+v from %q, want max_msgs 1000 from \"audit.*\"", c.Limits, c.LimitsFrom)
	}
}

// A server stopped with its clients connected never rewrote their
// durables' stored state: last_sent and the pending sets are replayed
// from the per-message records, the members of a durable queue group are
// kept (their clients are registered), and so is a non-durable queue
// group.
func TestOpenMatchesServerStoppedWithClients(t *testing.T) {
	s, err := storetest.Seed(storetest.Timeout(t), t.TempDir(), "testdata/connected.yaml", storetest.SliceMaxMsgs(64))
	if err != nil {
		t.Fatal(err)
	}
	st := open(t, s.Dir, s.Spec)
	c := matchServer(t, st, s)["stock"]
	members := 0
	for _, sub := range c.Subscriptions {
		if sub.QueueGroup == "pickers" && sub.Connected {
			members++
		}
	}
	if members != 2 {
		t.Errorf("durable queue group pickers: %d connected members kept, want 2: %+v", members, c.Subscriptions)
	}
}

// durables are the channel's durables as the directory source merges
// them (queue group members and shadow into one, pending sets exact).
func durables(c stanstore.Channel) []source.Durable { return sourcedir.FromStore(c).Durables }

// connectedAtStop reports whether the durable's owner (or a queue group
// member) was connected when the server stopped.
func connectedAtStop(c stanstore.Channel, id source.DurableID) bool {
	for _, s := range c.Subscriptions {
		if s.IsDurable && s.Durable == id.Durable && s.QueueGroup == id.QueueGroup && (id.QueueGroup != "" || s.ClientID == id.ClientID) && s.Connected {
			return true
		}
	}
	return false
}

// matchServer compares the store with the server's monitoring before it
// stopped and with the fixture's expectations; it returns the channels.
func matchServer(t *testing.T, st *stanstore.Store, s *storetest.Seeded) map[string]stanstore.Channel {
	t.Helper()
	if st.ClusterID() != embedded.ClusterID {
		t.Errorf("cluster id %q, want %q", st.ClusterID(), embedded.ClusterID)
	}
	chans := byName(st.Channels())
	if len(chans) != len(s.Live) {
		t.Errorf("%d channels, the server had %d", len(chans), len(s.Live))
	}
	for _, live := range s.Live {
		c, ok := chans[live.Name]
		if !ok {
			t.Errorf("channel %q missing", live.Name)
			continue
		}
		if c.Err != nil {
			t.Errorf("channel %q: %v", c.Name, c.Err)
			continue
		}
		if c.FirstSeq != live.FirstSeq || c.LastSeq != live.LastSeq || c.Msgs != uint64(live.Msgs) || c.Bytes != live.Bytes {
			t.Errorf("channel %q: first %d last %d msgs %d bytes %d; the server reported %d %d %d %d",
				c.Name, c.FirstSeq, c.LastSeq, c.Msgs, c.Bytes, live.FirstSeq, live.LastSeq, live.Msgs, live.Bytes)
		}
		// Per durable, the server's last_sent and pending count.
		for _, d := range durables(c) {
			var lastSent uint64
			pending, found := 0, false
			for _, ls := range live.Subscriptions {
				if (d.QueueGroup == "" && ls.DurableName == d.Durable && ls.ClientID == d.ClientID) ||
					(d.QueueGroup != "" && ls.QueueName == d.Durable+":"+d.QueueGroup) {
					found = true
					lastSent = max(lastSent, ls.LastSent)
					pending += ls.PendingCount
				}
			}
			if !found || lastSent != d.LastSent || pending != len(d.Stored.Pending) {
				t.Errorf("channel %q durable %s: last_sent %d, %d pending; the server had found=%v %d, %d",
					c.Name, d.Key(), d.LastSent, len(d.Stored.Pending), found, lastSent, pending)
			}
		}
	}

	for name, want := range s.Spec.Expect() {
		c := chans[name]
		if c.FirstSeq != want.FirstSeq || c.LastSeq != want.LastSeq || c.Msgs != want.Msgs {
			t.Errorf("channel %q: %d..%d (%d), fixture expects %d..%d (%d)", name, c.FirstSeq, c.LastSeq, c.Msgs, want.FirstSeq, want.LastSeq, want.Msgs)
		}
		got := map[string]source.Durable{}
		for _, d := range durables(c) {
			got[d.Key()] = d
		}
		if len(got) != len(want.Durables) {
			t.Errorf("channel %q: %d durables, fixture has %d", name, len(got), len(want.Durables))
		}
		for k, wd := range want.Durables {
			key := k.ClientID + ":" + k.Durable
			if k.Queue != "" {
				key = "queue " + k.Queue + ":" + k.Durable
			}
			d, ok := got[key]
			if !ok {
				t.Errorf("channel %q: durable %s missing", name, key)
				continue
			}
			connected := connectedAtStop(c, d.DurableID)
			if d.LastSent != wd.LastSent || !slices.Equal(d.Stored.Pending, wd.Pending) || d.Stored.Start(c.FirstSeq) != wd.Start ||
				d.MaxInflight != wd.MaxInflight || d.AckWait != wd.AckWait || connected != wd.Online {
				t.Errorf("channel %q durable %s:\n got last_sent %d pending %v start %d inflight %d ack_wait %v connected %v\nwant last_sent %d pending %v start %d inflight %d ack_wait %v online %v",
					name, key, d.LastSent, d.Stored.Pending, d.Stored.Start(c.FirstSeq), d.MaxInflight, d.AckWait, connected,
					wd.LastSent, wd.Pending, wd.Start, wd.MaxInflight, wd.AckWait, wd.Online)
			}
		}
		var nonDurables []string
		for _, sub := range c.Subscriptions {
			if !sub.IsDurable {
				nonDurables = append(nonDurables, sub.ClientID)
				if !sub.Connected {
					t.Errorf("channel %q: non-durable of %q kept though its client is not connected", name, sub.ClientID)
				}
			}
		}
		if len(nonDurables) != len(want.NonDurables) {
			t.Errorf("channel %q: non-durables %v, fixture has %v", name, nonDurables, want.NonDurables)
		}
	}

	return chans
}

// The directory does not record the limits: without them the reader
// shows what the files hold under the server's default limits, which
// for payments is more than the server served.
func TestLimitsAreNotOnDisk(t *testing.T) {
	dir, s := copyCore(t)
	st, err := stanstore.Open(context.Background(), dir, stanstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	live := s.LiveChannel("payments")
	c, _ := st.Channel("payments")
	if c.FirstSeq >= live.FirstSeq || c.LastSeq != live.LastSeq {
		t.Errorf("payments without limits: %d..%d; the server (max_msgs 300) served %d..%d: expected older messages still on disk to show",
			c.FirstSeq, c.LastSeq, live.FirstSeq, live.LastSeq)
	}
	if c.Limits.MaxMsgs != stores.DefaultStoreLimits.MaxMsgs {
		t.Errorf("default max_msgs %d, want the server's default %d", c.Limits.MaxMsgs, stores.DefaultStoreLimits.MaxMsgs)
	}
}

// Every message comes back in order with its subject and exact payload,
// from any starting sequence.
func TestMessages(t *testing.T) {
	dir, s := copyCore(t)
	st := open(t, dir, s.Spec)
	sizes := map[string]int{}
	for _, c := range s.Spec.Channels {
		sizes[c.Name] = c.Size
	}
	for name, want := range s.Spec.Expect() {
		for _, from := range []uint64{0, want.FirstSeq + 7, want.LastSeq, want.LastSeq + 1} {
			t.Run(fmt.Sprintf("%s/from%d", name, from), func(t *testing.T) {
				it, err := st.Messages(name, from)
				if err != nil {
					t.Fatal(err)
				}
				defer it.Close()
				next := max(from, want.FirstSeq)
				for {
					m, err := it.Next()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					if m.Sequence != next {
						t.Fatalf("sequence %d, want %d", m.Sequence, next)
					}
					if m.Subject != name || !bytes.Equal(m.Data, fixture.Payload(name, m.Sequence, sizes[name])) || m.Timestamp == 0 {
						t.Fatalf("sequence %d: subject %q, %d bytes %.30q, timestamp %d: not what was published",
							m.Sequence, m.Subject, len(m.Data), m.Data, m.Timestamp)
					}
					next++
				}
				if want.Msgs > 0 && next != want.LastSeq+1 && from <= want.LastSeq {
					t.Errorf("stopped before %d, want after %d", next, want.LastSeq)
				}
				if want.Msgs == 0 && next != max(from, want.FirstSeq) {
					t.Errorf("an empty channel delivered up to %d", next-1)
				}
			})
		}
	}
	if _, err := st.Messages("no.such.channel", 0); !errors.Is(err, stanstore.ErrNoChannel) {
		t.Errorf("unknown channel: %v, want ErrNoChannel", err)
	}
}

// Reading everything changes nothing in the directory.
func TestReadOnly(t *testing.T) {
	dir, s := copyCore(t)
	before := storetest.Sums(t, dir)
	readAll(t, dir, s.Spec)
	storetest.SameSums(t, before, storetest.Sums(t, dir))
}

// readAll opens the store and reads every message of every readable
// channel; it returns the messages per channel and the iteration errors.
func readAll(t *testing.T, dir string, spec *fixture.Spec) (map[string][]string, map[string]error) {
	t.Helper()
	st := open(t, dir, spec)
	msgs := map[string][]string{}
	errs := map[string]error{}
	for _, c := range st.Channels() {
		if c.Err != nil {
			errs[c.Name] = c.Err
			continue
		}
		it, err := st.Messages(c.Name, 0)
		if err != nil {
			t.Fatal(err)
		}
		for {
			m, err := it.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				errs[c.Name] = err
				break
			}
			msgs[c.Name] = append(msgs[c.Name], fmt.Sprintf("%d %s %x %d", m.Sequence, m.Subject, m.Data, m.Timestamp))
		}
		it.Close()
	}
	return msgs, errs
}

// Where a starting server would repair files without losing data (a
// missing or truncated index, a zero-filled file end) the reader reads
// the same messages, says what it worked around, and still writes
// nothing.
func TestRepairsInMemory(t *testing.T) {
	dir, s := copyCore(t)
	want, _ := readAll(t, dir, s.Spec)
	wantChans := byName(open(t, dir, s.Spec).Channels())

	if err := os.Remove(filepath.Join(dir, "orders.eu", "msgs.1.idx")); err != nil {
		t.Fatal(err)
	}
	idx := lastFile(t, filepath.Join(dir, "payments"), ".idx")
	storetest.Truncate(t, idx, 10)
	if err := os.Remove(filepath.Join(dir, "audit.log", "msgs.1.idx")); err != nil {
		t.Fatal(err)
	}
	storetest.Append(t, filepath.Join(dir, "audit.log", "msgs.1.dat"), make([]byte, 64))
	before := storetest.Sums(t, dir)

	got, errs := readAll(t, dir, s.Spec)
	for name, err := range errs {
		t.Errorf("channel %q: %v", name, err)
	}
	for name, w := range want {
		if !slices.Equal(got[name], w) {
			t.Errorf("channel %q: %d messages read after the damage, %d before", name, len(got[name]), len(w))
		}
	}
	chans := byName(open(t, dir, s.Spec).Channels())
	for _, name := range []string{"orders.eu", "payments", "audit.log"} {
		c, w := chans[name], wantChans[name]
		if c.FirstSeq != w.FirstSeq || c.LastSeq != w.LastSeq || c.Msgs != w.Msgs || c.Bytes != w.Bytes {
			t.Errorf("channel %q: %d..%d %d msgs %d bytes, before the damage %d..%d %d %d", name, c.FirstSeq, c.LastSeq, c.Msgs, c.Bytes, w.FirstSeq, w.LastSeq, w.Msgs, w.Bytes)
		}
		if len(c.Notes) == 0 {
			t.Errorf("channel %q: no note about the repaired file", name)
		}
	}
	storetest.SameSums(t, before, storetest.Sums(t, dir))
}

func lastFile(t *testing.T, dir, suffix string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), suffix) {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		t.Fatalf("no %s file in %s", suffix, dir)
	}
	slices.SortFunc(names, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	return filepath.Join(dir, names[len(names)-1])
}

// Damage the server could not recover from breaks only the channel it is
// in: Open succeeds, the error names the channel and the file, and the
// other channels read in full.
func TestBrokenChannels(t *testing.T) {
	dir, s := copyCore(t)
	want, _ := readAll(t, dir, s.Spec)

	// orders.eu: its data file loses the end of its last record.
	ordersDat := filepath.Join(dir, "orders.eu", "msgs.1.dat")
	storetest.Truncate(t, ordersDat, 5)
	// payments: a subscription record is corrupted.
	paySubs := filepath.Join(dir, "payments", "subs.dat")
	storetest.FlipByte(t, paySubs, 20)
	// audit.log: a message in the middle is corrupted; only reading it
	// finds out (the server too finds out only when it delivers it).
	auditDat := filepath.Join(dir, "audit.log", "msgs.1.dat")
	fi, err := os.Stat(auditDat)
	if err != nil {
		t.Fatal(err)
	}
	storetest.FlipByte(t, auditDat, fi.Size()/2)
	before := storetest.Sums(t, dir)

	st := open(t, dir, s.Spec)
	chans := byName(st.Channels())
	for name, file := range map[string]string{"orders.eu": ordersDat, "payments": paySubs} {
		err := chans[name].Err
		if !errors.Is(err, stanstore.ErrBroken) {
			t.Errorf("channel %q: Err %v, want ErrBroken", name, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("channel %q", name)) || !strings.Contains(msg, file) || !strings.Contains(msg, "--skip-broken") {
			t.Errorf("channel %q: error %q should name the channel, %s and the way out", name, msg, file)
		}
		if _, err := st.Messages(name, 0); !errors.Is(err, stanstore.ErrBroken) {
			t.Errorf("channel %q: Messages %v, want ErrBroken", name, err)
		}
	}
	if err := chans["audit.log"].Err; err != nil {
		t.Errorf("audit.log: %v; its index and last message are sound", err)
	}

	got, errs := readAll(t, dir, s.Spec)
	if err := errs["audit.log"]; !errors.Is(err, stanstore.ErrBroken) || !strings.Contains(err.Error(), `channel "audit.log"`) ||
		!strings.Contains(err.Error(), auditDat) || !strings.Contains(err.Error(), "sequence") {
		t.Errorf("audit.log: iteration error %v, want ErrBroken naming the channel, %s and the sequence", err, auditDat)
	}
	if len(got["audit.log"]) == 0 || len(got["audit.log"]) >= len(want["audit.log"]) {
		t.Errorf("audit.log: %d messages before the damaged one, of %d", len(got["audit.log"]), len(want["audit.log"]))
	}
	if !slices.Equal(got["sessions"], want["sessions"]) || errs["sessions"] != nil {
		t.Errorf("sessions: untouched channel not read in full: %v", errs["sessions"])
	}
	storetest.SameSums(t, before, storetest.Sums(t, dir))
}

// A running server holds its directory: Open refuses it, naming the
// directory and the way out, and leaves it alone.
func TestRefusesRunningServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "stan")
	srv, err := embedded.StartSTAN(embedded.STANConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	_, err = stanstore.Open(context.Background(), dir, stanstore.Options{})
	srv.Stop()
	if !errors.Is(err, stanstore.ErrLocked) {
		t.Fatalf("Open on a running server's directory: %v, want ErrLocked", err)
	}
	abs, _ := filepath.Abs(dir)
	if msg := err.Error(); !strings.Contains(msg, abs) || !strings.Contains(msg, "stop the STAN server") || !strings.Contains(msg, "copy the directory") {
		t.Errorf("error %q should name the directory and say to stop the server or copy the directory", msg)
	}
	st, err := stanstore.Open(context.Background(), dir, stanstore.Options{})
	if err != nil {
		t.Fatalf("Open once the server stopped: %v", err)
	}
	st.Close()
}

// The writer check counts only processes that have a store file open for
// writing: readers (a backup, this package) do not lock anyone out.
func TestWriterCheck(t *testing.T) {
	dir, s := copyCore(t)
	server := filepath.Join(dir, "server.dat")
	ro, err := os.Open(server)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	open(t, dir, s.Spec)

	rw, err := os.OpenFile(filepath.Join(dir, "payments", "subs.dat"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = stanstore.Open(context.Background(), dir, stanstore.Options{Limits: s.Spec.StoreLimits()})
	rw.Close()
	if !errors.Is(err, stanstore.ErrLocked) || !strings.Contains(err.Error(), filepath.Join("payments", "subs.dat")) {
		t.Errorf("a store file open for writing: %v, want ErrLocked naming payments/subs.dat", err)
	}
}

// An FT server holds a POSIX lock on .rootdir.lck (taken here with the
// server's own util.CreateLockFile): Open refuses the directory, and
// accepts it once the lock is released.
func TestRefusesFTLock(t *testing.T) {
	dir, s := copyCore(t)
	lf, err := util.CreateLockFile(filepath.Join(dir, ".rootdir.lck"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = stanstore.Open(context.Background(), dir, stanstore.Options{Limits: s.Spec.StoreLimits()})
	if !errors.Is(err, stanstore.ErrLocked) || !strings.Contains(err.Error(), "fault-tolerance lock") {
		t.Errorf("locked FT directory: %v, want ErrLocked about the fault-tolerance lock", err)
	}
	lf.Close()
	before := storetest.Sums(t, dir)
	open(t, dir, s.Spec)
	storetest.SameSums(t, before, storetest.Sums(t, dir))
}

func TestNotAStore(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{
		"missing":   filepath.Join(root, "missing"),
		"empty dir": root,
		"a file":    file,
	} {
		_, err := stanstore.Open(context.Background(), dir, stanstore.Options{})
		if !errors.Is(err, stanstore.ErrNotStore) || !strings.Contains(err.Error(), dir) {
			t.Errorf("%s: %v, want ErrNotStore naming %s", name, err, dir)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open created the missing directory")
	}
}

func TestLoadServerConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stan.conf")
	conf := `
streaming {
  id: prod-cluster
  store: file
  dir: /data/stan
  store_limits {
    max_msgs: 5000
    max_age: "24h"
    channels {
      "orders.>": { max_msgs: 100 }
      "orders.eu": { max_bytes: 1048576 }
    }
  }
  file_options { crc_poly: 123 }
}
`
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := stanstore.LoadServerConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClusterID != "prod-cluster" || cfg.Dir != "/data/stan" || cfg.StoreType != stores.TypeFile || cfg.Options.CRCPolynomial != 123 {
		t.Errorf("config %+v", cfg)
	}
	l := cfg.Options.Limits
	if l.MaxMsgs != 5000 || l.MaxAge != 24*time.Hour || l.MaxBytes != stores.DefaultStoreLimits.MaxBytes {
		t.Errorf("global limits %+v: want max_msgs 5000, max_age 24h, the default max_bytes", l.ChannelLimits)
	}
	if l.PerChannel["orders.>"].MaxMsgs != 100 || l.PerChannel["orders.eu"].MaxBytes != 1<<20 {
		t.Errorf("per-channel limits %+v %+v", l.PerChannel["orders.>"], l.PerChannel["orders.eu"])
	}
	if _, err := stanstore.LoadServerConfig(filepath.Join(t.TempDir(), "none.conf")); err == nil {
		t.Error("a missing configuration file loaded")
	}
}
