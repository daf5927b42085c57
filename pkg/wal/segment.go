package wal

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/replog/replog/pkg/protocol"
)

const (
	// sparseEvery is the stride of a segment's offset index: it records the
	// file offset of every sparseEvery-th entry.
	sparseEvery = 64
	// segmentSuffix ends every segment file name.
	segmentSuffix = ".wal"
	// readBufferSize is the read-ahead of record readers.
	readBufferSize = 16 << 10
	// minSlab and maxSlab bound the chunks that hold the Data of entries
	// read from disk, so that a read allocates a few times, not per entry.
	minSlab = 1 << 10
	maxSlab = 64 << 10
)

// segment is one log file holding the contiguous entries first..last.
//
// Fields are written only by the writer while it holds both WAL.wmu and
// WAL.mu; readers read them under WAL.mu.RLock, the writer under WAL.wmu.
type segment struct {
	first  uint64 // index of the first entry, also the file name
	last   uint64 // index of the last entry; first-1 when empty
	size   int64  // bytes of whole records published to readers
	name   string // base name, for errors and logs
	f      *os.File
	sparse []int64 // sparse[k] = offset of entry first+k*sparseEvery
}

// segmentName returns the file name of the segment starting at first.
func segmentName(first uint64) string {
	return fmt.Sprintf("%020d%s", first, segmentSuffix)
}

// parseSegmentName returns the first index encoded in a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	first, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, false
	}
	return first, true
}

// createSegment creates (or empties) the segment file starting at first.
func createSegment(dir string, first uint64) (*segment, error) {
	name := segmentName(first)
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("wal: create segment: %w", err)
	}
	return &segment{first: first, last: first - 1, name: name, f: f}, nil
}

// contains reports whether entry i is in the segment.
func (s *segment) contains(i uint64) bool { return i >= s.first && i <= s.last }

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}

// newRecordReader returns a reader of s's records starting at file offset
// off. Call release when done.
func (s *segment) newRecordReader(off int64) *recordReader {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(io.NewSectionReader(s.f, off, s.size-off))
	return &recordReader{r: br, off: off, limit: s.size}
}

func (rr *recordReader) release() {
	rr.r.Reset(nil)
	readerPool.Put(rr.r)
	rr.r = nil
}

// seek returns a reader positioned at the record of entry i, which must be
// in s, using the sparse index and skipping forward.
func (s *segment) seek(i uint64) (*recordReader, error) {
	k := (i - s.first) / sparseEvery
	rr := s.newRecordReader(s.sparse[k])
	for j := s.first + k*sparseEvery; j < i; j++ {
		if err := rr.skip(); err != nil {
			rr.release()
			return nil, fmt.Errorf("wal: %s offset %d: %w", s.name, rr.off, err)
		}
	}
	return rr, nil
}

// offsetOf returns the file offset of entry i's record, or s.size when i is
// last+1.
func (s *segment) offsetOf(i uint64) (int64, error) {
	if i > s.last {
		return s.size, nil
	}
	rr, err := s.seek(i)
	if err != nil {
		return 0, err
	}
	defer rr.release()
	return rr.off, nil
}

// read calls fn with entries lo..hi-1 of s, in order, until fn returns
// false. It checks every record's CRC and index. The entries it passes own
// their Data (slices of shared, capacity-limited chunks).
func (s *segment) read(lo, hi uint64, fn func(protocol.Entry) bool) error {
	rr, err := s.seek(lo)
	if err != nil {
		return err
	}
	defer rr.release()
	var slab []byte
	slabSize := minSlab / 2
	for i := lo; i < hi; i++ {
		off := rr.off
		p, err := rr.next()
		var e protocol.Entry
		if err == nil {
			err = decodeEntry(p, &e)
		}
		if err == nil && e.Index != i {
			err = errWrongIndex
		}
		if err != nil {
			return fmt.Errorf("wal: read %s offset %d: %w", s.name, off, err)
		}
		if n := len(e.Data); n > 0 { // copy Data out of the read buffer into a slab
			if cap(slab)-len(slab) < n {
				slabSize = min(2*slabSize, maxSlab)
				slab = make([]byte, 0, max(n, slabSize))
			}
			k := len(slab)
			slab = append(slab, e.Data...)
			e.Data = slab[k:len(slab):len(slab)]
		}
		if !fn(e) {
			return nil
		}
	}
	return nil
}

// scanResult is what scan learned about a segment file.
type scanResult struct {
	good   int64 // offset just past the last good record
	size   int64 // size of the file
	bad    error // why the record at good was rejected; nil if none
	sparse []int64
	last   uint64
}

// scan reads the whole file of s, which must start with entry s.first,
// checking every record, and calls fn for each good entry (its Data aliases
// a reused buffer). It stops at the first bad record.
func (s *segment) scan(fn func(*protocol.Entry)) (scanResult, error) {
	st, err := s.f.Stat()
	if err != nil {
		return scanResult{}, fmt.Errorf("wal: stat %s: %w", s.name, err)
	}
	res := scanResult{size: st.Size(), last: s.first - 1}
	br := readerPool.Get().(*bufio.Reader)
	defer readerPool.Put(br)
	br.Reset(io.NewSectionReader(s.f, 0, res.size))
	defer br.Reset(nil)
	rr := &recordReader{r: br, limit: res.size}
	var e protocol.Entry
	for {
		off := rr.off
		p, err := rr.next()
		if err == io.EOF {
			break
		}
		if err == nil {
			err = decodeEntry(p, &e)
		}
		if err == nil && e.Index != res.last+1 {
			err = errWrongIndex
		}
		if err != nil {
			res.good, res.bad = off, err
			return res, nil
		}
		if (e.Index-s.first)%sparseEvery == 0 {
			res.sparse = append(res.sparse, off)
		}
		res.last = e.Index
		fn(&e)
	}
	res.good = rr.off
	return res, nil
}
