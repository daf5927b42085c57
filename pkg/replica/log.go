package replica

import (
	"fmt"

	"github.com/replog/replog/pkg/protocol"
)

// Storage is the durable part of the log as the core sees it: entries that
// were handed out in a Ready and whose persistence was reported back. The
// runtime's WAL implements it; the simulator uses an in-memory one. Reads may
// happen while the runtime's storage goroutine appends, so an implementation
// must be safe for that.
type Storage interface {
	LastIndex() uint64
	// Term returns the term of entry i; Term(0) is 0. An error means the
	// index is not held.
	Term(i uint64) (uint64, error)
	// Entries returns entries [lo, hi), stopping early once maxBytes is
	// passed but always at least one entry when lo < hi.
	Entries(lo, hi uint64, maxBytes int) ([]protocol.Entry, error)
}

// raftLog is the core's log: the durable Storage plus the unstable tail of
// entries not yet reported persisted.
//
// Invariant: committed <= lastIndex(); unstable[i].Index == offset+i.
// Entries of Storage at or above offset may be stale (the storage goroutine
// has not yet applied a truncation) and are never read.
type raftLog struct {
	storage  Storage
	unstable []protocol.Entry
	offset   uint64
	// handed is the highest unstable index already given out in a Ready.
	handed    uint64
	committed uint64
}

func newLog(s Storage, committed uint64) *raftLog {
	last := s.LastIndex()
	l := &raftLog{storage: s, offset: last + 1, handed: last}
	l.committed = min(committed, last)
	return l
}

func (l *raftLog) lastIndex() uint64 {
	if n := len(l.unstable); n > 0 {
		return l.offset + uint64(n) - 1
	}
	return l.storage.LastIndex()
}

// Term implements protocol.LogView.
func (l *raftLog) Term(i uint64) (uint64, bool) {
	if i == 0 {
		return 0, true
	}
	if i >= l.offset {
		if k := i - l.offset; k < uint64(len(l.unstable)) {
			return l.unstable[k].Term, true
		}
		if len(l.unstable) > 0 {
			return 0, false
		}
	}
	if i > l.storage.LastIndex() {
		return 0, false
	}
	t, err := l.storage.Term(i)
	if err != nil {
		return 0, false
	}
	return t, true
}

// LastIndex implements protocol.LogView.
func (l *raftLog) LastIndex() uint64 { return l.lastIndex() }

func (l *raftLog) lastTerm() uint64 {
	t, _ := l.Term(l.lastIndex())
	return t
}

func (l *raftLog) mustTerm(i uint64) uint64 {
	t, ok := l.Term(i)
	if !ok {
		panic(fmt.Sprintf("replica: term of index %d unavailable (last %d)", i, l.lastIndex()))
	}
	return t
}

// append adds entries, truncating any suffix from ents[0].Index on. It
// returns the new last index. Truncating a committed entry is a safety
// violation and panics.
func (l *raftLog) append(ents ...protocol.Entry) uint64 {
	if len(ents) == 0 {
		return l.lastIndex()
	}
	first := ents[0].Index
	if first <= l.committed {
		panic(fmt.Sprintf("replica: append at %d would truncate committed %d", first, l.committed))
	}
	switch {
	case first == l.offset+uint64(len(l.unstable)):
		l.unstable = append(l.unstable, ents...)
	case first <= l.offset:
		// Replaces all of unstable and possibly stored entries. Copy so a
		// Ready handed out earlier keeps its entries.
		l.offset = first
		l.unstable = append([]protocol.Entry(nil), ents...)
	default:
		keep := l.unstable[:first-l.offset]
		l.unstable = append(append(make([]protocol.Entry, 0, len(keep)+len(ents)), keep...), ents...)
	}
	if l.handed >= first {
		l.handed = first - 1
	}
	return l.lastIndex()
}

// entries returns [lo, hi) bounded by maxBytes (at least one entry).
func (l *raftLog) entries(lo, hi uint64, maxBytes int) ([]protocol.Entry, error) {
	if lo >= hi {
		return nil, nil
	}
	var out []protocol.Entry
	if lo < l.offset {
		sh := min(hi, l.offset)
		ents, err := l.storage.Entries(lo, sh, maxBytes)
		if err != nil {
			return nil, err
		}
		out = ents
		if uint64(len(ents)) < sh-lo || sh == hi {
			return out, nil
		}
		lo = sh
	}
	size := 0
	for _, e := range out {
		size += e.Size()
	}
	for i := lo; i < hi; i++ {
		k := i - l.offset
		if k >= uint64(len(l.unstable)) {
			return nil, fmt.Errorf("replica: entry %d not in log (last %d)", i, l.lastIndex())
		}
		e := l.unstable[k]
		if len(out) > 0 && size+e.Size() > maxBytes {
			break
		}
		size += e.Size()
		out = append(out, e)
	}
	return out, nil
}

// toHand returns the unstable entries not yet handed out and marks them
// handed.
func (l *raftLog) toHand() []protocol.Entry {
	last := l.lastIndex()
	if l.handed >= last || len(l.unstable) == 0 {
		return nil
	}
	from := max(l.handed+1, l.offset)
	ents := l.unstable[from-l.offset:]
	l.handed = last
	return ents[:len(ents):len(ents)]
}

// stableTo drops unstable entries up to index i once they are durable, if
// the entry at i still has term t (it may have been replaced since).
func (l *raftLog) stableTo(i, t uint64) {
	if i < l.offset || i-l.offset >= uint64(len(l.unstable)) {
		return
	}
	if l.unstable[i-l.offset].Term != t {
		return
	}
	n := i - l.offset + 1
	l.unstable = l.unstable[n:]
	l.offset = i + 1
	if len(l.unstable) == 0 {
		l.unstable = nil
	}
}

func (l *raftLog) commitTo(i uint64) bool {
	if i > l.committed {
		if i > l.lastIndex() {
			panic(fmt.Sprintf("replica: commit %d beyond last index %d", i, l.lastIndex()))
		}
		l.committed = i
		return true
	}
	return false
}
