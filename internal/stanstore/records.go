package stanstore

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/nats-io/nats-streaming-server/util"
)

// The on-disk layout, as nats-streaming-server v0.25.x writes it
// (stores/filestore.go): every file starts with a 4-byte version (1);
// records follow, each an 8-byte header and a protobuf payload. The
// header's first 4 bytes hold the payload size, with the record type in
// the high byte for typed files (subs.dat, clients.dat); the next 4 bytes
// are the CRC-32 of the payload. Message index files hold fixed 32-byte
// records instead: sequence, offset, timestamp (8 bytes each), message
// size (4), CRC-32 (4). Integers are util.ByteOrder (little endian).
//
// The stores package keeps its record reader and the record types
// unexported, and its FileStore opens every file read-write and repairs
// what it finds (see the package comment), so the framing is read here
// and the payloads are decoded with the server's own protobuf types (spb,
// pb).
const (
	fileVersion      = 1
	recordHeaderSize = 8
	indexRecordSize  = 32
	// recordOverhead is what the server adds to each message's size when
	// it accounts bytes against max_bytes and reports them (the record
	// header plus its index record).
	recordOverhead = recordHeaderSize + indexRecordSize
	// maxRecordSize bounds a record's declared size, so a corrupted header
	// cannot make the reader allocate gigabytes. A STAN message is at most
	// the NATS max payload (64 MiB at most), the typed records are small.
	maxRecordSize = 256 << 20
)

// Record types of subs.dat.
const (
	subRecNew    = 1
	subRecUpdate = 2
	subRecDel    = 3
	subRecAck    = 4
	subRecMsg    = 5
)

// Record types of clients.dat.
const (
	cliRecAdd = 1
	cliRecDel = 2
)

// errZeroRecord is a header of zeros: the server treats it as the end of
// the file (it truncates there on its next start), and so does the reader.
var errZeroRecord = errors.New("zero-filled record header")

// errTruncated is a record cut short by the end of the file.
var errTruncated = errors.New("unexpected end of file inside a record")

// recordReader reads framed records from one file, tracking the offset so
// errors can say where a problem is.
type recordReader struct {
	path   string
	r      *bufio.Reader
	off    int64
	typed  bool
	crc    *crc32.Table
	buf    []byte
	header [recordHeaderSize]byte
}

// openFile opens a store file read-only and checks its version record.
func openFile(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := checkVersion(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func checkVersion(r io.Reader) error {
	v, err := util.ReadInt(r)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("file is shorter than its 4-byte version header: %w", errTruncated)
		}
		return fmt.Errorf("read file version: %w", err)
	}
	if v == 0 || v > fileVersion {
		return fmt.Errorf("unsupported file version %d (this reader knows version %d)", v, fileVersion)
	}
	return nil
}

func newRecordReader(path string, f io.Reader, typed bool, crc *crc32.Table, bufSize int) *recordReader {
	return &recordReader{path: path, r: bufio.NewReaderSize(f, bufSize), off: 4, typed: typed, crc: crc}
}

// next returns the next record's type and payload (valid until the next
// call). io.EOF at a clean end; errZeroRecord where the server would stop
// reading; any other error wraps errTruncated or describes the corruption.
func (rr *recordReader) next() (int, []byte, error) {
	start := rr.off
	n, err := io.ReadFull(rr.r, rr.header[:])
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil, io.EOF
		}
		return 0, nil, fmt.Errorf("offset %d: %d of %d header bytes: %w", start, n, recordHeaderSize, errTruncated)
	}
	first := util.ByteOrder.Uint32(rr.header[:4])
	sum := util.ByteOrder.Uint32(rr.header[4:])
	typ, size := 0, int(first)
	if rr.typed {
		typ, size = int(first>>24), int(first&0xFFFFFF)
	}
	if size == 0 && typ == 0 && sum == 0 {
		return 0, nil, errZeroRecord
	}
	if size > maxRecordSize {
		return 0, nil, fmt.Errorf("offset %d: record header declares %d bytes: corrupted header", start, size)
	}
	if cap(rr.buf) < size {
		rr.buf = make([]byte, size)
	}
	rr.buf = rr.buf[:size]
	if n, err := io.ReadFull(rr.r, rr.buf); err != nil {
		return 0, nil, fmt.Errorf("offset %d: record of %d bytes, only %d in the file: %w", start, size, n, errTruncated)
	}
	if got := crc32.Checksum(rr.buf, rr.crc); got != sum {
		return 0, nil, fmt.Errorf("offset %d: corrupted record: stored CRC-32 0x%08x, computed 0x%08x", start, sum, got)
	}
	rr.off += int64(recordHeaderSize + size)
	return typ, rr.buf, nil
}

// indexEntry is one message index record.
type indexEntry struct {
	seq    uint64
	offset int64
	ts     int64
	size   uint32
}

// decodeIndex decodes one 32-byte index record. A record of zeros is
// errZeroRecord (the server stops there).
func decodeIndex(b []byte, crc *crc32.Table) (indexEntry, error) {
	e := indexEntry{
		seq:    util.ByteOrder.Uint64(b),
		offset: int64(util.ByteOrder.Uint64(b[8:])),
		ts:     int64(util.ByteOrder.Uint64(b[16:])),
		size:   util.ByteOrder.Uint32(b[24:]),
	}
	sum := util.ByteOrder.Uint32(b[28:])
	if e.seq == 0 && e.offset == 0 && e.ts == 0 && e.size == 0 && sum == 0 {
		return e, errZeroRecord
	}
	if got := crc32.Checksum(b[:28], crc); got != sum {
		return e, fmt.Errorf("corrupted index record: stored CRC-32 0x%08x, computed 0x%08x", sum, got)
	}
	return e, nil
}
