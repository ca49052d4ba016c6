package stanstore

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/stan.go/pb"
)

// channelState is a channel and where its messages are.
type channelState struct {
	Channel
	slices []*slice // ascending by file number, only those still holding messages
}

func (c *channelState) copy() Channel {
	out := c.Channel
	out.Subscriptions = make([]Subscription, len(c.Subscriptions))
	for i, s := range c.Subscriptions {
		s.Pending = slices.Clone(s.Pending)
		out.Subscriptions[i] = s
	}
	out.Notes = slices.Clone(c.Notes)
	return out
}

// slice is one message file (msgs.<n>.dat) and its index (msgs.<n>.idx).
type slice struct {
	n        int
	dat, idx string
	// useIdx: the index file is complete and matches the data file;
	// otherwise messages are found by reading the data file.
	useIdx      bool
	first, last uint64 // sequences the file holds
	count       int
	bytes       uint64
	maxSize     uint32
}

// recoverChannel reads a channel's subscriptions and message files, then
// applies the limits as a starting server would.
func (s *Store) recoverChannel(cs *channelState, clients map[string]bool, now time.Time) error {
	dir := filepath.Join(s.dir, cs.Name)
	subsPath := filepath.Join(dir, subsFileName)
	stored, err := readSubs(subsPath, s.crc)
	if err != nil {
		return brokenErr(cs.Name, subsPath, err)
	}
	cs.Subscriptions = resolveSubs(stored, clients)

	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("channel %q: list %s: %w", cs.Name, dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasPrefix(name, "msgs.") || !strings.HasSuffix(name, ".dat") {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "msgs."), ".dat"))
		if err != nil {
			return brokenErr(cs.Name, filepath.Join(dir, name), errors.New("message file with an invalid name"))
		}
		sl := &slice{n: n, dat: filepath.Join(dir, name), idx: filepath.Join(dir, fmt.Sprintf("msgs.%d.idx", n))}
		if err := s.recoverSlice(cs, sl); err != nil {
			return err
		}
		if sl.count > 0 {
			cs.slices = append(cs.slices, sl)
		}
	}
	sort.Slice(cs.slices, func(i, j int) bool { return cs.slices[i].n < cs.slices[j].n })
	for _, sl := range cs.slices {
		if cs.FirstSeq == 0 || sl.first < cs.FirstSeq {
			cs.FirstSeq = sl.first
		}
		cs.LastSeq = max(cs.LastSeq, sl.last)
		cs.Msgs += uint64(sl.count)
		cs.Bytes += sl.bytes
		cs.MaxMsgSize = max(cs.MaxMsgSize, sl.maxSize)
	}
	return s.applyLimits(cs, now)
}

// recoverSlice indexes one message file: from its index file when that is
// sound (as the server does), else by reading the data file, which is
// what the server does after rebuilding a missing or damaged index.
func (s *Store) recoverSlice(cs *channelState, sl *slice) error {
	dat, err := openFile(sl.dat)
	if err != nil {
		return brokenErr(cs.Name, sl.dat, err)
	}
	dat.Close()
	if _, err := os.Stat(sl.idx); err == nil {
		idxErr := s.scanIndex(sl)
		if idxErr == nil && sl.count > 0 {
			sl.useIdx = true
			return nil
		}
		if idxErr != nil {
			cs.Notes = append(cs.Notes, fmt.Sprintf("index %s is unusable (%v): messages read from %s (the server would rebuild the index)", sl.idx, idxErr, sl.dat))
		}
		*sl = slice{n: sl.n, dat: sl.dat, idx: sl.idx}
	} else if errors.Is(err, os.ErrNotExist) {
		cs.Notes = append(cs.Notes, fmt.Sprintf("index %s is missing: messages read from %s (the server would rebuild the index)", sl.idx, sl.dat))
	} else {
		return fmt.Errorf("channel %q: %s: %w", cs.Name, sl.idx, err)
	}
	return s.scanData(cs, sl)
}

// scanIndex reads a whole index file and checks its last entry against
// the data file.
func (s *Store) scanIndex(sl *slice) error {
	st, err := s.openEntries(sl, true)
	if err != nil {
		return err
	}
	defer st.close()
	var last indexEntry
	for {
		e, _, err := st.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		sl.add(e)
		last = e
	}
	if sl.count == 0 {
		return nil
	}
	f, err := os.Open(sl.dat)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := s.readMsgAt(f, last); err != nil {
		return fmt.Errorf("its last entry does not match %s: %w", filepath.Base(sl.dat), err)
	}
	return nil
}

// scanData indexes a message file by reading every record, as the server
// does when it has no usable index. A damaged record makes the channel
// unreadable: the server refuses to start then.
func (s *Store) scanData(cs *channelState, sl *slice) error {
	st, err := s.openEntries(sl, false)
	if err != nil {
		return brokenErr(cs.Name, sl.dat, err)
	}
	defer st.close()
	for {
		e, _, err := st.next()
		if errors.Is(err, io.EOF) {
			if st.zeroEnd {
				cs.Notes = append(cs.Notes, fmt.Sprintf("%s ends in zeros after offset %d: ignored (the server would truncate them)", sl.dat, st.rr.off))
			}
			return nil
		}
		if err != nil {
			return brokenErr(cs.Name, sl.dat, err)
		}
		sl.add(e)
	}
}

func (sl *slice) add(e indexEntry) {
	if sl.count == 0 {
		sl.first = e.seq
	}
	sl.last = e.seq
	sl.count++
	sl.bytes += uint64(e.size) + recordOverhead
	sl.maxSize = max(sl.maxSize, e.size)
}

// applyLimits drops messages from the front the way the server does when
// it starts: while over max_msgs or max_bytes (keeping at least one
// message), then while the first is older than max_age. Both only ever
// remove from the front, so one pass does both.
func (s *Store) applyLimits(cs *channelState, now time.Time) error {
	l := cs.Limits
	over := func() bool {
		return cs.Msgs > 1 && ((l.MaxMsgs > 0 && cs.Msgs > uint64(l.MaxMsgs)) || (l.MaxBytes > 0 && cs.Bytes > uint64(l.MaxBytes)))
	}
	expired := func(e indexEntry) bool {
		return l.MaxAge > 0 && now.UnixNano()-e.ts >= int64(l.MaxAge)
	}
	for len(cs.slices) > 0 {
		sl := cs.slices[0]
		st, err := s.openEntries(sl, sl.useIdx)
		if err != nil {
			return brokenErr(cs.Name, st.path, err)
		}
		removed := 0
		for {
			e, _, err := st.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				st.close()
				return brokenErr(cs.Name, st.path, err)
			}
			if !over() && !expired(e) {
				st.close()
				return nil
			}
			cs.Msgs--
			cs.Bytes -= uint64(e.size) + recordOverhead
			cs.FirstSeq = e.seq + 1
			removed++
		}
		st.close()
		if removed < sl.count {
			return nil
		}
		cs.slices = cs.slices[1:]
	}
	return nil
}

// entries streams a slice's index entries, from its index file or by
// decoding its data file (then with the messages).
type entries struct {
	path    string
	f       *os.File
	br      *bufio.Reader
	rr      *recordReader
	buf     [indexRecordSize]byte
	off     int64
	s       *Store
	zeroEnd bool
}

func (s *Store) openEntries(sl *slice, fromIndex bool) (*entries, error) {
	path := sl.dat
	if fromIndex {
		path = sl.idx
	}
	f, err := openFile(path)
	if err != nil {
		return &entries{path: path}, err
	}
	st := &entries{path: path, f: f, off: 4, s: s}
	if fromIndex {
		st.br = bufio.NewReaderSize(f, 64<<10)
	} else {
		st.rr = newRecordReader(path, f, false, s.crc, s.bufSize)
	}
	return st, nil
}

func (st *entries) close() {
	if st.f != nil {
		st.f.Close()
	}
}

// next returns the next entry (and, reading a data file, its message);
// io.EOF at the end of the file or where a zero-filled tail starts.
func (st *entries) next() (indexEntry, *pb.MsgProto, error) {
	if st.br != nil {
		n, err := io.ReadFull(st.br, st.buf[:])
		if errors.Is(err, io.EOF) {
			return indexEntry{}, nil, io.EOF
		}
		if err != nil {
			return indexEntry{}, nil, fmt.Errorf("offset %d: %d of %d bytes of an index record: %w", st.off, n, indexRecordSize, errTruncated)
		}
		e, err := decodeIndex(st.buf[:], st.s.crc)
		if errors.Is(err, errZeroRecord) {
			st.zeroEnd = true
			return indexEntry{}, nil, io.EOF
		}
		if err != nil {
			return indexEntry{}, nil, fmt.Errorf("offset %d: %w", st.off, err)
		}
		st.off += indexRecordSize
		return e, nil, nil
	}
	start := st.rr.off
	_, payload, err := st.rr.next()
	if errors.Is(err, errZeroRecord) {
		st.zeroEnd = true
		return indexEntry{}, nil, io.EOF
	}
	if err != nil {
		return indexEntry{}, nil, err
	}
	m := &pb.MsgProto{}
	if err := m.Unmarshal(payload); err != nil {
		return indexEntry{}, nil, fmt.Errorf("offset %d: decode message: %w", start, err)
	}
	return indexEntry{seq: m.Sequence, offset: start, ts: m.Timestamp, size: uint32(len(payload))}, m, nil
}

// readMsgAt reads the message an index entry points at and checks that it
// is that message.
func (s *Store) readMsgAt(f *os.File, e indexEntry) (*pb.MsgProto, error) {
	rr := newRecordReader(f.Name(), io.NewSectionReader(f, e.offset, int64(recordHeaderSize)+int64(e.size)), false, s.crc, recordHeaderSize+int(e.size))
	rr.off = e.offset
	return decodeAt(rr, e)
}

func decodeAt(rr *recordReader, e indexEntry) (*pb.MsgProto, error) {
	_, payload, err := rr.next()
	if errors.Is(err, io.EOF) || errors.Is(err, errZeroRecord) {
		return nil, fmt.Errorf("offset %d: no record where the index points (sequence %d): %w", e.offset, e.seq, errTruncated)
	}
	if err != nil {
		return nil, fmt.Errorf("sequence %d: %w", e.seq, err)
	}
	if len(payload) != int(e.size) {
		return nil, fmt.Errorf("offset %d: record of %d bytes, the index says %d (sequence %d)", e.offset, len(payload), e.size, e.seq)
	}
	m := &pb.MsgProto{}
	if err := m.Unmarshal(payload); err != nil {
		return nil, fmt.Errorf("offset %d: decode message %d: %w", e.offset, e.seq, err)
	}
	if m.Sequence != e.seq {
		return nil, fmt.Errorf("offset %d: message %d where the index says %d", e.offset, m.Sequence, e.seq)
	}
	return m, nil
}
