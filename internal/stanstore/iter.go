package stanstore

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/nats-io/stan.go/pb"
)

// Iterator streams a channel's messages in sequence order. It holds at
// most one message file and its index open, with a fixed-size buffer,
// whatever the channel's size. It is not safe for concurrent use.
type Iterator struct {
	s       *Store
	channel string
	slices  []*slice
	next    uint64 // lowest sequence still wanted
	last    uint64

	cur *slice
	ent *entries // index entries (or data records without a usable index)
	dat *os.File // data file, when reading through the index
	br  *bufio.Reader
	pos int64 // offset of br in dat
	rr  recordReader
	err error
}

// Messages returns an iterator over the channel's messages from sequence
// from (or the channel's first, whichever is higher) to its last. A
// broken channel returns its Channel.Err.
func (s *Store) Messages(channel string, from uint64) (*Iterator, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, errors.New("STAN store is closed")
	}
	cs, ok := s.byName[channel]
	if !ok {
		return nil, fmt.Errorf("channel %q is not in %s: %w", channel, s.dir, ErrNoChannel)
	}
	if cs.Err != nil {
		return nil, cs.Err
	}
	return &Iterator{s: s, channel: channel, slices: cs.slices, next: max(from, cs.FirstSeq, 1), last: cs.LastSeq}, nil
}

// Next returns the next message, io.EOF after the last. Sequences may
// jump where the store has none (the caller sees Sequence). A damaged
// record is an error wrapping ErrBroken naming the channel, the file and
// the sequence; the iterator stops there.
func (it *Iterator) Next() (*pb.MsgProto, error) {
	if it.err != nil {
		return nil, it.err
	}
	m, err := it.advance()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			err = fmt.Errorf("channel %q: %v: the server could not deliver this message either: restore the file from a backup, or leave the channel out (--skip-broken) to migrate the others: %w",
				it.channel, err, ErrBroken)
		}
		it.err = err
		it.closeSlice()
		return nil, err
	}
	return m, nil
}

func (it *Iterator) advance() (*pb.MsgProto, error) {
	for {
		if it.next > it.last {
			return nil, io.EOF
		}
		if it.cur == nil {
			if err := it.openSlice(); err != nil {
				return nil, fmt.Errorf("%s: %w", it.slices[0].dat, err)
			}
			if it.cur == nil {
				return nil, io.EOF
			}
		}
		e, m, err := it.ent.next()
		if errors.Is(err, io.EOF) {
			it.closeSlice()
			it.slices = it.slices[1:]
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", it.ent.path, err)
		}
		if e.seq < it.next {
			continue
		}
		if e.seq > it.last {
			return nil, io.EOF
		}
		if m == nil {
			if m, err = it.readAt(e); err != nil {
				return nil, fmt.Errorf("%s: %w", it.cur.dat, err)
			}
		}
		it.next = e.seq + 1
		return m, nil
	}
}

// openSlice opens the first slice that can hold it.next, positioned close
// to it when an index is used.
func (it *Iterator) openSlice() error {
	for len(it.slices) > 0 && it.slices[0].last < it.next {
		it.slices = it.slices[1:]
	}
	if len(it.slices) == 0 {
		return nil
	}
	sl := it.slices[0]
	ent, err := it.s.openEntries(sl, sl.useIdx)
	if err != nil {
		it.cur = sl
		return err
	}
	it.cur, it.ent = sl, ent
	if !sl.useIdx {
		return nil
	}
	if it.dat, err = openFile(sl.dat); err != nil {
		return err
	}
	it.br = bufio.NewReaderSize(it.dat, it.s.bufSize)
	it.pos = 4
	// Index records are written in sequence order with no gaps in a
	// sound file: jump to the wanted one. If the guess is wrong the
	// entries are simply read from the start.
	if it.next > sl.first {
		off := 4 + int64(it.next-sl.first)*indexRecordSize
		if _, err := ent.f.Seek(off, io.SeekStart); err == nil {
			ent.br.Reset(ent.f)
			ent.off = off
			if e, _, err := ent.next(); err != nil || e.seq != it.next {
				if _, err := ent.f.Seek(4, io.SeekStart); err != nil {
					return err
				}
				ent.br.Reset(ent.f)
				ent.off = 4
			} else if _, err := ent.f.Seek(off, io.SeekStart); err == nil {
				ent.br.Reset(ent.f)
				ent.off = off
			} else {
				return err
			}
		}
	}
	return nil
}

// readAt reads the message at an index entry, sequentially when the
// entries follow each other in the data file.
func (it *Iterator) readAt(e indexEntry) (*pb.MsgProto, error) {
	if e.offset != it.pos {
		if _, err := it.dat.Seek(e.offset, io.SeekStart); err != nil {
			return nil, err
		}
		it.br.Reset(it.dat)
		it.pos = e.offset
	}
	it.rr = recordReader{path: it.cur.dat, r: it.br, off: e.offset, crc: it.s.crc, buf: it.rr.buf}
	m, err := decodeAt(&it.rr, e)
	if err != nil {
		// Position unknown after a failed read.
		it.pos = -1
		return nil, err
	}
	it.pos = it.rr.off
	return m, nil
}

func (it *Iterator) closeSlice() {
	if it.ent != nil {
		it.ent.close()
		it.ent = nil
	}
	if it.dat != nil {
		it.dat.Close()
		it.dat = nil
	}
	it.cur = nil
}

// Close releases the iterator's files.
func (it *Iterator) Close() error {
	it.closeSlice()
	if it.err == nil {
		it.err = errors.New("iterator closed")
	}
	return nil
}
