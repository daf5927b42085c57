package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/rs/zerolog"

	"github.com/replog/replog/pkg/protocol"
)

// Options configures Open.
type Options struct {
	// Dir holds the segment files and the hardstate file. It is created
	// (mode 0o755) if missing.
	Dir string
	// SegmentBytes is the size at which the writer rolls to a new segment
	// file: once the active segment holds at least this many bytes the next
	// record goes to a new file. Zero or negative means 64 MiB.
	SegmentBytes int64
	// NoSync (FSYNC=never) makes Sync, SaveHardState and every other fsync
	// of the WAL a no-op. Appended data then survives a process crash but
	// not a machine crash. For tests and demos.
	NoSync bool
	// Logger receives recovery warnings and lifecycle events. The zero
	// value discards them.
	Logger zerolog.Logger
}

const defaultSegmentBytes = 64 << 20

// ErrCorrupt is returned (wrapped with the file name and offset) by Open
// when a segment other than the last holds a bad record, or when segment
// files do not line up. Open repairs a bad tail of the last segment itself;
// damage anywhere else would lose entries that later segments depend on.
var ErrCorrupt = errors.New("wal: corrupt record before the last segment")

// ErrOutOfRange is returned (wrapped) by Term and Entries for indexes past
// the end of the log.
var ErrOutOfRange = errors.New("wal: index out of range")

var errClosed = errors.New("wal: closed")

// maxWriteBuffer is the largest encoding buffer kept between Appends.
const maxWriteBuffer = 4 << 20

// WAL is the durable log of one node. One writer goroutine may call Append,
// Sync, SaveHardState and Close (calls are serialized anyway); any number of
// goroutines may call FirstIndex, LastIndex, Term, Entries and HardState
// concurrently with it and with each other.
type WAL struct {
	opts     Options
	log      zerolog.Logger
	segBytes int64

	// wmu serializes writers. The fields below it are the writer's own.
	wmu      sync.Mutex
	buf      []byte           // record encoding buffer
	sparse   []int64          // sparse offsets of the chunk being written
	cached   []protocol.Entry // entries of the chunk bound for the cache
	dirDirty bool             // segment files created or removed since the last directory fsync
	err      error            // sticky: a failed write, fsync or truncation

	// mu guards what readers see. The writer changes these fields holding
	// both wmu and mu, so while holding wmu it may read them without mu.
	mu     sync.RWMutex
	segs   []*segment // in index order; the last is the active one
	last   uint64     // last index, 0 when empty
	runs   termRuns
	cache  *tailCache
	hs     protocol.HardState
	closed bool
}

// Open opens the WAL in opts.Dir, creating it if needed, and recovers its
// state: it loads the HardState, scans every segment, truncates a torn tail
// of the last segment (logging a warning) and returns an error wrapping
// ErrCorrupt for damage it must not repair. The returned WAL continues the
// log after its last good entry.
func Open(opts Options) (*WAL, error) {
	if opts.Dir == "" {
		return nil, errors.New("wal: no directory given")
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("wal: create directory: %w", err)
	}
	w := &WAL{
		opts:     opts,
		log:      opts.Logger,
		segBytes: opts.SegmentBytes,
		cache:    newTailCache(defaultCacheEntries, defaultCacheBytes),
	}
	if w.segBytes <= 0 {
		w.segBytes = defaultSegmentBytes
	}
	hs, removedTmp, err := loadHardState(opts.Dir)
	if err != nil {
		return nil, err
	}
	w.hs = hs
	w.dirDirty = removedTmp
	if err := w.recover(); err != nil {
		for _, s := range w.segs {
			_ = s.f.Close()
		}
		return nil, err
	}
	w.log.Info().Str("dir", opts.Dir).Int("segments", len(w.segs)).
		Uint64("last_index", w.last).Uint64("term", hs.Term).Msg("wal: opened")
	return w, nil
}

// recover scans the segment files and builds the in-memory indexes.
func (w *WAL) recover() error {
	dir := w.opts.Dir
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("wal: list directory: %w", err)
	}
	var firsts []uint64 // ReadDir sorts by name, and names sort numerically
	for _, de := range des {
		if first, ok := parseSegmentName(de.Name()); ok && !de.IsDir() {
			firsts = append(firsts, first)
		}
	}
	// An empty trailing segment is a roll cut short by a crash.
	for len(firsts) > 1 {
		path := filepath.Join(dir, segmentName(firsts[len(firsts)-1]))
		st, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("wal: stat segment: %w", err)
		}
		if st.Size() != 0 {
			break
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("wal: remove empty segment: %w", err)
		}
		w.dirDirty = true
		w.log.Info().Str("file", filepath.Base(path)).Msg("wal: removed empty trailing segment")
		firsts = firsts[:len(firsts)-1]
	}
	if len(firsts) == 0 {
		s, err := createSegment(dir, 1)
		if err != nil {
			return err
		}
		w.segs = []*segment{s}
		w.dirDirty = true
		return nil
	}
	next := uint64(1)
	for i, first := range firsts {
		name := segmentName(first)
		if first != next {
			return fmt.Errorf("wal: segment %s should start at index %d: %w", name, next, ErrCorrupt)
		}
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("wal: open segment: %w", err)
		}
		s := &segment{first: first, last: first - 1, name: name, f: f}
		w.segs = append(w.segs, s)
		res, err := s.scan(func(e *protocol.Entry) { w.runs.add(e.Index, e.Term) })
		if err != nil {
			return err
		}
		if res.bad != nil {
			if i < len(firsts)-1 {
				return fmt.Errorf("wal: %s offset %d: %v: %w", name, res.good, res.bad, ErrCorrupt)
			}
			if err := f.Truncate(res.good); err != nil {
				return fmt.Errorf("wal: truncate torn tail of %s: %w", name, err)
			}
			if !w.opts.NoSync {
				if err := fdatasync(f); err != nil {
					return fmt.Errorf("wal: sync torn tail of %s: %w", name, err)
				}
			}
			w.log.Warn().Str("file", name).Int64("offset", res.good).
				Int64("bytes_cut", res.size-res.good).Uint64("last_index", res.last).
				Str("reason", res.bad.Error()).Msg("wal: truncated torn tail of last segment")
		}
		s.size, s.last, s.sparse = res.good, res.last, res.sparse
		next = s.last + 1
	}
	w.last = next - 1
	return nil
}

// active returns the segment appends go to. Writer or mu holder only.
func (w *WAL) active() *segment { return w.segs[len(w.segs)-1] }

// writable returns why the writer may not proceed, if it may not.
func (w *WAL) writable() error {
	if w.closed {
		return errClosed
	}
	return w.err
}

// fail records a sticky writer error and returns it.
func (w *WAL) fail(err error) error {
	w.err = err
	w.log.Error().Err(err).Msg("wal: write path failed; the WAL refuses further writes")
	return err
}

// Append adds ents to the log. ents must be non-empty, contiguous
// (ents[i].Index == ents[0].Index+i) and start at most one past LastIndex.
// If ents[0].Index <= LastIndex, every entry from ents[0].Index on is first
// truncated away (a follower dropping a conflicting suffix). Append writes
// the records with one write per segment it touches but does not fsync them
// (except the segment it rolls away from, and a truncated segment; see the
// package doc): call Sync before acting on their durability. Readers see the
// new entries once Append returns. After a write error the WAL is unusable
// and every later Append or Sync returns that error; reopen it to recover.
// Append keeps no reference to ents.
func (w *WAL) Append(ents []protocol.Entry) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if err := w.writable(); err != nil {
		return err
	}
	if len(ents) == 0 {
		return errors.New("wal: append of no entries")
	}
	first := ents[0].Index
	if first == 0 {
		return errors.New("wal: append of entry index 0")
	}
	if first > w.last+1 {
		return fmt.Errorf("wal: append at index %d leaves a gap after last index %d", first, w.last)
	}
	for i := range ents {
		e := &ents[i]
		if e.Index != first+uint64(i) {
			return fmt.Errorf("wal: append entries not contiguous: index %d at position %d after %d", e.Index, i, first)
		}
		if len(e.Key)+len(e.Data)+maxEntryOverhead > maxPayload {
			return fmt.Errorf("wal: entry %d is %d bytes, above the %d byte record limit",
				e.Index, len(e.Key)+len(e.Data), maxPayload-maxEntryOverhead)
		}
	}
	if first <= w.last {
		if err := w.truncate(first); err != nil {
			return err
		}
	}
	// Only ents[cacheFrom:], the longest suffix within the cache's bounds,
	// can still be cached after this Append; the rest is not copied.
	cacheFrom, cacheBytes := len(ents), 0
	for cacheFrom > 0 && len(ents)-cacheFrom < w.cache.maxEntries {
		sz := ents[cacheFrom-1].Size()
		if cacheBytes+sz > w.cache.maxBytes {
			break
		}
		cacheBytes += sz
		cacheFrom--
	}
	cacheFromIndex := first + uint64(cacheFrom)

	seg := w.active()
	buf, sparse := w.buf[:0], w.sparse[:0]
	start := 0
	var err error
	for i := range ents {
		if seg.size+int64(len(buf)) >= w.segBytes {
			if err := w.publish(seg, buf, ents[start:i], sparse, cacheFromIndex); err != nil {
				return err
			}
			buf, sparse, start = buf[:0], sparse[:0], i
			if seg, err = w.roll(); err != nil {
				return err
			}
		}
		e := &ents[i]
		if (e.Index-seg.first)%sparseEvery == 0 {
			sparse = append(sparse, seg.size+int64(len(buf)))
		}
		if buf, err = appendRecord(buf, e); err != nil {
			return w.fail(err) // unreachable: sizes were checked above
		}
	}
	err = w.publish(seg, buf, ents[start:], sparse, cacheFromIndex)
	if cap(buf) > maxWriteBuffer {
		buf = nil
	}
	w.buf, w.sparse = buf[:0], sparse[:0]
	return err
}

// publish writes buf, the records of ents, at the end of seg and then makes
// the entries visible to readers. sparse holds the offsets of those of ents
// that belong in seg's sparse index; entries from cacheFrom on go into the
// tail cache.
func (w *WAL) publish(seg *segment, buf []byte, ents []protocol.Entry, sparse []int64, cacheFrom uint64) error {
	if len(ents) == 0 {
		return nil
	}
	if _, err := seg.f.WriteAt(buf, seg.size); err != nil {
		_ = seg.f.Truncate(seg.size) // best effort: drop a partial record
		return w.fail(fmt.Errorf("wal: write %s: %w", seg.name, err))
	}
	// Copy the Data of the entries bound for the cache into one slab.
	cached := w.cached[:0]
	slabSize := 0
	for i := range ents {
		if ents[i].Index >= cacheFrom {
			slabSize += len(ents[i].Data)
		}
	}
	slab := make([]byte, 0, slabSize)
	for _, e := range ents {
		if e.Index >= cacheFrom {
			if len(e.Data) > 0 {
				n := len(slab)
				slab = append(slab, e.Data...)
				e.Data = slab[n:len(slab):len(slab)]
			}
			cached = append(cached, e)
		}
	}
	w.mu.Lock()
	seg.size += int64(len(buf))
	seg.last = ents[len(ents)-1].Index
	seg.sparse = append(seg.sparse, sparse...)
	for i := range ents {
		w.runs.add(ents[i].Index, ents[i].Term)
	}
	if len(cached) < len(ents) {
		w.cache.reset() // it must stay a suffix of the log
	}
	for _, e := range cached {
		w.cache.push(e)
	}
	w.last = seg.last
	w.mu.Unlock()
	clear(cached)
	w.cached = cached[:0]
	return nil
}

// roll starts a new active segment after the last entry. The segment being
// left is fdatasynced first, so that a crash can tear only the last segment.
func (w *WAL) roll() (*segment, error) {
	if !w.opts.NoSync {
		if err := fdatasync(w.active().f); err != nil {
			return nil, w.fail(fmt.Errorf("wal: sync %s: %w", w.active().name, err))
		}
	}
	s, err := createSegment(w.opts.Dir, w.last+1)
	if err != nil {
		return nil, w.fail(err)
	}
	w.mu.Lock()
	w.segs = append(w.segs, s)
	w.mu.Unlock()
	w.dirDirty = true
	w.log.Debug().Str("file", s.name).Msg("wal: rolled to a new segment")
	return s, nil
}

// truncate removes every entry with index >= i, 1 <= i <= last. Readers stop
// seeing them at once; then later segment files are removed (newest first,
// each removal made durable) and the segment holding i-1 is cut and synced,
// so that a crash at any point leaves a prefix of the old log.
func (w *WAL) truncate(i uint64) error {
	keep := sort.Search(len(w.segs), func(k int) bool { return w.segs[k].first >= i })
	if keep == 0 {
		keep = 1 // i == 1: keep segment 1 as the empty active segment
	}
	keeper := w.segs[keep-1]
	off, err := keeper.offsetOf(i)
	if err != nil {
		return w.fail(err)
	}
	removed := append([]*segment(nil), w.segs[keep:]...)

	w.mu.Lock()
	clear(w.segs[keep:])
	w.segs = w.segs[:keep]
	keeper.size = off
	keeper.last = i - 1
	keeper.sparse = keeper.sparse[:(i-keeper.first+sparseEvery-1)/sparseEvery]
	w.runs.truncate(i)
	w.cache.truncate(i)
	w.last = i - 1
	w.mu.Unlock()

	for k := len(removed) - 1; k >= 0; k-- {
		s := removed[k]
		_ = s.f.Close()
		if err := os.Remove(filepath.Join(w.opts.Dir, s.name)); err != nil {
			return w.fail(fmt.Errorf("wal: truncate at %d: %w", i, err))
		}
		w.dirDirty = true
		if !w.opts.NoSync {
			if err := syncDir(w.opts.Dir); err != nil {
				return w.fail(fmt.Errorf("wal: truncate at %d: sync directory: %w", i, err))
			}
			w.dirDirty = false
		}
	}
	if err := keeper.f.Truncate(off); err != nil {
		return w.fail(fmt.Errorf("wal: truncate %s at %d: %w", keeper.name, i, err))
	}
	if !w.opts.NoSync {
		if err := fdatasync(keeper.f); err != nil {
			return w.fail(fmt.Errorf("wal: sync %s: %w", keeper.name, err))
		}
	}
	w.log.Info().Uint64("from_index", i).Int("segments_removed", len(removed)).
		Msg("wal: truncated conflicting suffix")
	return nil
}

// Sync makes everything appended so far durable: it fdatasyncs the active
// segment and, if segment files were created or removed since the last
// Sync, fsyncs the directory. With Options.NoSync it does nothing. A failed
// Sync is sticky (see Append).
func (w *WAL) Sync() error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if err := w.writable(); err != nil {
		return err
	}
	return w.sync()
}

func (w *WAL) sync() error {
	if w.opts.NoSync {
		return nil
	}
	if err := fdatasync(w.active().f); err != nil {
		return w.fail(fmt.Errorf("wal: sync %s: %w", w.active().name, err))
	}
	if w.dirDirty {
		if err := syncDir(w.opts.Dir); err != nil {
			return w.fail(fmt.Errorf("wal: sync directory: %w", err))
		}
		w.dirDirty = false
	}
	return nil
}

// FirstIndex returns the index of the first entry the log can hold. The
// log is never compacted, so it is always 1.
func (w *WAL) FirstIndex() uint64 { return 1 }

// LastIndex returns the index of the last entry, 0 when the log is empty.
func (w *WAL) LastIndex() uint64 {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.last
}

// Term returns the term of entry i, answered from memory. Term(0) is 0; an
// i past LastIndex returns an error wrapping ErrOutOfRange.
func (w *WAL) Term(i uint64) (uint64, error) {
	if i == 0 {
		return 0, nil
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if i > w.last {
		return 0, fmt.Errorf("wal: term of %d after last index %d: %w", i, w.last, ErrOutOfRange)
	}
	return w.runs.term(i), nil
}

// Entries returns the entries with indexes in [lo, hi), in order. It stops
// before the entry that would bring the sum of Entry.Size past maxBytes, but
// returns at least one entry when lo < hi (pass math.MaxInt for no limit).
// It returns an error wrapping ErrOutOfRange if lo < 1, hi > LastIndex()+1
// or lo > hi, and a read error if a record fails its checks. Entries are
// served from the tail cache when they are recent, else read from disk;
// the caller must not modify the returned Data.
func (w *WAL) Entries(lo, hi uint64, maxBytes int) ([]protocol.Entry, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return nil, errClosed
	}
	if lo < 1 || hi > w.last+1 || lo > hi {
		return nil, fmt.Errorf("wal: entries [%d,%d) outside [1,%d]: %w", lo, hi, w.last+1, ErrOutOfRange)
	}
	if lo == hi {
		return nil, nil
	}
	out := make([]protocol.Entry, 0, min(hi-lo, 256))
	size := 0
	add := func(e protocol.Entry) bool {
		s := e.Size()
		if len(out) > 0 && size+s > maxBytes {
			return false
		}
		size += s
		out = append(out, e)
		return true
	}
	diskHi := hi // entries before diskHi are not cached
	if w.cache.n > 0 {
		diskHi = min(hi, max(lo, w.cache.first))
	}
	i := lo
	for i < diskHi {
		k := sort.Search(len(w.segs), func(k int) bool { return w.segs[k].first > i }) - 1
		seg := w.segs[k]
		end := min(diskHi, seg.last+1)
		full := false
		if err := seg.read(i, end, func(e protocol.Entry) bool {
			full = !add(e)
			return !full
		}); err != nil {
			return nil, err
		}
		if full {
			return out, nil
		}
		i = end
	}
	for ; i < hi; i++ {
		if !add(w.cache.get(i)) {
			break
		}
	}
	return out, nil
}

// SaveHardState atomically and durably replaces the persisted HardState:
// it writes a temporary file with a CRC, fsyncs it, renames it over the
// hardstate file and fsyncs the directory (no fsyncs with NoSync). On error
// the previous HardState stays in force, on disk and in HardState().
func (w *WAL) SaveHardState(hs protocol.HardState) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.closed {
		return errClosed
	}
	if err := writeHardState(w.opts.Dir, hs, w.opts.NoSync); err != nil {
		return err
	}
	w.mu.Lock()
	w.hs = hs
	w.mu.Unlock()
	return nil
}

// HardState returns the HardState loaded by Open or last saved.
func (w *WAL) HardState() protocol.HardState {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.hs
}

// Close syncs the log (unless NoSync or a write already failed) and closes
// its files. Later writes fail and Entries returns an error; LastIndex,
// Term and HardState keep answering from memory. Closing twice is a no-op.
func (w *WAL) Close() error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.closed {
		return nil
	}
	var err error
	if w.err == nil {
		err = w.sync()
	}
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	for _, s := range w.segs {
		if cerr := s.f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("wal: close %s: %w", s.name, cerr)
		}
	}
	return err
}
