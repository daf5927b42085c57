package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/replog/replog/pkg/protocol"
)

const (
	// headerSize is the length of a record header: u32 length, u32 CRC.
	headerSize = 8
	// maxPayload is the largest payload a record may carry. A length field
	// above it is corruption, never a real record.
	maxPayload = 64 << 20
	// maxEntryOverhead bounds the bytes a payload adds to Key and Data:
	// six uvarints of at most 10 bytes each and the type byte.
	maxEntryOverhead = 6*binary.MaxVarintLen64 + 1
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Reasons a record is rejected. They describe the damage in error messages
// and in the torn-tail warning.
var (
	errShortHeader  = errors.New("short record header")
	errBadLength    = errors.New("record length out of range")
	errShortPayload = errors.New("record payload past end of file")
	errChecksum     = errors.New("record checksum mismatch")
	errUndecodable  = errors.New("undecodable record payload")
	errWrongIndex   = errors.New("record has unexpected index")
)

// appendRecord appends the framed record for e to b. On error b is returned
// unchanged.
func appendRecord(b []byte, e *protocol.Entry) ([]byte, error) {
	if len(e.Key)+len(e.Data)+maxEntryOverhead > maxPayload {
		return b, fmt.Errorf("wal: entry %d is %d bytes, above the %d byte record limit",
			e.Index, len(e.Key)+len(e.Data), maxPayload-maxEntryOverhead)
	}
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	b = binary.AppendUvarint(b, e.Index)
	b = binary.AppendUvarint(b, e.Term)
	b = append(b, byte(e.Type))
	b = binary.AppendUvarint(b, e.MsgID)
	b = binary.AppendVarint(b, e.Time)
	b = binary.AppendUvarint(b, uint64(len(e.Key)))
	b = append(b, e.Key...)
	b = binary.AppendUvarint(b, uint64(len(e.Data)))
	b = append(b, e.Data...)
	payload := b[start+headerSize:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(payload, crcTable))
	return b, nil
}

// decoder reads the fields of a payload with bounds checks; the first
// failure sticks in ok.
type decoder struct {
	p  []byte
	ok bool
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.ok = false
		d.p = nil
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.p)
	if n <= 0 {
		d.ok = false
		d.p = nil
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.p) < 1 {
		d.ok = false
		return 0
	}
	c := d.p[0]
	d.p = d.p[1:]
	return c
}

// bytes returns the next length-prefixed byte string, aliasing the payload.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if !d.ok || n > uint64(len(d.p)) {
		d.ok = false
		return nil
	}
	b := d.p[:n:n]
	d.p = d.p[n:]
	return b
}

// decodeEntry decodes payload p into e. e.Data aliases p (nil when empty);
// callers that keep it past the next read must copy it.
func decodeEntry(p []byte, e *protocol.Entry) error {
	d := decoder{p: p, ok: true}
	e.Index = d.uvarint()
	e.Term = d.uvarint()
	e.Type = protocol.EntryType(d.byte())
	e.MsgID = d.uvarint()
	e.Time = d.varint()
	key := d.bytes()
	data := d.bytes()
	if !d.ok || len(d.p) != 0 {
		return errUndecodable
	}
	e.Key = string(key)
	e.Data = nil
	if len(data) > 0 {
		e.Data = data
	}
	return nil
}

// recordReader reads framed records from a byte stream that starts at file
// offset off and ends at file offset limit.
type recordReader struct {
	r     *bufio.Reader
	off   int64 // file offset of the next record
	limit int64 // file offset where the readable bytes end
	hdr   [headerSize]byte
	buf   []byte
}

// header reads the next record header and returns the payload length. It
// returns io.EOF only at a clean record boundary at the end of the stream.
func (rr *recordReader) header() (int, error) {
	if rr.off == rr.limit {
		return 0, io.EOF
	}
	if rr.limit-rr.off < headerSize {
		return 0, errShortHeader
	}
	if _, err := io.ReadFull(rr.r, rr.hdr[:]); err != nil {
		return 0, errShortHeader
	}
	n := binary.LittleEndian.Uint32(rr.hdr[:4])
	if n == 0 || n > maxPayload {
		return 0, errBadLength
	}
	if int64(n) > rr.limit-rr.off-headerSize {
		return 0, errShortPayload
	}
	return int(n), nil
}

// next returns the payload of the next record after checking its CRC. The
// payload is valid until the following call.
func (rr *recordReader) next() ([]byte, error) {
	n, err := rr.header()
	if err != nil {
		return nil, err
	}
	if cap(rr.buf) < n {
		rr.buf = make([]byte, n)
	}
	p := rr.buf[:n]
	if _, err := io.ReadFull(rr.r, p); err != nil {
		return nil, errShortPayload
	}
	if crc32.Checksum(p, crcTable) != binary.LittleEndian.Uint32(rr.hdr[4:]) {
		return nil, errChecksum
	}
	rr.off += headerSize + int64(n)
	return p, nil
}

// skip moves past the next record without reading or checking its payload.
func (rr *recordReader) skip() error {
	n, err := rr.header()
	if err != nil {
		return err
	}
	if d, err := rr.r.Discard(n); err != nil || d != n {
		return errShortPayload
	}
	rr.off += headerSize + int64(n)
	return nil
}
