package wal

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/replog/replog/pkg/protocol"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name         string
		segmentBytes int64
		cacheEntries int // -1: default cache
		n            int
		maxSize      int
		maxBatch     int
		wantSegments int // at least
	}{
		{"tiny segments default cache", 4 << 10, -1, 1500, 300, 40, 20},
		{"tiny segments small cache", 4 << 10, 50, 1500, 300, 40, 20},
		{"tiny segments no cache", 4 << 10, 0, 1500, 300, 40, 20},
		{"one entry per segment", 1, 16, 200, 50, 7, 200},
		{"single segment", 0, 100, 3000, 100, 100, 1},
		{"single entries", 4 << 10, 10, 300, 200, 1, 5},
		{"big entries", 64 << 10, 8, 60, 40 << 10, 5, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tt.n)))
			dir := t.TempDir()
			opts := Options{Dir: dir, SegmentBytes: tt.segmentBytes, NoSync: true}
			w := openT(t, opts, tt.cacheEntries)
			verify(t, w, nil, rng)
			var model []protocol.Entry
			term := uint64(1)
			for len(model) < tt.n {
				k := min(tt.n-len(model), 1+rng.IntN(200))
				model = append(model, randomEntries(rng, uint64(len(model)+1), k, term, tt.maxSize)...)
				term += rng.Uint64N(3)
			}
			appendInBatches(t, w, rng, model, tt.maxBatch)
			verify(t, w, model, rng)
			if err := w.Sync(); err != nil {
				t.Fatalf("Sync: got error %v, want nil", err)
			}
			closeT(t, w)
			if got := len(segmentFiles(t, dir)); got < tt.wantSegments {
				t.Fatalf("segment files: got %d, want at least %d", got, tt.wantSegments)
			}

			w = openT(t, opts, tt.cacheEntries)
			verify(t, w, model, rng)
			more := randomEntries(rng, uint64(len(model)+1), 50, term+1, tt.maxSize)
			appendInBatches(t, w, rng, more, tt.maxBatch)
			model = append(model, more...)
			verify(t, w, model, rng)
			closeT(t, w)
			w = openT(t, opts, tt.cacheEntries)
			verify(t, w, model, rng)
			closeT(t, w)
		})
	}
}

func TestSyncedRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	dir := t.TempDir()
	opts := Options{Dir: dir, SegmentBytes: 2 << 10}
	w := openT(t, opts, -1)
	model := randomEntries(rng, 1, 300, 3, 100)
	for _, batch := range [][]protocol.Entry{model[:100], model[100:250], model[250:]} {
		appendT(t, w, batch)
		if err := w.Sync(); err != nil {
			t.Fatalf("Sync: got error %v, want nil", err)
		}
	}
	conflict := randomEntries(rng, 120, 10, 4, 100)
	appendT(t, w, conflict)
	model = append(model[:119], conflict...)
	if err := w.Sync(); err != nil {
		t.Fatalf("Sync: got error %v, want nil", err)
	}
	closeT(t, w)
	w = openT(t, opts, -1)
	verify(t, w, model, rng)
	closeT(t, w)
}

func TestTruncateAndAppend(t *testing.T) {
	const n = 1200
	rng := rand.New(rand.NewPCG(3, 3))
	base := randomEntries(rng, 1, n, 2, 200)
	for i := 600; i < n; i++ { // a change of term inside the log
		base[i] = makeEntry(uint64(i+1), 3, len(base[i].Data))
	}
	// 4 KiB segments hold ~30 entries: many boundaries. 24 KiB segments
	// hold ~200: several sparse index points per segment.
	for _, segBytes := range []int64{4 << 10, 24 << 10} {
		// Learn where the segments start with this layout.
		dir := t.TempDir()
		opts := Options{Dir: dir, SegmentBytes: segBytes, NoSync: true}
		w := openT(t, opts, 64)
		appendT(t, w, base)
		var firsts []uint64
		for _, s := range w.segs {
			firsts = append(firsts, s.first)
		}
		cacheFirst := w.cache.first
		closeT(t, w)
		if len(firsts) < 5 {
			t.Fatalf("segments: got %d, want at least 5", len(firsts))
		}

		positions := []uint64{1, 2, 3, 599, 600, 601, 602, n - 1, n,
			cacheFirst - 1, cacheFirst, cacheFirst + 1, n - 10}
		// Segment boundaries and sparse index points: the first few
		// segments, some in the middle, the last few.
		m := len(firsts) / 2
		for _, f := range slices.Concat(firsts[:3], firsts[m-1:m+2], firsts[len(firsts)-3:]) {
			positions = append(positions, f-1, f, f+1, f+63, f+64, f+65, f+128)
		}
		slices.Sort(positions)
		positions = slices.Compact(positions)
		positions = slices.DeleteFunc(positions, func(p uint64) bool { return p < 1 || p > n })

		caches := []int{-1, 64, 0}
		if testing.Short() {
			caches = caches[1:2]
		}
		for _, cacheEntries := range caches {
			t.Run(fmt.Sprintf("segment %d cache %d", segBytes, cacheEntries), func(t *testing.T) {
				t.Parallel()
				truncateAt(t, base, positions, opts.SegmentBytes, cacheEntries)
			})
		}
	}
}

// truncateAt runs the truncate-and-append check of TestTruncateAndAppend
// for every position.
func truncateAt(t *testing.T, base []protocol.Entry, positions []uint64, segBytes int64, cacheEntries int) {
	rng := rand.New(rand.NewPCG(uint64(cacheEntries+10), 4))
	{
		for _, pos := range positions {
			for _, count := range []int{1, 300} {
				dir := t.TempDir()
				opts := Options{Dir: dir, SegmentBytes: segBytes, NoSync: true}
				w := openT(t, opts, cacheEntries)
				appendInBatches(t, w, rng, base, 100)
				conflict := randomEntries(rng, pos, count, 5, 200)
				appendT(t, w, conflict)
				model := append(slices.Clone(base[:pos-1]), conflict...)
				verify(t, w, model, rng)
				// A second conflict inside the entries just written.
				pos2 := pos + uint64(rng.IntN(count))
				conflict2 := randomEntries(rng, pos2, 1+rng.IntN(50), 6, 200)
				appendT(t, w, conflict2)
				model = append(model[:pos2-1], conflict2...)
				verify(t, w, model, rng)
				closeT(t, w)
				w = openT(t, opts, cacheEntries)
				verify(t, w, model, rng)
				more := randomEntries(rng, uint64(len(model)+1), 30, 7, 200)
				appendT(t, w, more)
				model = append(model, more...)
				verify(t, w, model, rng)
				closeT(t, w)
				if t.Failed() {
					t.Fatalf("cache %d, conflict at %d, %d entries", cacheEntries, pos, count)
				}
			}
		}
	}
}

func TestTruncateWholeLog(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	dir := t.TempDir()
	opts := Options{Dir: dir, SegmentBytes: 1 << 10, NoSync: true}
	w := openT(t, opts, -1)
	appendT(t, w, randomEntries(rng, 1, 200, 1, 100))
	model := randomEntries(rng, 1, 5, 2, 100)
	appendT(t, w, model)
	verify(t, w, model, rng)
	if got := segmentFiles(t, dir); len(got) != 1 || got[0] != segmentName(1) {
		t.Fatalf("segment files: got %v, want [%s]", got, segmentName(1))
	}
	closeT(t, w)
	w = openT(t, opts, -1)
	verify(t, w, model, rng)
	closeT(t, w)
}

func TestAppendErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	w := openT(t, Options{Dir: t.TempDir(), NoSync: true}, -1)
	defer w.Close()
	appendT(t, w, randomEntries(rng, 1, 10, 1, 10))
	gap := []protocol.Entry{makeEntry(1, 1, 1), makeEntry(3, 1, 1)}
	tests := []struct {
		name string
		ents []protocol.Entry
		want string
	}{
		{"empty", nil, "no entries"},
		{"index zero", []protocol.Entry{makeEntry(0, 1, 1)}, "index 0"},
		{"gap after last", []protocol.Entry{makeEntry(12, 1, 1)}, "gap"},
		{"not contiguous", gap, "not contiguous"},
		{"too large", []protocol.Entry{{Index: 11, Data: make([]byte, maxPayload)}}, "record limit"},
	}
	for _, tt := range tests {
		err := w.Append(tt.ents)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "wal: ") {
			t.Errorf("%s: got error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
	if got := w.LastIndex(); got != 10 {
		t.Fatalf("LastIndex after rejected appends: got %d, want 10", got)
	}
	if _, err := w.Entries(5, 4, math.MaxInt); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Entries(5, 4): got error %v, want ErrOutOfRange", err)
	}
	if got, err := w.Entries(4, 4, math.MaxInt); err != nil || len(got) != 0 {
		t.Fatalf("Entries(4, 4): got %d entries, %v, want 0, nil", len(got), err)
	}
	if got, err := w.Entries(1, 11, 0); err != nil || len(got) != 1 {
		t.Fatalf("Entries(1, 11, 0): got %d entries, %v, want 1, nil", len(got), err)
	}
}

func TestClose(t *testing.T) {
	w := openT(t, Options{Dir: t.TempDir()}, -1)
	appendT(t, w, []protocol.Entry{makeEntry(1, 1, 5)})
	closeT(t, w)
	closeT(t, w) // idempotent
	if err := w.Append([]protocol.Entry{makeEntry(2, 1, 5)}); err == nil {
		t.Fatalf("Append after Close: got nil error, want one")
	}
	if _, err := w.Entries(1, 2, math.MaxInt); err == nil {
		t.Fatalf("Entries after Close: got nil error, want one")
	}
	if got, err := w.Term(1); err != nil || got != 1 {
		t.Fatalf("Term(1) after Close: got %d, %v, want 1, nil", got, err)
	}
}

func TestHardState(t *testing.T) {
	tests := []protocol.HardState{
		{Term: 1, Vote: "n1", Commit: 0},
		{Term: 7, Vote: "", Commit: 12345},
		{Term: math.MaxUint64, Vote: strings.Repeat("v", 300), Commit: math.MaxUint64},
		{},
	}
	dir := t.TempDir()
	opts := Options{Dir: dir}
	w := openT(t, opts, -1)
	if got := w.HardState(); !got.IsEmpty() {
		t.Fatalf("HardState of a new WAL: got %+v, want empty", got)
	}
	for _, hs := range tests {
		if err := w.SaveHardState(hs); err != nil {
			t.Fatalf("SaveHardState(%+v): got error %v, want nil", hs, err)
		}
		if got := w.HardState(); got != hs {
			t.Fatalf("HardState after save: got %+v, want %+v", got, hs)
		}
		closeT(t, w)
		w = openT(t, opts, -1)
		if got := w.HardState(); got != hs {
			t.Fatalf("HardState after reopen: got %+v, want %+v", got, hs)
		}
	}
	closeT(t, w)
}

func TestHardStateTornTmp(t *testing.T) {
	saved := protocol.HardState{Term: 4, Vote: "n2", Commit: 9}
	tests := []struct {
		name string
		save bool // save a HardState before leaving the tmp file
		tmp  []byte
	}{
		{"garbage tmp, no hardstate", false, []byte("garbage")},
		{"empty tmp, no hardstate", false, nil},
		{"garbage tmp", true, []byte{1, 2, 3}},
		{"torn copy of a valid record", true, encodeHardState(protocol.HardState{Term: 5, Vote: "n3"})[:7]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			want := protocol.HardState{}
			if tt.save {
				w := openT(t, Options{Dir: dir}, -1)
				if err := w.SaveHardState(saved); err != nil {
					t.Fatal(err)
				}
				closeT(t, w)
				want = saved
			}
			writeFile(t, filepath.Join(dir, hardStateTmp), tt.tmp)
			w := openT(t, Options{Dir: dir}, -1)
			if got := w.HardState(); got != want {
				t.Fatalf("HardState: got %+v, want %+v", got, want)
			}
			if _, err := os.Stat(filepath.Join(dir, hardStateTmp)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("stat %s after Open: got %v, want not exist", hardStateTmp, err)
			}
			closeT(t, w)
		})
	}
}

func TestHardStateCorrupt(t *testing.T) {
	good := encodeHardState(protocol.HardState{Term: 3, Vote: "n1", Commit: 2})
	flip := func(i int) []byte {
		b := slices.Clone(good)
		b[i] ^= 0x40
		return b
	}
	tests := []struct {
		name string
		file []byte
	}{
		{"empty", nil},
		{"short header", good[:5]},
		{"truncated payload", good[:len(good)-1]},
		{"extra byte", append(slices.Clone(good), 0)},
		{"flipped length", flip(0)},
		{"flipped crc", flip(5)},
		{"flipped payload", flip(len(good) - 2)},
		{"too large", make([]byte, maxHardState+10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, hardStateFile), tt.file)
			w, err := Open(Options{Dir: dir})
			if err == nil {
				w.Close()
				t.Fatalf("Open: got nil error, want one")
			}
			if !strings.Contains(err.Error(), "hardstate") {
				t.Fatalf("Open: got error %v, want one about the hardstate", err)
			}
		})
	}
}

func TestTermRunsAndCache(t *testing.T) {
	var r termRuns
	for i, term := range []uint64{1, 1, 2, 2, 2, 5, 6, 6} {
		r.add(uint64(i+1), term)
	}
	if got, want := len(r), 4; got != want {
		t.Fatalf("runs: got %d, want %d", got, want)
	}
	r.truncate(4)
	r.add(4, 9)
	for i, want := range []uint64{0, 1, 1, 2, 9, 9} {
		if got := r.term(uint64(i)); got != want {
			t.Fatalf("term(%d): got %d, want %d", i, got, want)
		}
	}

	c := newTailCache(4, 1000)
	for i := uint64(1); i <= 10; i++ {
		c.push(makeEntry(i, 1, 10))
	}
	if c.first != 7 || c.n != 4 || !c.has(10) || c.has(6) {
		t.Fatalf("cache after 10 pushes: got first %d n %d, want first 7 n 4", c.first, c.n)
	}
	c.truncate(9)
	c.push(makeEntry(9, 2, 950))
	if c.first != 9 || c.n != 1 || c.get(9).Term != 2 {
		t.Fatalf("cache after a big entry: got first %d n %d, want first 9 n 1", c.first, c.n)
	}
	c.push(makeEntry(20, 2, 1))
	if c.first != 20 || c.n != 1 {
		t.Fatalf("cache after a jump: got first %d n %d, want first 20 n 1", c.first, c.n)
	}
}
