package wal

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/replog/replog/pkg/protocol"
)

// payload returns the Data of a test entry: size bytes derived from its
// index and term, so a reader can check an entry is self-consistent.
func payload(index, term uint64, size int) []byte {
	if size == 0 {
		return nil
	}
	b := make([]byte, size)
	for j := range b {
		b[j] = byte(index*31 + term*7 + uint64(j))
	}
	return b
}

// makeEntry returns a test entry whose every field depends on index and term.
func makeEntry(index, term uint64, size int) protocol.Entry {
	e := protocol.Entry{
		Index: index,
		Term:  term,
		Type:  protocol.EntryType(index % 3),
		MsgID: index / 2,
		Time:  int64(index)*1_000_003 - 5_000_000,
		Data:  payload(index, term, size),
	}
	if index%4 == 1 {
		e.Key = string(rune('a'+index%26)) + "-key"
	}
	return e
}

// checkEntry reports whether e has the contents makeEntry gives its index
// and term.
func checkEntry(e protocol.Entry) bool {
	want := makeEntry(e.Index, e.Term, len(e.Data))
	return sameEntry(e, want)
}

// randomEntries returns n entries from first on, of term term and random
// Data sizes in [0, maxSize].
func randomEntries(rng *rand.Rand, first uint64, n int, term uint64, maxSize int) []protocol.Entry {
	ents := make([]protocol.Entry, n)
	for i := range ents {
		ents[i] = makeEntry(first+uint64(i), term, rng.IntN(maxSize+1))
	}
	return ents
}

func sameEntry(a, b protocol.Entry) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type && a.MsgID == b.MsgID &&
		a.Time == b.Time && a.Key == b.Key && bytes.Equal(a.Data, b.Data)
}

// openT opens a WAL or fails the test. With cacheEntries >= 0 the tail
// cache is replaced by one of that many entries and 8 KiB.
func openT(t testing.TB, opts Options, cacheEntries int) *WAL {
	t.Helper()
	w, err := Open(opts)
	if err != nil {
		t.Fatalf("Open(%s): got error %v, want nil", opts.Dir, err)
	}
	if cacheEntries >= 0 {
		w.cache = newTailCache(cacheEntries, 8<<10)
	}
	return w
}

func appendT(t testing.TB, w *WAL, ents []protocol.Entry) {
	t.Helper()
	if err := w.Append(ents); err != nil {
		t.Fatalf("Append([%d..%d]): got error %v, want nil", ents[0].Index, ents[len(ents)-1].Index, err)
	}
}

func closeT(t testing.TB, w *WAL) {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatalf("Close: got error %v, want nil", err)
	}
}

// appendInBatches appends ents in batches of random sizes up to maxBatch.
func appendInBatches(t testing.TB, w *WAL, rng *rand.Rand, ents []protocol.Entry, maxBatch int) {
	t.Helper()
	for len(ents) > 0 {
		n := min(len(ents), 1+rng.IntN(maxBatch))
		appendT(t, w, ents[:n])
		ents = ents[n:]
	}
}

// verify checks that w holds exactly model: LastIndex, every Term, the whole
// log, random ranges and maxBytes limits.
func verify(t *testing.T, w *WAL, model []protocol.Entry, rng *rand.Rand) {
	t.Helper()
	n := uint64(len(model))
	if got := w.LastIndex(); got != n {
		t.Fatalf("LastIndex: got %d, want %d", got, n)
	}
	if got := w.FirstIndex(); got != 1 {
		t.Fatalf("FirstIndex: got %d, want 1", got)
	}
	for i := uint64(0); i <= n; i++ {
		var want uint64
		if i > 0 {
			want = model[i-1].Term
		}
		if got, err := w.Term(i); err != nil || got != want {
			t.Fatalf("Term(%d): got %d, %v, want %d, nil", i, got, err, want)
		}
	}
	if _, err := w.Term(n + 1); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Term(%d): got error %v, want ErrOutOfRange", n+1, err)
	}
	checkRange(t, w, model, 1, n+1, math.MaxInt)
	for range 30 {
		lo := 1 + rng.Uint64N(n+1)
		hi := lo + rng.Uint64N(n+2-lo)
		checkRange(t, w, model, lo, hi, rng.IntN(2000))
	}
	if _, err := w.Entries(0, 1, math.MaxInt); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Entries(0, 1): got error %v, want ErrOutOfRange", err)
	}
	if _, err := w.Entries(1, n+2, math.MaxInt); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Entries(1, %d): got error %v, want ErrOutOfRange", n+2, err)
	}
}

// checkRange checks Entries(lo, hi, maxBytes) against model.
func checkRange(t *testing.T, w *WAL, model []protocol.Entry, lo, hi uint64, maxBytes int) {
	t.Helper()
	got, err := w.Entries(lo, hi, maxBytes)
	if err != nil {
		t.Fatalf("Entries(%d, %d, %d): got error %v, want nil", lo, hi, maxBytes, err)
	}
	want := model[lo-1 : hi-1]
	size := 0
	for k := range want {
		if k > 0 && size+want[k].Size() > maxBytes {
			want = want[:k]
			break
		}
		size += want[k].Size()
	}
	if len(got) != len(want) {
		t.Fatalf("Entries(%d, %d, %d): got %d entries, want %d", lo, hi, maxBytes, len(got), len(want))
	}
	for k := range got {
		if !sameEntry(got[k], want[k]) {
			t.Fatalf("Entries(%d, %d, %d)[%d]: got %+v, want %+v", lo, hi, maxBytes, k, got[k], want[k])
		}
	}
}

// segmentFiles returns the names of the segment files in dir.
func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		names[i] = filepath.Base(n)
	}
	return names
}

// encodeSegment returns the bytes of a segment holding ents and the file
// offset at which each record ends.
func encodeSegment(t testing.TB, ents []protocol.Entry) ([]byte, []int64) {
	t.Helper()
	var b []byte
	ends := make([]int64, len(ents))
	for i := range ents {
		var err error
		if b, err = appendRecord(b, &ents[i]); err != nil {
			t.Fatal(err)
		}
		ends[i] = int64(len(b))
	}
	return b, ends
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
