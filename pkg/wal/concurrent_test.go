package wal

import (
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestConcurrentReaders runs one writer that appends, truncates conflicting
// suffixes and syncs, while readers call Entries, Term and LastIndex and
// check that every entry they get is whole and where it should be. Run it
// with -race.
func TestConcurrentReaders(t *testing.T) {
	tests := []struct {
		name         string
		cacheEntries int
		noSync       bool
		segBytes     int64
	}{
		{"small cache", 32, true, 2 << 10},
		{"no cache", 0, true, 2 << 10},
		{"no cache big segments", 0, true, 32 << 10},
		{"default cache with fsync", -1, false, 2 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			w := openT(t, Options{Dir: dir, SegmentBytes: tt.segBytes, NoSync: tt.noSync}, tt.cacheEntries)
			done := make(chan struct{})
			var wg sync.WaitGroup
			errs := make(chan string, 16)
			report := func(msg string) {
				select {
				case errs <- msg:
				default:
				}
			}
			for r := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					readLoop(w, uint64(r), done, report)
				}()
			}

			stop := sync.OnceFunc(func() { close(done); wg.Wait() })
			defer stop() // also when the writer fails the test

			rng := rand.New(rand.NewPCG(12, 12))
			term := uint64(1)
			ops := 400
			if !tt.noSync {
				ops = 150
			}
			for op := range ops {
				last := w.LastIndex()
				first := last + 1
				if last > 0 && rng.IntN(4) == 0 { // a conflict: new term, earlier index
					term++
					first = last - rng.Uint64N(min(last, 80))
				}
				ents := randomEntries(rng, first, 1+rng.IntN(30), term, 150)
				if err := w.Append(ents); err != nil {
					t.Fatalf("op %d: Append at %d: got error %v, want nil", op, first, err)
				}
				if op%10 == 0 {
					if err := w.Sync(); err != nil {
						t.Fatalf("op %d: Sync: got error %v, want nil", op, err)
					}
				}
			}
			stop()
			close(errs)
			for msg := range errs {
				t.Error(msg)
			}
			closeT(t, w)
		})
	}
}

// readLoop reads random ranges of w until done is closed, reporting any
// entry that is not the one its position and contents say it should be.
func readLoop(w *WAL, seed uint64, done <-chan struct{}, report func(string)) {
	rng := rand.New(rand.NewPCG(seed, 99))
	for {
		select {
		case <-done:
			return
		default:
		}
		last := w.LastIndex()
		if last == 0 {
			continue
		}
		lo := 1 + rng.Uint64N(last)
		if rng.IntN(2) == 0 { // the master's favourite: the newest entries
			lo = last - min(last-1, rng.Uint64N(20))
		}
		hi := lo + rng.Uint64N(last+2-lo)
		maxBytes := math.MaxInt
		if rng.IntN(2) == 0 {
			maxBytes = rng.IntN(3000)
		}
		ents, err := w.Entries(lo, hi, maxBytes)
		if err != nil {
			if !errors.Is(err, ErrOutOfRange) { // the log may have shrunk
				report("Entries: unexpected error " + err.Error())
				return
			}
			continue
		}
		if lo < hi && len(ents) == 0 {
			report("Entries: got no entries for a non-empty range")
			return
		}
		prevTerm := uint64(0)
		for k, e := range ents {
			if e.Index != lo+uint64(k) {
				report("Entries: entry out of place")
				return
			}
			if !checkEntry(e) {
				report("Entries: entry contents do not match its index and term")
				return
			}
			if e.Term < prevTerm {
				report("Entries: terms decrease: entries from different logs mixed")
				return
			}
			prevTerm = e.Term
		}
		i := 1 + rng.Uint64N(last)
		if _, err := w.Term(i); err != nil && !errors.Is(err, ErrOutOfRange) {
			report("Term: unexpected error " + err.Error())
			return
		}
	}
}
