package wal

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/replog/replog/pkg/protocol"
)

const (
	benchBatch = 64
	benchData  = 100
)

// benchBatchAt returns benchBatch entries of benchData bytes from first on.
func benchBatchAt(ents []protocol.Entry, first uint64) []protocol.Entry {
	data := make([]byte, benchData)
	for i := range ents {
		ents[i] = protocol.Entry{Index: first + uint64(i), Term: 1, MsgID: first + uint64(i), Time: 1, Data: data}
	}
	return ents
}

func benchAppend(b *testing.B, sync bool) {
	w := openT(b, Options{Dir: b.TempDir(), NoSync: !sync}, -1)
	defer w.Close()
	ents := make([]protocol.Entry, benchBatch)
	b.SetBytes(benchBatch * benchData)
	b.ReportAllocs()
	next := uint64(1)
	for b.Loop() {
		if err := w.Append(benchBatchAt(ents, next)); err != nil {
			b.Fatal(err)
		}
		next += benchBatch
		if sync {
			if err := w.Sync(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkAppendSync appends a batch of 64 entries of 100 B and fsyncs it.
func BenchmarkAppendSync(b *testing.B) { benchAppend(b, true) }

// BenchmarkAppendNoSync appends a batch of 64 entries of 100 B.
func BenchmarkAppendNoSync(b *testing.B) { benchAppend(b, false) }

// benchLog returns a WAL holding n entries of 100 B.
func benchLog(b *testing.B, n int) *WAL {
	w := openT(b, Options{Dir: b.TempDir(), NoSync: true}, -1)
	ents := make([]protocol.Entry, benchBatch)
	for next := uint64(1); next <= uint64(n); next += benchBatch {
		if err := w.Append(benchBatchAt(ents, next)); err != nil {
			b.Fatal(err)
		}
	}
	return w
}

// BenchmarkEntriesTail reads the newest 64 entries, served by the tail cache.
func BenchmarkEntriesTail(b *testing.B) {
	w := benchLog(b, 10_000)
	defer w.Close()
	last := w.LastIndex()
	b.SetBytes(benchBatch * benchData)
	b.ReportAllocs()
	for b.Loop() {
		ents, err := w.Entries(last-benchBatch+1, last+1, math.MaxInt)
		if err != nil || len(ents) != benchBatch {
			b.Fatal(len(ents), err)
		}
	}
}

// BenchmarkEntriesCold reads 64 entries at a random place far from the
// tail, so from the segment files (through the OS page cache).
func BenchmarkEntriesCold(b *testing.B) {
	w := benchLog(b, 200_000)
	defer w.Close()
	last := w.LastIndex()
	rng := rand.New(rand.NewPCG(1, 1))
	b.SetBytes(benchBatch * benchData)
	b.ReportAllocs()
	for b.Loop() {
		lo := 1 + rng.Uint64N(last-defaultCacheEntries-benchBatch)
		ents, err := w.Entries(lo, lo+benchBatch, math.MaxInt)
		if err != nil || len(ents) != benchBatch {
			b.Fatal(len(ents), err)
		}
	}
}
