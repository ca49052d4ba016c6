package stanstore

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats-streaming-server/spb"
)

// readClients returns the ids of the clients registered when the server
// stopped (clients.dat: add and delete records, the last one wins). A
// missing file means none (the server creates it on start).
func readClients(path string, crc *crc32.Table) (map[string]bool, error) {
	out := map[string]bool{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	broken := func(err error) error {
		return fmt.Errorf("%s: %v: the server would refuse to start on this directory too: restore the file from a backup: %w", path, err, ErrBroken)
	}
	if err := checkVersion(f); err != nil {
		return nil, broken(err)
	}
	rr := newRecordReader(path, f, true, crc, 64<<10)
	for {
		typ, payload, err := rr.next()
		if errors.Is(err, io.EOF) || errors.Is(err, errZeroRecord) {
			return out, nil
		}
		if err != nil {
			return nil, broken(err)
		}
		switch typ {
		case cliRecAdd:
			var ci spb.ClientInfo
			if err := ci.Unmarshal(payload); err != nil {
				return nil, broken(fmt.Errorf("offset %d: decode client record: %w", rr.off-int64(recordHeaderSize+len(payload)), err))
			}
			out[ci.ID] = true
		case cliRecDel:
			var cd spb.ClientDelete
			if err := cd.Unmarshal(payload); err != nil {
				return nil, broken(fmt.Errorf("offset %d: decode client record: %w", rr.off-int64(recordHeaderSize+len(payload)), err))
			}
			delete(out, cd.ID)
		default:
			return nil, broken(fmt.Errorf("offset %d: unknown client record type %d", rr.off-int64(recordHeaderSize+len(payload)), typ))
		}
	}
}

type storedSub struct {
	state spb.SubState
	seqs  map[uint64]struct{}
}

// readSubs replays a channel's subs.dat the way the server's recovery
// does: creations, updates (which replace the stored state but keep the
// pending set), deletions, and per-message sent and ack records (a sent
// record raises last_sent). A missing file means no subscriptions.
func readSubs(path string, crc *crc32.Table) (map[uint64]*storedSub, error) {
	subs := map[uint64]*storedSub{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return subs, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := checkVersion(f); err != nil {
		return nil, err
	}
	rr := newRecordReader(path, f, true, crc, 256<<10)
	for {
		typ, payload, err := rr.next()
		if errors.Is(err, io.EOF) || errors.Is(err, errZeroRecord) {
			return subs, nil
		}
		if err != nil {
			return nil, err
		}
		at := rr.off - int64(recordHeaderSize+len(payload))
		switch typ {
		case subRecNew, subRecUpdate:
			var ss spb.SubState
			if err := ss.Unmarshal(payload); err != nil {
				return nil, fmt.Errorf("offset %d: decode subscription record: %w", at, err)
			}
			if cur, ok := subs[ss.ID]; ok && typ == subRecUpdate {
				cur.state = ss
				continue
			}
			subs[ss.ID] = &storedSub{state: ss, seqs: map[uint64]struct{}{}}
		case subRecDel:
			var sd spb.SubStateDelete
			if err := sd.Unmarshal(payload); err != nil {
				return nil, fmt.Errorf("offset %d: decode subscription delete record: %w", at, err)
			}
			delete(subs, sd.ID)
		case subRecMsg, subRecAck:
			var su spb.SubStateUpdate
			if err := su.Unmarshal(payload); err != nil {
				return nil, fmt.Errorf("offset %d: decode subscription update record: %w", at, err)
			}
			sub, ok := subs[su.ID]
			if !ok {
				continue
			}
			if typ == subRecMsg {
				sub.state.LastSent = max(sub.state.LastSent, su.Seqno)
				sub.seqs[su.Seqno] = struct{}{}
			} else {
				delete(sub.seqs, su.Seqno)
			}
		default:
			return nil, fmt.Errorf("offset %d: unknown subscription record type %d", at, typ)
		}
	}
}

// resolveSubs turns stored subscriptions into what a server starting on
// the directory would keep (server.go recoverOneSub):
//   - a plain durable is kept, offline when closed or when its client is
//     no longer registered;
//   - a durable queue group member with an empty client id is the group's
//     shadow; one whose client is registered is a member; one whose client
//     is gone is a ghost the server deletes, so it is dropped;
//   - a non-durable is kept only while its client is registered.
func resolveSubs(stored map[uint64]*storedSub, clients map[string]bool) []Subscription {
	out := make([]Subscription, 0, len(stored))
	for _, s := range stored {
		st := &s.state
		sub := Subscription{
			ID: st.ID, ClientID: st.ClientID, IsDurable: st.IsDurable, Inbox: st.Inbox, AckInbox: st.AckInbox,
			MaxInflight: int(st.MaxInFlight), AckWait: time.Duration(st.AckWaitInSecs) * time.Second,
			LastSent: st.LastSent,
		}
		registered := clients[st.ClientID]
		switch {
		case st.DurableName != "":
			// Plain durable (a durable queue member's name is folded
			// into its group name).
			sub.IsDurable = true
			sub.Durable = st.DurableName
			sub.Connected = !st.IsClosed && registered
		case st.QGroup != "" && st.IsDurable:
			dur, group, ok := strings.Cut(st.QGroup, ":")
			if !ok {
				group, dur = st.QGroup, ""
			}
			sub.Durable, sub.QueueGroup = dur, group
			if st.ClientID == "" {
				sub.Shadow = true
			} else if !registered {
				continue
			} else {
				sub.Connected = true
			}
		default:
			if !registered {
				continue
			}
			sub.QueueGroup = st.QGroup
			sub.Connected = true
		}
		sub.Pending = make([]uint64, 0, len(s.seqs))
		for seq := range s.seqs {
			sub.Pending = append(sub.Pending, seq)
		}
		slices.Sort(sub.Pending)
		out = append(out, sub)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
