package replica

import (
	"fmt"

	"github.com/replog/replog/pkg/protocol"
)

// MemStorage is an in-memory Storage for tests and the simulator. It models
// a disk: Append puts entries in the page cache, Sync makes them durable,
// and Crash throws away what was not synced. It is not safe for concurrent
// use.
type MemStorage struct {
	ents         []protocol.Entry // ents[i].Index == i+1
	synced       int              // ents[:synced] are durable
	hs, syncedHS protocol.HardState
}

// LastIndex implements Storage.
func (s *MemStorage) LastIndex() uint64 { return uint64(len(s.ents)) }

// Term implements Storage.
func (s *MemStorage) Term(i uint64) (uint64, error) {
	if i == 0 {
		return 0, nil
	}
	if i > uint64(len(s.ents)) {
		return 0, fmt.Errorf("memstorage: index %d beyond last %d", i, len(s.ents))
	}
	return s.ents[i-1].Term, nil
}

// Entries implements Storage.
func (s *MemStorage) Entries(lo, hi uint64, maxBytes int) ([]protocol.Entry, error) {
	if lo < 1 || hi > uint64(len(s.ents))+1 || lo > hi {
		return nil, fmt.Errorf("memstorage: range [%d,%d) outside [1,%d]", lo, hi, len(s.ents)+1)
	}
	var out []protocol.Entry
	size := 0
	for i := lo; i < hi; i++ {
		e := s.ents[i-1]
		if len(out) > 0 && size+e.Size() > maxBytes {
			break
		}
		size += e.Size()
		out = append(out, e)
	}
	return out, nil
}

// Append truncates from ents[0].Index and appends, unsynced.
func (s *MemStorage) Append(ents []protocol.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	first := ents[0].Index
	if first < 1 || first > uint64(len(s.ents))+1 {
		return fmt.Errorf("memstorage: append at %d after last %d", first, len(s.ents))
	}
	if first-1 < uint64(len(s.ents)) {
		// Truncation: copy, so slices handed out earlier stay intact.
		s.ents = append(s.ents[:first-1:first-1], ents...)
	} else {
		s.ents = append(s.ents, ents...)
	}
	if s.synced > int(first-1) {
		s.synced = int(first - 1)
	}
	return nil
}

// SetHardState records hs, unsynced.
func (s *MemStorage) SetHardState(hs protocol.HardState) { s.hs = hs }

// Sync makes everything durable.
func (s *MemStorage) Sync() { s.synced = len(s.ents); s.syncedHS = s.hs }

// HardState is the latest hard state set.
func (s *MemStorage) HardState() protocol.HardState { return s.hs }

// Crash loses everything not synced. (A real disk might keep some of it; a
// simulator can model that by syncing a random prefix first.)
func (s *MemStorage) Crash() {
	s.ents = s.ents[:s.synced:s.synced]
	s.hs = s.syncedHS
}

// All returns every entry (for checks).
func (s *MemStorage) All() []protocol.Entry { return s.ents }

// SyncedIndex is the last durable index.
func (s *MemStorage) SyncedIndex() uint64 { return uint64(s.synced) }
