package wal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/replog/replog/pkg/protocol"
)

// TestRecoverEveryOffset writes a segment, then for every byte offset
// truncates the file there or flips the byte there, and checks that Open
// recovers exactly the records before the damage and that the log goes on.
func TestRecoverEveryOffset(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	ents := randomEntries(rng, 1, 40, 1, 60)
	ents = append(ents, randomEntries(rng, 41, 30, 2, 150)...)
	seg, ends := encodeSegment(t, ents)

	var offsets []int64
	if len(seg) <= 16<<10 && !testing.Short() {
		for off := range int64(len(seg)) + 1 {
			offsets = append(offsets, off)
		}
	} else { // a dense sample: every record boundary and its neighbours
		for _, e := range ends {
			offsets = append(offsets, e-1, e, e+1)
		}
		for range min(3000, len(seg)/4) {
			offsets = append(offsets, rng.Int64N(int64(len(seg))))
		}
		slices.Sort(offsets)
		offsets = slices.Compact(offsets)
	}
	t.Logf("segment of %d records, %d bytes, %d offsets", len(ents), len(seg), len(offsets))

	for _, mode := range []string{"truncate", "flip"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			damageEach(t, mode, ents, seg, ends, offsets)
		})
	}
}

// damageEach truncates seg at each offset or flips the byte there, and
// checks what Open recovers.
func damageEach(t *testing.T, mode string, ents []protocol.Entry, seg []byte, ends, offsets []int64) {
	root := t.TempDir()
	{
		for _, off := range offsets {
			if off < 0 || off > int64(len(seg)) || (mode == "flip" && off == int64(len(seg))) {
				continue
			}
			data := slices.Clone(seg)
			if mode == "truncate" {
				data = data[:off]
			} else {
				data[off] ^= 0xff
			}
			// k records end at or before the damage.
			k := sort.Search(len(ends), func(i int) bool { return ends[i] > off })
			dir := filepath.Join(root, fmt.Sprintf("%s-%d", mode, off))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, segmentName(1)), data)
			checkRecovered(t, dir, ents[:k], fmt.Sprintf("%s at %d", mode, off))
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// checkRecovered opens dir, expecting exactly want, appends one entry,
// reopens and expects it too.
func checkRecovered(t *testing.T, dir string, want []protocol.Entry, what string) {
	t.Helper()
	opts := Options{Dir: dir, NoSync: true}
	w, err := Open(opts)
	if err != nil {
		t.Fatalf("%s: Open: got error %v, want nil", what, err)
	}
	k := uint64(len(want))
	if got := w.LastIndex(); got != k {
		t.Fatalf("%s: LastIndex: got %d, want %d", what, got, k)
	}
	got, err := w.Entries(1, k+1, math.MaxInt)
	if err != nil || uint64(len(got)) != k {
		t.Fatalf("%s: Entries(1, %d): got %d entries, %v, want %d, nil", what, k+1, len(got), err, k)
	}
	for i := range got {
		if !sameEntry(got[i], want[i]) {
			t.Fatalf("%s: entry %d: got %+v, want %+v", what, i+1, got[i], want[i])
		}
	}
	wantSize := int64(0)
	if k > 0 {
		_, ends := encodeSegment(t, want)
		wantSize = ends[k-1]
	}
	if st, err := os.Stat(filepath.Join(dir, segmentName(1))); err != nil || st.Size() != wantSize {
		t.Fatalf("%s: segment size after Open: got %v, want %d", what, st.Size(), wantSize)
	}
	next := makeEntry(k+1, 9, 33)
	appendT(t, w, []protocol.Entry{next})
	closeT(t, w)
	w, err = Open(opts)
	if err != nil {
		t.Fatalf("%s: reopen: got error %v, want nil", what, err)
	}
	defer w.Close()
	if got := w.LastIndex(); got != k+1 {
		t.Fatalf("%s: LastIndex after reopen: got %d, want %d", what, got, k+1)
	}
	got, err = w.Entries(k+1, k+2, math.MaxInt)
	if err != nil || len(got) != 1 || !sameEntry(got[0], next) {
		t.Fatalf("%s: Entries(%d, %d) after reopen: got %+v, %v, want [%+v]", what, k+1, k+2, got, err, next)
	}
}

func TestRecoverLogsTornTail(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	ents := randomEntries(rng, 1, 10, 1, 50)
	seg, ends := encodeSegment(t, ents)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, segmentName(1)), seg[:ends[6]+5])
	var logs bytes.Buffer
	w, err := Open(Options{Dir: dir, Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatalf("Open: got error %v, want nil", err)
	}
	defer w.Close()
	for _, want := range []string{`"level":"warn"`, `"bytes_cut":5`, `"last_index":7`} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("log: got %s, want it to contain %s", logs.String(), want)
		}
	}
}

// buildSegments writes a log of small segments, closes it and returns its
// entries and segment file names.
func buildSegments(t *testing.T, dir string) ([]protocol.Entry, []string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(9, 9))
	ents := randomEntries(rng, 1, 200, 1, 60)
	w := openT(t, Options{Dir: dir, SegmentBytes: 1 << 10, NoSync: true}, -1)
	appendT(t, w, ents)
	closeT(t, w)
	names := segmentFiles(t, dir)
	if len(names) < 5 {
		t.Fatalf("segments: got %d, want at least 5", len(names))
	}
	return ents, names
}

// recordEnds returns the offsets at which the valid records of b end.
func recordEnds(b []byte) []int64 {
	rr := &recordReader{r: bufio.NewReader(bytes.NewReader(b)), limit: int64(len(b))}
	var ends []int64
	for {
		if _, err := rr.next(); err != nil {
			return ends
		}
		ends = append(ends, rr.off)
	}
}

func TestRecoverCorruptEarlierSegment(t *testing.T) {
	edit := func(f func(b []byte) []byte) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, f(b))
		}
	}
	flipAt := func(frac float64) func(t *testing.T, path string) {
		return edit(func(b []byte) []byte { b[int(float64(len(b)-1)*frac)] ^= 0xff; return b })
	}
	remove := func(t *testing.T, path string) {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		victim int // index into the segment names; -2 = second to last
		damage func(t *testing.T, path string)
	}{
		{"flip first byte of first segment", 0, flipAt(0)},
		{"flip middle of first segment", 0, flipAt(0.5)},
		{"flip last byte of second to last segment", -2, flipAt(1)},
		{"truncate a middle segment inside a record", 2, edit(func(b []byte) []byte { return b[:len(b)-3] })},
		{"drop the last record of a middle segment", 1, edit(func(b []byte) []byte {
			ends := recordEnds(b)
			return b[:ends[len(ends)-2]]
		})},
		{"garbage after a middle segment", 1, edit(func(b []byte) []byte { return append(b, 1, 2, 3) })},
		{"missing middle segment", 2, remove},
		{"missing first segment", 0, remove},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			_, names := buildSegments(t, dir)
			victim := tt.victim
			if victim < 0 {
				victim += len(names)
			}
			tt.damage(t, filepath.Join(dir, names[victim]))
			w, err := Open(Options{Dir: dir, NoSync: true})
			if err == nil {
				w.Close()
				t.Fatalf("Open: got nil error, want ErrCorrupt")
			}
			if !errors.Is(err, ErrCorrupt) || !strings.HasPrefix(err.Error(), "wal: ") {
				t.Fatalf("Open: got error %v, want one wrapping ErrCorrupt", err)
			}
		})
	}
}

func TestRecoverLastSegment(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string, names []string, ents []protocol.Entry) int // returns entries kept
	}{
		{"flip in last segment", func(t *testing.T, dir string, names []string, ents []protocol.Entry) int {
			path := filepath.Join(dir, names[len(names)-1])
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			first, _ := parseSegmentName(names[len(names)-1])
			b[0] ^= 0xff
			writeFile(t, path, b)
			return int(first) - 1
		}},
		{"empty trailing segments", func(t *testing.T, dir string, names []string, ents []protocol.Entry) int {
			writeFile(t, filepath.Join(dir, segmentName(uint64(len(ents)+1))), nil)
			writeFile(t, filepath.Join(dir, segmentName(uint64(len(ents)+7))), nil)
			return len(ents)
		}},
		{"last segment wholly torn", func(t *testing.T, dir string, names []string, ents []protocol.Entry) int {
			first, _ := parseSegmentName(names[len(names)-1])
			writeFile(t, filepath.Join(dir, names[len(names)-1]), []byte{7, 0, 0})
			return int(first) - 1
		}},
		{"unrelated files", func(t *testing.T, dir string, names []string, ents []protocol.Entry) int {
			writeFile(t, filepath.Join(dir, "README"), []byte("x"))
			writeFile(t, filepath.Join(dir, "123.wal"), []byte("x"))
			return len(ents)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ents, names := buildSegments(t, dir)
			k := tt.damage(t, dir, names, ents)
			rng := rand.New(rand.NewPCG(10, 10))
			opts := Options{Dir: dir, SegmentBytes: 1 << 10, NoSync: true}
			w := openT(t, opts, -1)
			verify(t, w, ents[:k], rng)
			model := append(slices.Clone(ents[:k]), randomEntries(rng, uint64(k+1), 50, 3, 60)...)
			appendT(t, w, model[k:])
			closeT(t, w)
			w = openT(t, opts, -1)
			verify(t, w, model, rng)
			closeT(t, w)
		})
	}
}

func FuzzRecover(f *testing.F) {
	rng := rand.New(rand.NewPCG(11, 11))
	ents := randomEntries(rng, 1, 12, 1, 40)
	seg, ends := encodeSegment(f, ents)
	f.Add(seg)
	f.Add(seg[:len(seg)-3])
	f.Add(seg[:ends[3]])
	f.Add(seg[ends[0]:])
	f.Add([]byte{})
	f.Add(make([]byte, 40))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1})
	flipped := slices.Clone(seg)
	flipped[ends[5]+10] ^= 1
	f.Add(flipped)
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, segmentName(1))
		writeFile(t, path, data)
		opts := Options{Dir: dir, NoSync: true}
		w, err := Open(opts)
		if err != nil {
			t.Fatalf("Open: got error %v, want nil", err)
		}
		k := w.LastIndex()
		got, err := w.Entries(1, k+1, math.MaxInt)
		if err != nil || uint64(len(got)) != k {
			t.Fatalf("Entries(1, %d): got %d entries, %v, want %d, nil", k+1, len(got), err, k)
		}
		for i, e := range got {
			if e.Index != uint64(i+1) {
				t.Fatalf("entry %d: got index %d, want %d", i, e.Index, i+1)
			}
			if term, err := w.Term(e.Index); err != nil || term != e.Term {
				t.Fatalf("Term(%d): got %d, %v, want %d, nil", e.Index, term, err, e.Term)
			}
		}
		kept, err := os.ReadFile(path)
		if err != nil || !bytes.HasPrefix(data, kept) {
			t.Fatalf("segment after Open: got %d bytes (%v), want a prefix of the %d written", len(kept), err, len(data))
		}
		appendT(t, w, []protocol.Entry{makeEntry(k+1, 1, 3)})
		closeT(t, w)
		w, err = Open(opts)
		if err != nil {
			t.Fatalf("reopen: got error %v, want nil", err)
		}
		if got := w.LastIndex(); got != k+1 {
			t.Fatalf("LastIndex after reopen: got %d, want %d", got, k+1)
		}
		closeT(t, w)
	})
}
